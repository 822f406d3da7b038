"""The JavaScript forms: `a ? b : c`, `??`, `?.`, `++`/`--`, C-style `for`, `for (x in xs)`
without `var`, `\\xHH`. Their shapes, their diagnostics, and recovery around their mistakes."""

from __future__ import annotations

from typing import Any

import pytest

from cxlang.syntax import CxSyntaxError, Span, parse
from cxlang.syntax.grammar import get_grammar
from cxlang.syntax.nodes import (
    Assign,
    Binary,
    Call,
    Conditional,
    Continue,
    ExprStmt,
    For,
    ForIn,
    Index,
    Member,
    Name,
    NumberLit,
    ObjectLit,
    OptionalChain,
    ServiceCall,
    StringLit,
    Unary,
    Update,
    VarDecl,
    dotted_path,
)


def first(source: str) -> Any:
    return parse(source).body[0]


def expr(source: str) -> Any:
    return first(f"var _ = {source};").init


def shape(node: Any) -> Any:
    """A compact s-expression; `?.` links are marked with a `?`."""
    if isinstance(node, Conditional):
        return ("?:", shape(node.test), shape(node.then), shape(node.orelse))
    if isinstance(node, Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, Unary):
        return (node.op, shape(node.operand))
    if isinstance(node, Update):
        return (node.op + "x" if node.prefix else "x" + node.op, shape(node.target))
    if isinstance(node, Member):
        return ("?." if node.optional else ".", shape(node.target), node.name)
    if isinstance(node, Index):
        return ("?.[]" if node.optional else "[]", shape(node.target), shape(node.index))
    if isinstance(node, Call):
        return ("call", shape(node.callee), *[shape(a) for a in node.args])
    if isinstance(node, OptionalChain):
        return ("()", shape(node.expression))
    if isinstance(node, ServiceCall):
        return (node.service, shape(node.argument))
    if isinstance(node, Name):
        return node.name
    if isinstance(node, NumberLit | StringLit):
        return node.value
    return type(node).__name__


def errors(source: str) -> list[tuple[int, int, str]]:
    with pytest.raises(CxSyntaxError) as info:
        parse(source, "prog.cx")
    return [(d.span.line, d.span.column, d.message) for d in info.value.diagnostics]


# ------------------------------------------------------------------ the conditional


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a ? b : c", ("?:", "a", "b", "c")),
        ("a ? b : c ? d : e", ("?:", "a", "b", ("?:", "c", "d", "e"))),
        ("a ? b ? c : d : e", ("?:", "a", ("?:", "b", "c", "d"), "e")),
        ("a || b ? c + 1 : d && e", ("?:", ("||", "a", "b"), ("+", "c", 1), ("&&", "d", "e"))),
        ("x == 1 ? \"one\" : \"other\"", ("?:", ("==", "x", 1), "one", "other")),
        ("(a ? b : c) + 1", ("+", ("?:", "a", "b", "c"), 1)),
        ("!a ? -b : c", ("?:", ("!", "a"), ("-", "b"), "c")),
        ("think x ? 1 : 2", ("?:", ("think", "x"), 1, 2)),
    ],
)
def test_conditional_precedence_and_nesting(source: str, tree: Any) -> None:
    assert shape(expr(source)) == tree


def test_conditional_inside_object_literals_and_arguments() -> None:
    obj = expr("{ x: a ? 1 : 2, y: b ? { z: c ? 3 : 4 } : null }")
    assert isinstance(obj, ObjectLit)
    x, y = obj.properties
    assert shape(x.value) == ("?:", "a", 1, 2)
    assert isinstance(y.value, Conditional) and isinstance(y.value.then, ObjectLit)
    assert shape(y.value.then.properties[0].value) == ("?:", "c", 3, 4)
    call = expr("think { prompt: ok ? \"yes\" : \"no\", n: 1 }")
    assert shape(call.argument.properties[0].value) == ("?:", "ok", "yes", "no")
    assert shape(expr("[a ? 1 : 2, b]")) == "ArrayLit"
    assert shape(first("print(a ? 1 : 2, 3);").expr) == ("call", "print", ("?:", "a", 1, 2), 3)


def test_conditional_span() -> None:
    node = expr("a ? 1 : 22")
    assert node.span == Span(1, 9, 1, 19)


# ------------------------------------------------------------------ ??


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a ?? b", ("??", "a", "b")),
        ("a ?? b ?? c", ("??", ("??", "a", "b"), "c")),
        ("a ?? b == c", ("??", "a", ("==", "b", "c"))),
        ("a + 1 ?? b * 2", ("??", ("+", "a", 1), ("*", "b", 2))),
        ("(a || b) ?? c", ("??", ("||", "a", "b"), "c")),
        ("a ?? (b && c)", ("??", "a", ("&&", "b", "c"))),
        ("a ?? b ? c : d", ("?:", ("??", "a", "b"), "c", "d")),
        ("a ?? think { prompt: p }", ("??", "a", ("think", "ObjectLit"))),
    ],
)
def test_coalesce_precedence(source: str, tree: Any) -> None:
    assert shape(expr(source)) == tree


@pytest.mark.parametrize(
    ("source", "column", "example"),
    [
        ("a ?? b || c", 16, "write (a ?? b) || c or a ?? (b || c)"),
        ("a || b ?? c", 16, "write (a || b) ?? c or a || (b ?? c)"),
        ("a && b ?? c", 16, "write (a && b) ?? c or a && (b ?? c)"),
        ("a ?? b && c || d", 16, "write (a ?? b) && c or a ?? (b && c)"),
    ],
)
def test_coalesce_mixed_with_logical_operators_is_refused(source: str, column: int,
                                                           example: str) -> None:
    ((line, col, message),) = errors(f"var _ = {source};")
    assert (line, col) == (1, column)
    assert message == f"cannot mix '??' with '||' or '&&' without parentheses: {example}"


# ------------------------------------------------------------------ ?.


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a?.b", ("?.", "a", "b")),
        ("a?.b.c", (".", ("?.", "a", "b"), "c")),
        ("a?.[i]", ("?.[]", "a", "i")),
        ("a?.m(x)", ("call", ("?.", "a", "m"), "x")),
        ("a.b?.c[0]", ("[]", ("?.", (".", "a", "b"), "c"), 0)),
        ("a?.if", ("?.", "a", "if")),
        ("(a?.b).c", (".", ("()", ("?.", "a", "b")), "c")),
        ("(a.b).c", (".", (".", "a", "b"), "c")),
        ("a?.b ?? 0", ("??", ("?.", "a", "b"), 0)),
        ("self?.count", ("?.", "SelfRef", "count")),
    ],
)
def test_optional_chains(source: str, tree: Any) -> None:
    assert shape(expr(source)) == tree


def test_optional_digit_is_a_conditional_as_in_javascript() -> None:
    assert shape(expr("a?.5:1")) == ("?:", "a", 0.5, 1)
    assert shape(expr("a ?.5 : .25e1")) == ("?:", "a", 0.5, 2.5)
    tokens, _ = get_grammar().lexer.tokenize("a?.5 b?.c")
    assert [t.type for t in tokens[:-1]] == ["NAME", "QUESTION", "NUMBER", "NAME", "QDOT", "NAME"]


def test_an_optional_chain_is_no_event_name() -> None:
    assert dotted_path(expr("a?.b")) is None
    assert dotted_path(expr("a.b")) == ("a", "b")


def test_optional_chain_mistakes() -> None:
    assert errors("var x = a?.;") == [(1, 12, "unexpected ';', expected a name or '['")]
    assert errors("var x = a?.(1);") == [(1, 12, "unexpected '(', expected a name or '['")]
    (error,) = errors("a?.b = 1;")
    assert error[:2] == (1, 1)
    assert error[2].startswith("cannot assign to an optional chain (a?.b): the left side of '='")
    assert errors("a?.b.c += 1;")[0][2].startswith("cannot assign to an optional chain")
    assert errors("(a?.b)++;")[0][2].startswith("cannot increment an optional chain")


# ------------------------------------------------------------------ ++ and --


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("i++", ("x++", "i")),
        ("--i", ("--x", "i")),
        ("a.b++", ("x++", (".", "a", "b"))),
        ("++a[i]", ("++x", ("[]", "a", "i"))),
        ("-i++", ("-", ("x++", "i"))),
        ("!--i", ("!", ("--x", "i"))),
        ("i++ + ++j", ("+", ("x++", "i"), ("++x", "j"))),
        ("a[i++]", ("[]", "a", ("x++", "i"))),
        ("i-- - 1", ("-", ("x--", "i"), 1)),
        ("self.count++", ("x++", (".", "SelfRef", "count"))),
    ],
)
def test_increments_and_decrements(source: str, tree: Any) -> None:
    assert shape(expr(source)) == tree


def test_increment_statements_and_spans() -> None:
    post, pre = parse("i++; --o.n;").body
    assert isinstance(post, ExprStmt) and isinstance(post.expr, Update)
    assert post.expr.span == Span(1, 1, 1, 4) and post.span == Span(1, 1, 1, 5)
    assert pre.expr.span == Span(1, 6, 1, 11) and pre.expr.prefix


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("f()++;", "cannot increment this expression: the operand of '++' must be a variable, "
                   "a property (a.b) or an index (a[i])"),
        ("--1;", "cannot decrement this expression: the operand of '--' must be a variable, "
                 "a property (a.b) or an index (a[i])"),
        ("self++;", "cannot increment 'self': the operand of '++' must be a variable, "
                    "a property (a.b) or an index (a[i])"),
        ("++(a + b);", "cannot increment this expression: the operand of '++' must be a "
                       "variable, a property (a.b) or an index (a[i])"),
    ],
)
def test_increment_needs_something_to_store_into(source: str, message: str) -> None:
    ((_, _, found),) = errors(source)
    assert found == message


def test_increment_is_no_assignment_target() -> None:
    assert errors("i++ = 1;") == [(1, 5, "unexpected '=', expected ';'")]


# ------------------------------------------------------------------ for loops


def test_c_style_for() -> None:
    stmt = first("for (var i = 0; i < 10; i++) { if (i == 2) { continue; } }")
    assert isinstance(stmt, For)
    assert isinstance(stmt.init, VarDecl) and stmt.init.name == "i"
    assert shape(stmt.condition) == ("<", "i", 10)
    assert isinstance(stmt.step, ExprStmt) and shape(stmt.step.expr) == ("x++", "i")
    assert isinstance(stmt.body[0].body[0], Continue)
    assert stmt.span == Span(1, 1, 1, 59)


@pytest.mark.parametrize(
    ("source", "init", "condition", "step"),
    [
        ("for (;;) {}", None, None, None),
        ("for (i = 0; ; ) {}", Assign, None, None),
        ("for (; i < 3; i += 2) {}", None, Binary, Assign),
        ("for (var i; i; --i) {}", VarDecl, Name, ExprStmt),
        ("for (o.n = 1; o.n; o.n = o.n - 1) {}", Assign, Member, Assign),
        ("for (i++; ; print(i)) {}", ExprStmt, None, ExprStmt),
    ],
)
def test_c_style_for_parts_are_optional(source: str, init: type | None, condition: type | None,
                                        step: type | None) -> None:
    stmt = first(source)
    assert isinstance(stmt, For)
    for part, kind in ((stmt.init, init), (stmt.condition, condition), (stmt.step, step)):
        assert (part is None) if kind is None else isinstance(part, kind)


def test_c_style_for_step_is_an_assignment_without_semicolon() -> None:
    stmt = first("for (;; i *= 2) {}")
    assert isinstance(stmt.step, Assign) and stmt.step.op == "*="
    assert stmt.step.span == Span(1, 9, 1, 15)


def test_for_in_with_and_without_var() -> None:
    declared = first("for (var x in xs) {}")
    assert isinstance(declared, ForIn) and declared.declares and declared.name == "x"
    existing = first("for (x in xs) { print(x); }")
    assert isinstance(existing, ForIn) and not existing.declares
    assert existing.name == "x" and existing.name_span == Span(1, 6, 1, 7)
    assert shape(existing.iterable) == "xs" and len(existing.body) == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("for (var i = 0 i < 3; i++) {}", [(1, 15, "missing ';' after statement")]),
        ("for (var i = 0; i < 3 i++) {}", [(1, 22, "missing ';' after statement")]),
        ("for (var i = 0; i < 3; i++ {}", [(1, 28, "unexpected '{', expected ')'")]),
        ("for (i += 1 i < 3;) {}", [(1, 12, "missing ';' after statement")]),
        ("for (var i in xs; i++) {}", [(1, 17, "unexpected ';', expected ')'")]),
        ("for (var i = 0; i < 3; i++; ) {}", [(1, 27, "unexpected ';', expected ')'")]),
    ],
)
def test_for_header_mistakes(source: str, expected: list[tuple[int, int, str]]) -> None:
    assert errors(source) == expected


def test_for_in_takes_a_variable_only() -> None:
    ((line, column, message),) = errors("for (x.y in xs) {}")
    assert (line, column) == (1, 10)
    assert message.startswith("unexpected 'in', expected ")


# ------------------------------------------------------------------ \xHH


@pytest.mark.parametrize(
    ("source", "value"),
    [(r'"\x41"', "A"), (r'"\x7a\x7A!"', "zz!"), (r"'\x00'", "\0"), (r'"\xe9t\xE9"', "été")],
)
def test_hex_escapes(source: str, value: str) -> None:
    assert expr(source) == StringLit(value, expr(source).span)


def test_malformed_hex_escape() -> None:
    assert errors(r'var s = "a\x4";') == [
        (1, 11, "bad escape '\\x' in string: expected 2 hex digits, like \\x41")]
    assert errors(r'var s = "\xg1" + "\x";') == [
        (1, 10, "bad escape '\\x' in string: expected 2 hex digits, like \\x41"),
        (1, 19, "bad escape '\\x' in string: expected 2 hex digits, like \\x41"),
    ]


# ------------------------------------------------------------------ recovery


def test_a_mistake_in_each_form_leaves_the_later_errors_reported() -> None:
    source = (
        "var a = x ? : 1;\n"           # 1: a conditional without its middle
        "var b = x ? 1;\n"             # 2: without its ':'
        "var c = x ?? y || z;\n"       # 3: ?? mixed with ||
        "var d = x?.;\n"               # 4: ?. without a name
        "f()++;\n"                     # 5: ++ on a call
        "for (var i = 0; i < ; i++) { print(i); }\n"  # 6: a for header
        "var s = \"\\xq\";\n"          # 7: a bad \x
        "for (q in ) {}\n"             # 8: for-in without a list
        "var ok = 1;\n"
        "var last = ;\n"               # 10: still found
    )
    found = errors(source)
    assert [(line, col) for line, col, _ in found] == [
        (1, 13), (2, 14), (3, 16), (4, 12), (5, 1), (6, 21), (7, 10), (8, 11), (10, 12)]
    assert found[0][2] == "unexpected ':', expected an expression"
    assert found[1][2] == "unexpected ';', expected ':'"


def test_a_for_header_error_is_one_error() -> None:
    source = "for (var i = 0; i < ; i++) {\n  print(i);\n}\nvar z = ;\n"
    assert errors(source) == [
        (1, 21, "unexpected ';', expected an expression"),
        (4, 9, "unexpected ';', expected an expression"),
    ]


def test_an_unclosed_for_header_resyncs_at_the_next_statement_line() -> None:
    source = "for (var i = 0; i <\nvar z = 1;\nvar y = ;\n"
    assert [e[:2] for e in errors(source)] == [(2, 1), (3, 9)]


def test_an_error_inside_a_c_style_loop_body_keeps_going() -> None:
    source = "for (var i = 0; i < 3; i++) {\n  var a = ;\n  i++;\n  var b = ;\n}\nvar c = ;\n"
    assert [e[:2] for e in errors(source)] == [(2, 11), (4, 11), (6, 9)]
