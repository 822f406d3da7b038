"""``cx check`` reports the compiler's diagnostics in the same run as the syntax errors,
wherever the parser recovered, and nothing about names a skipped statement may declare."""

from __future__ import annotations

import pytest

from cxlang.compiler import compile_program
from cxlang.syntax import CxError


def reported(source: str) -> list[tuple[int, str]]:
    with pytest.raises(CxError) as caught:
        compile_program(source, "prog.cx")
    return [(d.span.line, d.message) for d in caught.value.diagnostics]


def test_compile_errors_come_with_syntax_errors_in_source_order() -> None:
    assert reported('print(missing);\n'
                    'var = 3;\n'
                    'think { prompt: "p", handlers: [ 5 ] };\n') == [
        (1, "unknown variable 'missing'"),
        (2, "unexpected '=', expected a name"),
        (3, "a 'handlers' entry must be an event name, like analysis.done"),
    ]


def test_a_name_a_skipped_statement_may_declare_is_not_called_unknown() -> None:
    assert reported("var total = (1 + ;\nprint(total);\nprint(other);\n") == [
        (1, "unexpected ';', expected an expression"),
        (3, "unknown variable 'other'"),
    ]


def test_an_entity_whose_declaration_was_skipped_is_not_called_unknown() -> None:
    messages = [m for _, m in reported("conscious Agent { realize( { } }\n"
                                       "var a = new Agent({});\n")]
    assert not any("unknown entity" in m for m in messages)


def test_errors_inside_a_handler_keep_the_rest_checked() -> None:
    assert reported("on a.b (event) {\n"
                    "    var x = ;\n"
                    "    print(event.y + nope);\n"
                    "}\n") == [
        (2, "unexpected ';', expected an expression"),
        (3, "unknown variable 'nope'"),
    ]
