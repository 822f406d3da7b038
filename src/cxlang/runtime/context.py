"""The execution context ("consciousness context") visible to every handler.

One immutable :class:`ExecutionContext` lives in a :mod:`contextvars` variable. asyncio copies
context into every task, the pool copies it into worker threads and pickles it into worker
processes, so a branch always knows who it runs for and why, wherever it runs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["ExecutionContext", "current_context"]


class ExecutionContext:
    """Who is running and what led here.

    - ``entity``: the entity whose handler runs (``None`` for a top-level handler).
    - ``execution_id``: the parallel call this branch belongs to; siblings share it.
    - ``parameter``: the parallel handler parameter this branch computes.
    - ``event_id`` / ``event_name``: the event being handled (the causal parent of what it emits).
    - ``depth``: causal hops from the first emit.

    A plain slotted class rather than a frozen dataclass: one is built per handler run, and this
    is five times cheaper to construct. Treat it as immutable.
    """

    __slots__ = ("depth", "entity", "event_id", "event_name", "execution_id", "parameter")

    def __init__(
        self,
        entity: str | None = None,
        execution_id: str | None = None,
        parameter: str | None = None,
        event_id: str | None = None,
        event_name: str | None = None,
        depth: int = 0,
    ) -> None:
        self.entity = entity
        self.execution_id = execution_id
        self.parameter = parameter
        self.event_id = event_id
        self.event_name = event_name
        self.depth = depth

    def _fields(self) -> tuple[Any, ...]:
        return (self.entity, self.execution_id, self.parameter, self.event_id, self.event_name,
                self.depth)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionContext) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        names = ExecutionContext.__slots__
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in sorted(names))
        return f"ExecutionContext({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExecutionContext, self._fields())


ROOT = ExecutionContext()
_current: ContextVar[ExecutionContext] = ContextVar("cxlang_execution_context", default=ROOT)


def current_context() -> ExecutionContext:
    """The context of the running handler (the root context outside any handler)."""
    return _current.get()


def set_context(context: ExecutionContext) -> None:
    """Install *context* in the current :class:`contextvars.Context` (called inside ``ctx.run``)."""
    _current.set(context)
