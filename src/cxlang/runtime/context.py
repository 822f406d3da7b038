"""The execution context ("consciousness context") visible to every handler.

One immutable :class:`ExecutionContext` lives in a :mod:`contextvars` variable. asyncio copies
context into every task, the pool copies it into worker threads and pickles it into worker
processes, so a branch always knows who it runs for and why, wherever it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Event

__all__ = ["ExecutionContext", "check_cancelled", "current_context", "waiting"]


class ExecutionContext:
    """Who is running and what led here.

    - ``entity``: the entity whose handler runs (``None`` for a top-level handler).
    - ``execution_id``: the parallel call this branch belongs to; siblings share it.
    - ``parameter``: the parallel handler parameter this branch computes.
    - ``event``: the event being handled, the causal parent of whatever the handler emits
      (also as ``event_id``, ``event_name`` and ``depth``, its hops from the first emit).
    - ``cancelled``: true once this handler run was cancelled (its timeout passed, a sibling
      failed under fail-fast, its caller was cancelled, the runtime closed). Coroutine
      handlers get ``CancelledError`` then; a thread cannot be interrupted, so a long ``def``
      handler checks this (or calls :func:`check_cancelled`) to stop early.
    - ``attempt``: which run of the handler this is, 1 unless a :class:`~.retry.Retry` ran it
      again after a failure (a handler in a worker process sees 1).

    A plain slotted class rather than a frozen dataclass: one is built per handler run, and this
    is five times cheaper to construct. Treat it as immutable. The bus and the coordinator hand
    handlers subclasses that are also their own record of the run (one object per run, not
    two); what those add is private. They pickle as a plain ``ExecutionContext`` but compare
    and hash as themselves: each run is one of its own.
    """

    __slots__ = ("cancelled", "entity", "event", "execution_id", "parameter")

    attempt = 1  # a class attribute: a run of a retry sets its own (no cost to the others)

    def __init__(
        self,
        entity: str | None = None,
        execution_id: str | None = None,
        parameter: str | None = None,
        event: Event | None = None,
    ) -> None:
        self.entity = entity
        self.execution_id = execution_id
        self.parameter = parameter
        self.event = event
        self.cancelled = False

    @property
    def event_id(self) -> str | None:
        return None if self.event is None else self.event.id

    @property
    def event_name(self) -> str | None:
        return None if self.event is None else self.event.name

    @property
    def depth(self) -> int:
        return 0 if self.event is None else self.event.depth

    def note_wait(self, what: str, seconds: float) -> None:
        """This run spent *seconds* waiting for *what*, something outside the runtime that it
        shares with others (a model's request slot, its answers). Only a parallel call's branch
        keeps the tally, for the message of its timeout: time spent waiting counts against it,
        and a timeout that does not say so is a puzzle."""

    def _fields(self) -> tuple[Any, ...]:
        return (self.entity, self.execution_id, self.parameter, self.event)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionContext) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"ExecutionContext(entity={self.entity!r}, execution_id={self.execution_id!r}, "
                f"parameter={self.parameter!r}, event_id={self.event_id!r}, "
                f"event_name={self.event_name!r}, depth={self.depth})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExecutionContext, self._fields())


ROOT = ExecutionContext()
_current: ContextVar[ExecutionContext] = ContextVar("cxlang_execution_context", default=ROOT)


def current_context() -> ExecutionContext:
    """The context of the running handler (the root context outside any handler)."""
    return _current.get()


def check_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` if the running handler was cancelled: the way for
    a plain ``def`` handler on a thread, which cannot be interrupted, to stop when asked."""
    context = _current.get()
    if context.cancelled:
        raise asyncio.CancelledError(f"the handler handling {context.event_name!r} was cancelled")


@contextmanager
def waiting(what: str) -> Iterator[None]:
    """Count the time spent in the block as waiting for *what*, on the running handler's
    context (see :meth:`ExecutionContext.note_wait`); a block cut short by a cancellation,
    a timeout's, counts too."""
    context = _current.get()
    started = time.monotonic()
    try:
        yield
    finally:
        context.note_wait(what, time.monotonic() - started)


def set_context(context: ExecutionContext) -> None:
    """Install *context* in the current :class:`contextvars.Context` (called inside ``ctx.run``)."""
    _current.set(context)
