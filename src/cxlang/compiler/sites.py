"""What the compiler knows of each service call in a program, for the host and for checks.

A call site is fixed at compile time: its service, where it is, its handler parameters, the
properties it writes (with their values where they are literals), and whether the function
around it reads ``_errors``, which is how a program handles its parameters' failures itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime.resolver import HandlerParameters
from ..syntax.nodes import Span

__all__ = ["NOT_LITERAL", "CallSite", "PropertyFact"]

NOT_LITERAL: Any = object()
"""The value of a property whose value is an expression: known only when the call runs."""


@dataclass(frozen=True, slots=True)
class PropertyFact:
    """One property a call writes: its key, where the key is, and its value if a literal."""

    key: str
    key_span: Span
    value: Any
    value_span: Span


@dataclass(frozen=True, slots=True)
class CallSite:
    """One service call in the source."""

    service: str
    span: Span  # the service's keyword, where reports about the call point
    parameters: HandlerParameters
    parameter_spans: Mapping[str, Span]  # where each parameter is named
    properties: tuple[PropertyFact, ...]
    reads_errors: bool  # the function around the call reads ``_errors`` (of its result)

    def where(self, filename: str) -> str:
        """``prog.cx:5:1``."""
        return f"{filename}:{self.span.line}:{self.span.column}"
