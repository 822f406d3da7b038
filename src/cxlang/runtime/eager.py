"""Starting handler coroutines: eagerly where it is safe, in a task of their own where it is not.

Most handlers finish without ever awaiting anything (a lookup, a bit of arithmetic, an ``emit``).
Running their first step at once, with no task, saves a task object, a loop iteration and a
callback each. But code that is tied to its task (``asyncio.timeout()``, ``current_task()``, the
locks and cancel scopes of anyio and httpx) must see, from its first line, the task it will
live in. So there are two ways, chosen per handler:

* for handlers subscribed ``inline=True`` (compiled CX handlers are), the first step runs
  right where the handler is started, with no task, and :func:`continue_in_task` makes one
  only if the coroutine suspended (:func:`resumed`). The cheapest start there is, for code
  that uses no task-bound API before its first ``await``.
* :func:`start_in_task` for every other coroutine handler: a task of its own from the start.
  On Python 3.12+ it is an eager task (its first step runs now, as that task, and a handler
  that finishes in it is done at once); on 3.11, which has no eager tasks, the task starts on
  the loop's next turn, in subscription order, as ``asyncio.TaskGroup`` tasks do.

A task that takes over a coroutine already stepped once drives it through :class:`_Resumed`,
whose first step gives the task the future the eager step stopped on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any

__all__ = ["continue_in_task", "resumed", "start_in_task"]

_Task = asyncio.Task
_get_running_loop = asyncio.get_running_loop

AnyCoroutine = Coroutine[Any, Any, Any]


def resumed(coro: AnyCoroutine, pending: Any) -> _Resumed:
    """What a task awaits to run the rest of *coro*, stepped once without a task until it
    yielded *pending*."""
    # A bare yield (``sleep(0)``) only asks to let the loop go round once, and the task's first
    # step comes a round later anyway: the task can resume the coroutine directly.
    return _Resumed(coro, _NOTHING if pending is None else pending)


def start_in_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task of its own for *coro*, eagerly started where Python can (see the docstring).

    The task copies the current context. It may come back already done.
    """
    loop = _get_running_loop()
    if loop.get_task_factory() is not None:
        return loop.create_task(coro)  # the application's own tasks (instrumented, say)
    if sys.version_info >= (3, 12):
        return _Task(coro, loop=loop, eager_start=True)
    return _Task(coro, loop=loop)  # what loop.create_task does, minus two checks and a frame


def continue_in_task(coro: Coroutine[Any, Any, None], context: Context) -> asyncio.Task[None]:
    """A task for the rest of a handler whose first step ran without one, in *context*.

    Never eagerly started: a handler that yielded to the loop (``sleep(0)``) goes on only
    after the loop has gone round.
    """
    loop = _get_running_loop()
    if loop.get_task_factory() is not None:
        return loop.create_task(coro, context=context)
    return _Task(coro, loop=loop, context=context)


class _Resumed(Generator[Any, Any, Any]):
    """A coroutine that was already stepped once, as the task that awaits it sees it.

    A plain object rather than a wrapping ``async def``: no extra frame on every resume. A
    coroutine suspended inside an ``await`` cannot be awaited again, so this iterator stands in.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: AnyCoroutine, first: Any) -> None:
        self._coro = coro
        self._first: Any = first

    def send(self, value: Any) -> Any:
        if self._first is not _NOTHING:
            first, self._first = self._first, _NOTHING
            return first
        return self._coro.send(value)

    def __next__(self) -> Any:
        # What an awaiting task calls to resume (with None): send's body, one frame less.
        if self._first is not _NOTHING:
            first, self._first = self._first, _NOTHING
            return first
        return self._coro.send(None)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = _NOTHING  # a task cancelled before its first step still throws in here
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the legacy signature

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self


_NOTHING = object()
