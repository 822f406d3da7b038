"""The shape of a served event (:mod:`.served_events`): how it is served, and what says it
could not be."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Emit", "Route", "Serve"]

Emit = Callable[[str, dict[str, Any]], Awaitable[Any]]
Serve = Callable[[Mapping[str, Any], Emit], Awaitable[tuple[str, dict[str, Any]]]]


@dataclass(frozen=True, slots=True)
class Route:
    """How one event is served: *serve* gives the default answer event and its payload (and
    may emit events on the way, a stream's tokens); *failed* is emitted when it cannot."""

    serve: Serve
    failed: str
