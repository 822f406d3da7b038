"""Forms of the original project's programs: `new T { ... }`, handlers entries rooted at a
reserved word, and the `iam`/`execute` services. Their shapes and their diagnostics."""

from __future__ import annotations

from typing import Any

import pytest

from cxlang.syntax import CxSyntaxError, parse
from cxlang.syntax.nodes import ArrayLit, ExprStmt, Member, New, ObjectLit, ServiceCall, VarDecl


def first(source: str) -> Any:
    return parse(source).body[0]


def errors(source: str) -> list[str]:
    with pytest.raises(CxSyntaxError) as info:
        parse(source)
    return [d.message for d in info.value.diagnostics]


def test_new_with_an_object_initialiser_is_new_with_one_argument() -> None:
    decl = first('var v = new Voice { name: "ada" };')
    assert isinstance(decl, VarDecl) and isinstance(decl.init, New)
    assert decl.init.type_name == "Voice"
    (argument,) = decl.init.args
    assert isinstance(argument, ObjectLit) and argument.properties[0].key == "name"
    assert (decl.init.span.column, decl.init.span.end_column) == (9, 34)  # end exclusive


def test_new_needs_an_object_or_arguments() -> None:
    assert errors("var v = new Voice 5;") == ["unexpected number 5, expected '(' or '{'"]


@pytest.mark.parametrize("word", ["continue", "if", "return", "on", "emit", "for", "var"])
def test_a_handlers_entry_may_start_with_a_statement_word(word: str) -> None:
    statement = first(f'think {{ prompt: "p", handlers: [ {word}.batch.done ] }};')
    assert isinstance(statement, ExprStmt) and isinstance(statement.expr, ServiceCall)
    handlers = statement.expr.argument.properties[1].value
    assert isinstance(handlers, ArrayLit)
    (entry,) = handlers.elements
    assert isinstance(entry, Member) and entry.name == "done"


def test_a_statement_word_alone_is_no_entry() -> None:
    (message,) = errors('think { handlers: [ continue ] };')
    assert message.startswith("unexpected ']', expected")


@pytest.mark.parametrize("service", ["iam", "execute"])
def test_iam_and_execute_are_services(service: str) -> None:
    statement = first(f"{service} {{ context: \"c\" }};")
    assert isinstance(statement, ExprStmt) and isinstance(statement.expr, ServiceCall)
    assert statement.expr.service == service


@pytest.mark.parametrize("service", ["iam", "execute"])
def test_iam_and_execute_are_reserved(service: str) -> None:
    assert errors(f"var {service} = 1;") == [
        f"'{service}' is a reserved word and cannot be used as a name"]
