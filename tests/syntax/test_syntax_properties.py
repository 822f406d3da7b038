"""Property: any text either parses or raises CxSyntaxError, never anything else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxlang.syntax import CxSyntaxError, Program, parse

EXAMPLE = (Path(__file__).parent / "brief_example.cx").read_text()

FRAGMENTS = [
    "var", "x", "=", ";", "{", "}", "(", ")", "[", "]", ",", ":", ".", "on", "async",
    "emit", "think", "learn", "is", "not", "await", "conscious", "object", "realize",
    "self", "new", "if", "else", "while", "for", "in", "return", "break", "continue",
    "1", "2.5", '"s"', "'t'", '"open', "/*", "*/", "//", "\n", " ", "+", "-", "*", "/",
    "%", "!", "&&", "||", "==", "!=", "<", ">=", "+=", "@", "\\", "\t", "a.b", "any",
    "true", "null", "\u00e9", "\x00",
]

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def check(source: str) -> None:
    try:
        program = parse(source, "fuzz.cx")
    except CxSyntaxError as error:
        assert error.diagnostics, "a syntax error must carry at least one diagnostic"
        for diag in error.diagnostics:
            assert diag.span.line >= 1 and diag.span.column >= 1
            assert diag.render().startswith(f"fuzz.cx:{diag.span.line}:{diag.span.column}: ")
    else:
        assert isinstance(program, Program)


@SETTINGS
@given(st.text(max_size=200))
def test_random_text(source: str) -> None:
    check(source)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_random_token_soup(parts: list[str]) -> None:
    check(" ".join(parts))


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_random_token_soup_glued(parts: list[str]) -> None:
    check("".join(parts))


@SETTINGS
@given(
    st.integers(min_value=0, max_value=len(EXAMPLE)),
    st.integers(min_value=0, max_value=40),
    st.text(max_size=5),
)
def test_mutated_program(position: int, length: int, insert: str) -> None:
    check(EXAMPLE[:position] + insert + EXAMPLE[position + length :])


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=len(EXAMPLE) - 1), max_size=5))
def test_program_with_characters_deleted(positions: list[int]) -> None:
    chars = list(EXAMPLE)
    for p in sorted(set(positions), reverse=True):
        del chars[p]
    check("".join(chars))


@SETTINGS
@given(
    st.text(alphabet=" \t\r\n\f\v\u00a0\u2003", max_size=8),
    st.text(alphabet=" \t\r\n\f\v\u00a0\u2003", max_size=8),
)
def test_surrounding_whitespace_is_ignored(before: str, after: str) -> None:
    program = parse(before + EXAMPLE + after)
    assert len(program.body) == 47


@SETTINGS
@given(st.lists(st.sampled_from([" ", "\t", "  ", "\n", " // c\n", " /* c */ "]), min_size=1))
def test_extra_whitespace_and_comments_between_tokens(fillers: list[str]) -> None:
    source = "var x = a.b(1, 2) + { k: [3] }.k[0];"
    pieces = source.split(" ")
    glued = pieces[0]
    for n, piece in enumerate(pieces[1:]):
        glued += fillers[n % len(fillers)] + piece
    (decl,) = parse(glued).body
    (reference,) = parse(source).body
    assert type(decl) is type(reference)
