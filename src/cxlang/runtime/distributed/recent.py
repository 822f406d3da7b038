"""The ids of the events received lately, to drop one that comes a second time.

An emitter that lost its connection sends again what the server had not confirmed (see
:mod:`.outbox`); some of it may have arrived already. Repeats come soon after the original, so
the last few thousand ids are enough.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RecentIds"]


class RecentIds:
    """A bounded set: the last *size* ids seen."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._ids: set[str] = set()
        self._order: deque[str] = deque()

    def first_time(self, ident: str | None) -> bool:
        """Record *ident*; whether it was new (an event without an id always is)."""
        if ident is None:
            return True
        if ident in self._ids:
            return False
        self._ids.add(ident)
        self._order.append(ident)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True
