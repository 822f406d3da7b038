"""Events and the patterns that match them.

An event name is dotted (``analytics.complete``). A pattern is a dotted name in which a segment
``any`` (or ``*``, the NATS spelling) matches exactly one segment of a name. Matching is decided
once per (pattern, name) pair by the bus's dispatch cache, so it need not be clever, only right.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, NoReturn

__all__ = ["WILDCARDS", "Event", "EventPattern", "ReadOnlyPayload", "check_event_name", "new_id",
           "new_origin"]

WILDCARDS = frozenset({"any", "*"})


def new_origin() -> str:
    """A short token that makes event ids unique across runtimes and processes."""
    return os.urandom(6).hex()


class Event:
    """One occurrence of a named event.

    ``parent_id`` is the id of the event whose handler emitted this one (the causal parent), so a
    run can be replayed as a tree. ``depth`` counts those hops from the first emit.
    """

    __slots__ = ("_id", "depth", "name", "parent_id", "payload", "timestamp")

    def __init__(
        self,
        name: str,
        payload: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        parent_id: str | None = None,
        depth: int = 0,
        timestamp: float | None = None,
    ) -> None:
        self.name = name
        self.payload: dict[str, Any] = {} if payload is None else payload
        # The id is made when first read: most events are handled and gone before that.
        self._id = id
        self.parent_id = parent_id
        self.depth = depth
        self.timestamp = time.time() if timestamp is None else timestamp

    @property
    def id(self) -> str:
        ident = self._id
        if ident is None:
            ident = self._id = new_id()
        return ident

    def sibling(self, name: str) -> Event:
        """An event called *name* made at the same moment as this one, from the same cause,
        with the same payload: the events of one parallel call's branches. Made without
        ``__init__`` (its keywords cost more than the rest of the event)."""
        twin = _new_object(Event)
        twin.name = name
        twin.payload = self.payload
        twin._id = None
        twin.parent_id = self.parent_id
        twin.depth = self.depth
        twin.timestamp = self.timestamp
        return twin

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {self.payload!r}, id={self.id!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"id": self.id, "parent_id": self.parent_id, "depth": self.depth,
                  "timestamp": self.timestamp}
        return (_rebuild_event, (self.name, self.payload, kwargs))


class ReadOnlyPayload(dict[str, Any]):
    """The payload every branch of a parallel call sees: a dict that refuses changes, so one
    handler cannot change what its siblings (or the consolidated payload) see. Only the top
    level is guarded; values inside (lists, dicts) are shared, and handlers must not change
    them. Still a ``dict`` to ``json``, ``pickle`` and ``isinstance``."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("an event payload of a parallel call is read-only (its sibling branches "
                        "see the same payload); copy it first: dict(event.payload)")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyPayload, (dict(self),))

    def __copy__(self) -> ReadOnlyPayload:
        return self


def _rebuild_event(name: str, payload: dict[str, Any], kwargs: dict[str, Any]) -> Event:
    return Event(name, payload, **kwargs)


_new_object = object.__new__
_ORIGIN = new_origin()
_counter = itertools.count(1)


def new_id() -> str:
    """A process-unique prefix plus a counter: unique like a uuid, many times cheaper."""
    return f"{_ORIGIN}-{next(_counter)}"


def check_event_name(name: object) -> None:
    """Refuse what cannot be an event's name: an emitted name is dotted, with no empty segment
    and no wildcard (wildcards belong to subscriptions)."""
    if not isinstance(name, str):
        raise TypeError(f"an event name must be a string, got {type(name).__name__}")
    segments = name.split(".")
    if not name or not all(segments):
        raise ValueError(f"invalid event name {name!r}: expected dotted names like 'a.b'")
    wild = [s for s in segments if s in WILDCARDS]
    if wild:
        raise ValueError(f"invalid event name {name!r}: {wild[0]!r} is a wildcard, which only "
                         "subscriptions may use; an emitted event names one event")


class EventPattern:
    """A subscription pattern such as ``user.any.created``."""

    __slots__ = ("_segments", "has_wildcard", "text")

    def __init__(self, text: str) -> None:
        segments = text.split(".")
        if not text or any(not s for s in segments):
            raise ValueError(f"invalid event pattern {text!r}: expected dotted names like 'a.b'")
        self.text = text
        self._segments = tuple(segments)
        self.has_wildcard = any(s in WILDCARDS for s in segments)

    def matches(self, name: str) -> bool:
        if not self.has_wildcard:
            return name == self.text
        parts = name.split(".")
        if len(parts) != len(self._segments):
            return False
        return all(p in WILDCARDS or p == n for p, n in zip(self._segments, parts, strict=True))

    def __repr__(self) -> str:
        return f"EventPattern({self.text!r})"
