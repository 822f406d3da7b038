"""Every kind of diagnostic: message, position, rendering, and multi-error recovery."""

from __future__ import annotations

import pytest

from cxlang.syntax import CxError, CxSyntaxError, Diagnostic, SourceFile, Span, parse


def errors(source: str) -> list[tuple[int, int, str]]:
    with pytest.raises(CxSyntaxError) as info:
        parse(source, "prog.cx")
    return [(d.span.line, d.span.column, d.message) for d in info.value.diagnostics]


def rendered(source: str) -> str:
    with pytest.raises(CxSyntaxError) as info:
        parse(source, "prog.cx")
    return str(info.value)


# ------------------------------------------------------------------ rendering


def test_render_format() -> None:
    diag = Diagnostic(
        "unexpected '}', expected an expression", Span(3, 13, 3, 14), "prog.cx", "    var x = ;"
    )
    assert diag.render() == (
        "prog.cx:3:13: unexpected '}', expected an expression\n"
        "        var x = ;\n"
        "                ^"
    )


def test_render_wide_span_and_tabs() -> None:
    diag = Diagnostic("bad", Span(1, 3, 1, 6), "f.cx", "\t\tabc;")
    assert diag.render().splitlines()[2] == "    \t\t^~~"


def test_render_without_source_line() -> None:
    assert Diagnostic("m", Span(1, 1, 1, 2), "f.cx", "").render() == "f.cx:1:1: m"


def test_source_file_lines() -> None:
    source = SourceFile("a.cx", "one\r\ntwo\nthree")
    assert source.line(1) == "one"
    assert source.line(3) == "three"
    assert source.line(9) == ""
    diag = source.diagnostic("m", Span(2, 1, 2, 4))
    assert diag.source_line == "two" and diag.filename == "a.cx"


def test_error_type_hierarchy_and_str() -> None:
    with pytest.raises(CxError) as info:
        parse("var x = ;", "prog.cx")
    assert isinstance(info.value, CxSyntaxError)
    assert str(info.value) == (
        "prog.cx:1:9: unexpected ';', expected an expression\n"
        "    var x = ;\n"
        "            ^"
    )


# ------------------------------------------------------------------ syntax errors


def test_unexpected_token_expected_expression() -> None:
    assert errors("var x = ;") == [(1, 9, "unexpected ';', expected an expression")]
    assert errors("var x = }") == [(1, 9, "unexpected '}', expected an expression")]


def test_missing_semicolon() -> None:
    assert errors("var x = 1\nvar y = 2;") == [(1, 10, "missing ';' after statement")]
    assert rendered("x = 1\n") == (
        "prog.cx:1:6: missing ';' after statement\n    x = 1\n         ^"
    )
    assert errors("print(1) print(2);") == [(1, 9, "missing ';' after statement")]


def test_missing_semicolon_after_object_on_same_line() -> None:
    assert errors("emit a.b { x: 1 } emit c.d;") == [(1, 18, "missing ';' after statement")]


def test_unexpected_token_lists_what_fits() -> None:
    assert errors("print(1 2);") == [(1, 9, "unexpected number 2, expected ')' or ','")]
    assert errors("if x { }") == [(1, 4, "unexpected 'x', expected '('")]
    assert errors("on a.b (e f) { }") == [(1, 11, "unexpected 'f', expected ')'")]
    assert errors("var x = [1 2];")[0][2] == "unexpected number 2, expected ']' or ','"


def test_unexpected_closing_brace_at_top_level() -> None:
    assert errors("}") == [(1, 1, "unexpected '}', expected a statement or end of file")]


def test_entity_body_lists_members() -> None:
    assert errors("conscious A { if (x) {} }") == [
        (1, 15, "unexpected 'if', expected 'on', 'realize', 'var' or '}'")
    ]


def test_reserved_word_as_name() -> None:
    assert errors("var if = 1;") == [
        (1, 5, "'if' is a reserved word and cannot be used as a name")
    ]
    assert errors("on a.b (think) { }") == [
        (1, 9, "'think' is a reserved word and cannot be used as a name")
    ]


def test_unexpected_end_of_file() -> None:
    assert errors("print(x") == [(1, 8, "unexpected end of file, expected ')' or ','")]
    assert errors("on x.y (e) {\n  print(e);\n") == [
        (2, 12, "unexpected end of file: missing '}' to close the '{' at line 1, column 12")
    ]


def test_unexpected_string_is_shown_short() -> None:
    (error,) = errors('print("a" "a very long string literal here");')
    assert error[2].startswith('unexpected string "a very long string...", expected')


# ------------------------------------------------------------------ lexical errors


def test_unterminated_string() -> None:
    assert errors('print("abc);\nvar y = 2;') == [(1, 7, "unterminated string")]
    assert rendered("var s = 'abc") == (
        "prog.cx:1:9: unterminated string\n    var s = 'abc\n            ^~~~"
    )


def test_unterminated_block_comment() -> None:
    assert errors("var x = 1;\n/* never closed\nvar y = 2;") == [
        (2, 1, "unterminated block comment")
    ]


def test_unknown_character() -> None:
    assert errors("var x = 1 @ 2;") == [(1, 11, "unknown character '@'")]
    assert errors("var x = #$ 1;") == [(1, 9, "unknown character '#'")]
    assert errors("var x\x00 = 1;") == [(1, 6, "unknown character U+0000")]


def test_bad_escape() -> None:
    assert errors(r'var s = "bad \q escape";') == [(1, 14, "unknown escape '\\q' in string")]


# ------------------------------------------------------------------ checks in the builder


def test_invalid_assignment_target() -> None:
    (error,) = errors("f() = 1;")
    assert error[:2] == (1, 1)
    assert error[2].startswith("cannot assign to this expression")
    assert errors("self = 1;")[0][2].startswith("cannot assign to 'self'")


def test_duplicate_realize() -> None:
    (error,) = errors("conscious A {\n realize() {}\n realize() {}\n}")
    assert error[:2] == (3, 2)
    assert "already has a realize block (line 2)" in error[2]


def test_event_payload_needs_an_event_name() -> None:
    assert errors("var x = [ a[0] { t: 1 } ];") == [
        (1, 11, "expected an event name (like done or analysis.done) before '{'")
    ]


# ------------------------------------------------------------------ recovery


def test_three_independent_errors_are_all_reported() -> None:
    source = (
        "var a = 1 +;\n"
        "print(a);\n"
        "on x.y (e) {\n"
        "    var b = ;\n"
        "    print(b);\n"
        "}\n"
        "print(1 2);\n"
        "var ok = 3;\n"
    )
    with pytest.raises(CxSyntaxError) as info:
        parse(source, "prog.cx")
    diags = info.value.diagnostics
    assert [(d.span.line, d.span.column) for d in diags] == [(1, 12), (4, 13), (7, 9)]
    assert str(info.value) == (
        "prog.cx:1:12: unexpected ';', expected an expression\n"
        "    var a = 1 +;\n"
        "               ^\n"
        "prog.cx:4:13: unexpected ';', expected an expression\n"
        "        var b = ;\n"
        "                ^\n"
        "prog.cx:7:9: unexpected number 2, expected ')' or ','\n"
        "    print(1 2);\n"
        "            ^"
    )


def test_mixed_lexical_and_syntax_errors() -> None:
    source = 'var s = "open;\nvar t = @;\nvar u = 1\nvar v = 2;\nif (x > ) { }\n'
    assert errors(source) == [
        (1, 9, "unterminated string"),
        (2, 9, "unknown character '@'"),
        (3, 10, "missing ';' after statement"),
        (5, 9, "unexpected ')', expected an expression"),
    ]


def test_recovery_inside_blocks_keeps_going() -> None:
    source = "on a.b {\n  if (x > ) { y(); } else { z(); }\n  var q = ;\n}\nvar w = ;\n"
    assert [e[:2] for e in errors(source)] == [(2, 11), (3, 11), (5, 9)]


def test_missing_paren_resyncs_at_next_line() -> None:
    assert [e[:2] for e in errors("print(x\nvar y = ;\n")] == [(2, 1), (2, 9)]


def test_a_lexical_error_does_not_cascade() -> None:
    assert errors("var x = 1 @ 2;\nvar y = 3;") == [(1, 11, "unknown character '@'")]


def test_many_errors_are_capped() -> None:
    found = errors("var x = ;\n" * 200)
    assert 40 <= len(found) <= 60


def test_expected_lists_hide_keywords_allowed_as_keys() -> None:
    assert errors("var x = [1, ") == [
        (1, 12, "unexpected end of file, expected an expression or ']'")
    ]
    assert errors("var x = { {") == [(1, 11, "unexpected '{', expected a name, a string or '}'")]
    assert errors("a.") == [(1, 3, "unexpected end of file, expected a name")]
