"""Which local variables of a function always hold whole numbers.

A variable is a whole number when every value the function ever assigns it is one: an integer
literal, another such variable, or ``+ - * %`` and unary ``-`` of those (Python integers do not
overflow, so neither do these). Locals cannot be reached from outside their function, so
looking at that one body is enough. The answer is the largest set for which this holds,
found by dropping variables until nothing changes; the code generator then uses Python's own
operators on these without a type check. ``++`` and ``--`` keep a whole number whole, so
they do not count as assignments here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..syntax import nodes as n
from .scopes import every_statement

__all__ = ["is_whole_number", "whole_number_locals"]

_INT_OPERATORS = frozenset({"+", "-", "*", "%"})
_COMPOUND: dict[str, n.BinaryOp] = {"+=": "+", "-=": "-", "*=": "*", "%=": "%"}


def is_whole_number(expr: n.Node, whole: frozenset[str] | set[str]) -> bool:
    """Is *expr* sure to be a whole number, given the variables in *whole*?"""
    if isinstance(expr, n.NumberLit):
        return type(expr.value) is int
    if isinstance(expr, n.Name):
        return expr.name in whole
    if isinstance(expr, n.Unary):
        return expr.op == "-" and is_whole_number(expr.operand, whole)
    if isinstance(expr, n.Binary):
        return (expr.op in _INT_OPERATORS and is_whole_number(expr.left, whole)
                and is_whole_number(expr.right, whole))
    if isinstance(expr, n.Conditional):
        return is_whole_number(expr.then, whole) and is_whole_number(expr.orelse, whole)
    return False


def whole_number_locals(body: Sequence[n.Node], locals_: set[str]) -> frozenset[str]:
    """The variables among *locals_* that hold only whole numbers in *body*.

    Only a variable whose first ``var`` stands at the top of the body, with a value, is sure to
    be set before it is read (a ``var`` in a branch not taken leaves it null).
    """
    sources: dict[str, list[n.Node | None]] = {name: [] for name in _set_first(body, locals_)}
    for name, value in _assignments(body):
        if name in sources:
            sources[name].append(value)
    whole = {name for name, values in sources.items() if values}
    changed = True
    while changed:
        changed = False
        for name in list(whole):
            if not all(v is not None and is_whole_number(v, whole) for v in sources[name]):
                whole.discard(name)
                changed = True
    return frozenset(whole)


def _set_first(body: Sequence[n.Node], locals_: set[str]) -> set[str]:
    """The locals whose first declaration is a top-level ``var x = value`` of *body* (or the
    init of a top-level for loop, which runs whenever the loop is reached)."""
    seen: set[str] = set()
    first: set[str] = set()
    for s in body:
        var = s.init if isinstance(s, n.For) else s
        if isinstance(var, n.VarDecl) and var.name not in seen and var.init is not None:
            first.add(var.name)
        seen.update(name for name, _ in _assignments([s]))
    return first & locals_


def _assignments(body: Sequence[n.Node]) -> Iterator[tuple[str, n.Node | None]]:
    """Every (variable, value) the body assigns; ``None`` for a value that is not an int."""
    for s in every_statement(body):
        if isinstance(s, n.VarDecl):
            yield s.name, s.init
        elif isinstance(s, n.ForIn):
            yield s.name, None
        elif isinstance(s, n.Assign) and isinstance(s.target, n.Name):
            name = s.target.name
            if s.op == "=":
                yield name, s.value
            elif s.op in _COMPOUND:
                yield name, n.Binary(_COMPOUND[s.op], s.target, s.value, s.span)
            else:
                yield name, None  # /= may give a fraction
