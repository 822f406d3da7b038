"""Scopes: which CX names are variables where, decided in source order.

A name is a variable from its ``var`` on (or as a handler's parameter); top-level variables
are visible in every handler, since handlers run after the top level has started. The same
facts decide event references: ``analytics.complete`` in a service call is an event reference
exactly when ``analytics`` is not a variable here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FunctionScope", "GlobalScope"]


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
    loop_depth: int = 0
    temporaries: int = 0

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
