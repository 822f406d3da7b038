"""CX spans (1-based, code points, lines ended by "\n") to LSP positions (0-based, UTF-16 code
units unless agreed otherwise) and back."""

from __future__ import annotations

import pytest
from lsprotocol import types

from cxlang.compiler import compile_program
from cxlang.lsp.positions import PositionMap, encoding_of, units
from cxlang.syntax import CxError
from cxlang.syntax.nodes import Span


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def test_ascii_columns_are_characters_less_one() -> None:
    places = PositionMap("var a = 1;\nemit x.y;\n")
    assert places.range(Span(2, 6, 2, 9)) == types.Range(start=pos(1, 5), end=pos(1, 8))
    assert places.cx_position(pos(1, 5)) == (2, 6)


def test_astral_characters_count_two_utf16_units() -> None:
    # "😀" is one code point (one CX column) and two UTF-16 code units.
    text = 'var s = "😀😀"; emit a.b;'
    places = PositionMap(text)
    column = text.index("a.b") + 1
    assert places.range(Span(1, column, 1, column + 3)).start == pos(0, column - 1 + 2)
    assert places.cx_position(pos(0, column - 1 + 2)) == (1, column)


def test_the_other_encodings_count_their_own_units() -> None:
    text = 'var é = "😀"; x'
    column = text.index("x") + 1
    start = {"utf-8": len(text[:column - 1].encode()), "utf-32": column - 1,
             "utf-16": column - 1 + 1}
    for encoding, character in start.items():
        places = PositionMap(text, encoding_of(encoding))
        assert places.range(Span(1, column, 1, column + 1)).start == pos(0, character)
        assert places.cx_position(pos(0, character)) == (1, column)


def test_units_of_one_character() -> None:
    assert [units(ch, "utf-16") for ch in "aé€😀"] == [1, 1, 1, 2]
    assert [units(ch, "utf-8") for ch in "aé€😀"] == [1, 2, 3, 4]
    assert [units(ch, "utf-32") for ch in "aé€😀"] == [1, 1, 1, 1]


def test_a_position_inside_a_surrogate_pair_is_that_character() -> None:
    places = PositionMap("😀x")
    assert places.cx_position(pos(0, 1)) == (1, 1)
    assert places.cx_position(pos(0, 2)) == (1, 2)


def test_crlf_and_a_lone_carriage_return() -> None:
    # CX ends lines at "\n" only; LSP at "\r\n", "\r" and "\n": a lone "\r" is a line break
    # to the editor, and what follows it is on the next LSP line.
    places = PositionMap("a;\r\nb; c\rd;\n")
    assert places.range(Span(2, 1, 2, 2)).start == pos(1, 0)
    assert places.range(Span(2, 6, 2, 7)).start == pos(2, 0)  # "d", after the lone "\r"
    assert places.cx_position(pos(2, 0)) == (2, 6)


def test_a_byte_order_mark_is_no_column_for_cx_but_is_one_for_the_editor() -> None:
    text = "\ufeffemit a.any;"
    with pytest.raises(CxError) as caught:
        compile_program(text)
    places = PositionMap(text)
    (diagnostic,) = caught.value.diagnostics
    assert places.range(diagnostic.span) == types.Range(start=pos(0, 6), end=pos(0, 11))
    assert places.cx_position(pos(0, 6)) == diagnostic.span[:2]


def test_spans_past_the_end_are_kept_within_the_line_and_the_text() -> None:
    places = PositionMap("ab\ncd")
    assert places.range(Span(1, 2, 1, 40)) == types.Range(start=pos(0, 1), end=pos(0, 2))
    assert places.range(Span(9, 1, 9, 2)) == types.Range(start=pos(1, 2), end=pos(1, 2))
    assert places.range(Span(2, 2, 1, 1)).end == pos(1, 1)  # never ends before it starts
    assert places.cx_position(pos(7, 3)) == (2, 3)  # a line past the end: the text's end


def test_an_unknown_encoding_is_utf16() -> None:
    assert encoding_of(None) == "utf-16"
    assert encoding_of("utf-7") == "utf-16"
    assert encoding_of("utf-8") == "utf-8"
