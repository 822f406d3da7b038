"""Eager start: run a coroutine's first step now; make a task only if it suspends.

Most handlers finish without ever awaiting anything (a lookup, a bit of arithmetic, an ``emit``).
Wrapping each in an :class:`asyncio.Task` costs a task object, a loop iteration and a callback
before the handler even starts. Python 3.12 added ``eager_task_factory`` for this; we need it on
3.11 too, and we also want no task object at all when the handler completes at once, so we step
the coroutine ourselves (:func:`.handlers.start_handler` sends the first ``None``).

If the coroutine suspended, it yielded a future (or ``None`` for a bare ``sleep(0)``) to the
event loop. :func:`continue_in_task` hands the half-run coroutine to a real task through a
:class:`_Resumed` wrapper, whose first step gives the task that same future, so the task waits
on it exactly as if it had run the first step itself; every later step goes straight through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any

__all__ = ["continue_in_task"]

AnyCoroutine = Coroutine[Any, Any, Any]


def continue_in_task(
    loop: asyncio.AbstractEventLoop, coro: AnyCoroutine, pending: Any, context: Context
) -> asyncio.Task[Any]:
    """Finish a coroutine that was stepped once and is suspended on *pending*, in a task."""
    if pending is None:
        # A bare yield (``sleep(0)``) only asks to let the loop go round once, and the task's
        # first step comes a round later anyway: the task can resume the coroutine directly.
        return loop.create_task(coro, context=context)
    return loop.create_task(_Resumed(coro, pending), context=context)


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine that was already stepped once, as a task sees it.

    A plain object rather than a wrapping ``async def``: no extra frame on every resume, and a
    fraction of the memory per suspended handler.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: AnyCoroutine, pending: Any) -> None:
        self._coro = coro
        self._first: Any = pending

    def send(self, value: Any) -> Any:
        if self._first is not _GIVEN:
            first, self._first = self._first, _GIVEN
            return first
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = _GIVEN  # a task cancelled before its first step still throws in here
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the legacy signature

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        raise TypeError("a resumed handler is driven by its task, never awaited")


_GIVEN = object()
