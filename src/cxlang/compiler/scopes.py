"""Scopes: which CX names are variables where, decided in source order.

A name is a variable from its ``var`` on (or as a handler's parameter); top-level variables
are visible in every handler, since handlers run after the top level has started. The same
facts decide event references: ``analytics.complete`` in a service call is an event reference
exactly when ``analytics`` is not a variable here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..syntax import nodes as n

__all__ = ["FunctionScope", "GlobalScope", "declared_names", "every_statement"]


def every_statement(body: Sequence[n.Node]) -> Iterator[n.Node]:
    """The statements of *body* and of every block nested in it, in source order."""
    for s in body:
        yield s
        if isinstance(s, n.For):
            if s.init is not None:
                yield s.init
            if s.step is not None:
                yield s.step
            yield from every_statement(s.body)
        elif isinstance(s, n.ForIn | n.While):
            yield from every_statement(s.body)
        elif isinstance(s, n.If):
            yield from every_statement(s.body)
            yield from every_statement(s.orelse)


def declared_names(body: Sequence[n.Node]) -> Iterator[str]:
    """Every name a body declares, in nested blocks too (``var`` is function-wide)."""
    for s in every_statement(body):
        if isinstance(s, n.VarDecl) or (isinstance(s, n.ForIn) and s.declares):
            yield s.name


@dataclass
class GlobalScope:
    """Top-level variables and entity types of a program."""

    variables: set[str] = field(default_factory=set)
    entities: set[str] = field(default_factory=set)


@dataclass
class FunctionScope:
    """One compiled function: the top level, a handler, ``realize`` or entity field defaults.

    ``hoisted`` is every name this function declares anywhere (Python decides locals per
    function); ``declared`` grows as the compiler walks the body in order.
    """

    globals: GlobalScope
    is_top_level: bool
    in_entity: bool
    hoisted: set[str] = field(default_factory=set)
    declared: set[str] = field(default_factory=set)
    assigned_globals: set[str] = field(default_factory=set)
    whole_numbers: frozenset[str] = frozenset()  # locals that only ever hold whole numbers
    # Per loop around the code being generated, innermost last: the statements a `continue`
    # runs before it (a for loop's step; none for the other loops).
    loop_steps: list[list[ast.stmt]] = field(default_factory=list)
    temporaries: int = 0
    reads_errors: bool = False  # the body reads ``_errors``: it handles parameters' failures
    call_sites: list[str] = field(default_factory=list)  # its calls' constants, until it ends
    event_param: str | None = None  # a handler's parameter: the event's payload

    def is_variable(self, name: str) -> bool:
        """Is *name* a variable at this point of this function?"""
        if name in self.declared:
            return True
        if self.is_top_level:
            return False
        return name in self.globals.variables and name not in self.hoisted

    def declared_later(self, name: str) -> bool:
        return name in self.hoisted and name not in self.declared

    def is_global(self, name: str) -> bool:
        if self.is_top_level:
            return name in self.globals.variables
        return name not in self.hoisted and name in self.globals.variables

    def temporary(self) -> str:
        self.temporaries += 1
        return f"_t{self.temporaries}"
