"""HandlerParameterResolver: which handler parameters a call names, in declaration order.

A parallel call names its parameters as a mapping (``{"analytics": "analytics.complete"}``) or
as (name, event name) pairs. The resolver checks them once, so a call never starts with a
parameter that cannot work. CX service calls are split by the compiler instead, at compile time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import HandlerParameterError
from .events import EventPattern
from .mapper import ERRORS_KEY

__all__ = ["HandlerParameterResolver", "HandlerParameters"]


class HandlerParameters:
    """Validated parameter name -> event name, in declaration order. Resolve once, run many.

    Holds the mapping it was resolved from (a dict keeps its order) rather than a copy: a call
    reads it once, when it starts.
    """

    __slots__ = ("_events",)

    def __init__(self, events: Mapping[str, str]) -> None:
        self._events = events

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._events.items())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._events)

    def items(self) -> Iterable[tuple[str, str]]:
        return self._events.items()

    def keys(self) -> Iterable[str]:
        """The parameter names, in declaration order."""
        return self._events.keys()

    def values(self) -> Iterable[str]:
        """The event names, in declaration order."""
        return self._events.values()

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return bool(self._events)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HandlerParameters) and self.pairs == other.pairs

    def __hash__(self) -> int:
        return hash(self.pairs)

    def __repr__(self) -> str:
        return f"HandlerParameters({dict(self._events)!r})"


ParameterSpec = Mapping[str, str] | Iterable[tuple[str, str]] | HandlerParameters


class HandlerParameterResolver:
    """Turns the ways a call can name handler parameters into :class:`HandlerParameters`."""

    __slots__ = ()

    def resolve(self, spec: ParameterSpec) -> HandlerParameters:
        if isinstance(spec, HandlerParameters):
            return spec
        if type(spec) is dict:
            try:  # the common case: every name and event already checked once (set operations)
                if _checked_events.issuperset(spec.values()) and _checked_names.issuperset(spec):
                    return HandlerParameters(spec)
            except TypeError:
                pass  # something unhashable: the checks below explain what is wrong
        if isinstance(spec, str | bytes) or not isinstance(spec, Iterable):
            # A string is iterable too: without this, "a.b" would be refused as the pair 'a'.
            what = f"the string {spec!r}" if isinstance(spec, str) else repr(spec)
            raise HandlerParameterError(
                'parameters must map names to event names, like {"result": "a.b"}; got ' + what
            )
        items = spec.items() if isinstance(spec, Mapping) else spec
        if isinstance(spec, Mapping):
            _make_room(len(spec))
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        for item in items:
            name, event = _pair(item)
            _check(name, event, seen)
            pairs.append((name, event))
        return HandlerParameters(dict(pairs))


def _pair(item: object) -> tuple[str, str]:
    if isinstance(item, tuple | list) and len(item) == 2:
        name, event = item
        if isinstance(name, str) and isinstance(event, str):
            return name, event
    raise HandlerParameterError(
        f"a handler parameter must be a (name, event name) pair of strings, got {item!r}"
    )


def _check(name: str, event: str, seen: set[str]) -> None:
    if not name:
        raise HandlerParameterError("a handler parameter needs a name; got an empty one")
    if name == ERRORS_KEY:
        raise HandlerParameterError(
            f"handler parameter {name!r} is reserved: the consolidated payload keeps the "
            f"failures of a call's parameters under {ERRORS_KEY!r}; give the parameter another "
            "name"
        )
    if name in seen:
        raise HandlerParameterError(
            f"handler parameter {name!r} is named twice; each parameter's result lands under its "
            "name in the consolidated payload, so names must be unique"
        )
    seen.add(name)
    if type(name) is str and len(_checked_names) < _room:
        _checked_names.add(name)
    if event in _checked_events:
        return
    if not event:
        raise HandlerParameterError(f"handler parameter {name!r} names an empty event")
    try:
        pattern = EventPattern(event)
    except ValueError as exc:
        raise HandlerParameterError(f"handler parameter {name!r}: {exc}") from None
    if pattern.has_wildcard:
        raise HandlerParameterError(
            f"handler parameter {name!r} names the pattern {event!r}; a parameter names one "
            "event, wildcards belong in subscriptions"
        )
    if type(event) is str and len(_checked_events) < _room:
        _checked_events.add(event)


# Parameter and event names seen valid before: the same few are checked on every call. Each set
# holds at most 10,000 names, or twice as many as the largest call has: a call of 100,000
# parameters is checked in full once, not on every call, and a program that makes new names
# forever does not grow the sets beyond what its own calls hold.
_checked_names: set[str] = set()
_checked_events: set[str] = set()
_room = 10_000


def _make_room(parameters: int) -> None:
    global _room
    _room = max(_room, 2 * parameters)
