"""Operator precedence, literals, escapes and number kinds."""

from __future__ import annotations

from typing import Any

import pytest

from cxlang.syntax import CxSyntaxError, parse
from cxlang.syntax.nodes import (
    Binary,
    Call,
    Expr,
    Index,
    Member,
    Name,
    NumberLit,
    ServiceCall,
    StringLit,
    Unary,
)


def expr(source: str) -> Any:
    return parse(f"var _ = {source};").body[0].init  # type: ignore[union-attr]


def shape(node: Expr) -> Any:
    """A compact s-expression of an expression, to compare trees at a glance."""
    if isinstance(node, Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, Unary):
        return (node.op, shape(node.operand))
    if isinstance(node, Member):
        return (".", shape(node.target), node.name)
    if isinstance(node, Index):
        return ("[]", shape(node.target), shape(node.index))
    if isinstance(node, Call):
        return ("call", shape(node.callee), *[shape(a) for a in node.args])
    if isinstance(node, ServiceCall):
        return (node.service, shape(node.argument))
    if isinstance(node, Name):
        return node.name
    if isinstance(node, NumberLit | StringLit):
        return node.value
    return type(node).__name__


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("1 + 2 * 3", ("+", 1, ("*", 2, 3))),
        ("1 * 2 + 3", ("+", ("*", 1, 2), 3)),
        ("1 - 2 - 3", ("-", ("-", 1, 2), 3)),
        ("8 / 4 / 2", ("/", ("/", 8, 4), 2)),
        ("a % b * c", ("*", ("%", "a", "b"), "c")),
        ("!a && b || c", ("||", ("&&", ("!", "a"), "b"), "c")),
        ("a || b && c", ("||", "a", ("&&", "b", "c"))),
        ("a == b < c", ("==", "a", ("<", "b", "c"))),
        ("a < b == c > d", ("==", ("<", "a", "b"), (">", "c", "d"))),
        ("a != b && c >= d", ("&&", ("!=", "a", "b"), (">=", "c", "d"))),
        ("a + b <= c - d", ("<=", ("+", "a", "b"), ("-", "c", "d"))),
        ("-x.y[0]", ("-", ("[]", (".", "x", "y"), 0))),
        ("!f(x)", ("!", ("call", "f", "x"))),
        ("- -1", ("-", ("-", 1))),
        ("(1 + 2) * 3", ("*", ("+", 1, 2), 3)),
        ("a.b(c)[d].e", (".", ("[]", ("call", (".", "a", "b"), "c"), "d"), "e")),
        ("o.nested.d[1] * (2 + 3) % 4 - -1 / 2",
         ("-", ("%", ("*", ("[]", (".", (".", "o", "nested"), "d"), 1), ("+", 2, 3)), 4),
          ("/", ("-", 1), 2))),
        ('"a" + think { x: 1 }', ("+", "a", ("think", "ObjectLit"))),
        ("learn x + 1", ("+", ("learn", "x"), 1)),
        ("a || b || c", ("||", ("||", "a", "b"), "c")),
    ],
)
def test_precedence(source: str, tree: Any) -> None:
    assert shape(expr(source)) == tree


def test_binary_span_covers_operands() -> None:
    node = expr("1 + 2 * 3")
    assert (node.span.column, node.span.end_column) == (9, 18)
    assert (node.right.span.column, node.right.span.end_column) == (13, 18)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("123", 123),
        ("0", 0),
        ("1.5", 1.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_numbers(source: str, value: int | float) -> None:
    node = expr(source)
    assert isinstance(node, NumberLit)
    assert node.value == value
    assert type(node.value) is type(value)


def test_negative_numbers_are_unary_minus() -> None:
    node = expr("-3")
    assert isinstance(node, Unary) and node.op == "-"
    assert node.operand.value == 3


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (r'"tab\t"', "tab\t"),
        (r'"quote\" nl\n backslash\\"', 'quote" nl\n backslash\\'),
        (r"'it\'s'", "it's"),
        (r'"\r\0"', "\r\0"),
        (r'"\u00e9\u20AC"', "\u00e9\u20ac"),
        (r"'mixed \"double\" in single'", 'mixed "double" in single'),
        ('"no escapes"', "no escapes"),
        ('""', ""),
    ],
)
def test_string_escapes(source: str, value: str) -> None:
    node = expr(source)
    assert isinstance(node, StringLit)
    assert node.value == value


def test_string_concatenation_shape() -> None:
    assert shape(expr(r'"tab\t" + "x"')) == ("+", "tab\t", "x")


@pytest.mark.parametrize("source", [r'"\q"', r'"\u12"', r'"\x4"', r'"\xg1"'])
def test_bad_escapes_are_errors(source: str) -> None:
    with pytest.raises(CxSyntaxError) as info:
        expr(source)
    (diag,) = info.value.diagnostics
    assert "escape" in diag.message
    assert diag.span.column == 10  # at the backslash, after `var _ = "`
