"""Starting handler coroutines: eagerly where it is safe, in a task of their own where it is not.

Most handlers finish without ever awaiting anything (a lookup, a bit of arithmetic, an ``emit``).
Running their first step at once, with no task, saves a task object, a loop iteration and a
callback each. But code that is tied to its task (``asyncio.timeout()``, ``current_task()``, the
locks and cancel scopes of anyio and httpx) must see, from its first line, the task it will
live in. So there are two ways, chosen per handler:

* for handlers subscribed ``inline=True`` (compiled CX handlers are), the first step runs
  right where the handler is started, with no task, and :func:`continue_in_task` makes one
  only if the coroutine suspended. The cheapest start there is, for code that uses no
  task-bound API before its first ``await``.
* :func:`start_in_task` for every other coroutine handler: a task of its own from the start.
  On Python 3.12+ it is an eager task (its first step runs now, as that task, and a handler
  that finishes in it is done at once); on 3.11, which has no eager tasks, the task starts on
  the loop's next turn, in subscription order, as ``asyncio.TaskGroup`` tasks do.

The task that takes over a coroutine already stepped once awaits it through a
:class:`_Resumed`, and reports how the handler ended.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any

__all__ = ["continue_in_task", "start_in_task", "tasks_start_later"]

_Task = asyncio.Task
_CancelledError = asyncio.CancelledError
_EAGER_TASKS = sys.version_info >= (3, 12)  # asyncio.Task(..., eager_start=True)

AnyCoroutine = Coroutine[Any, Any, Any]
Report = Callable[[Any, "BaseException | None"], None]


def start_in_task(
    coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None]:
    """A task of its own for *coro* on *loop*, the running loop, eagerly started where Python
    can (see the docstring).

    The task copies the current context. It may come back already done. The caller names the
    loop: asking asyncio for it costs a system call on 3.11 (``getpid``), once per handler.
    """
    if loop.get_task_factory() is not None:
        return loop.create_task(coro)  # the application's own tasks (instrumented, say)
    if sys.version_info >= (3, 12):
        return _Task(coro, loop=loop, eager_start=True)
    return _Task(coro, loop=loop)  # what loop.create_task does, minus two checks and a frame


def tasks_start_later(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether :func:`start_in_task` on *loop* gives a plain ``asyncio.Task`` whose first step
    comes on a later turn of the loop (Python 3.11, no task factory).

    Then nothing of the coroutine runs, ends or fails before the task is made, and a caller
    starting many handlers at once may make their tasks itself, ``asyncio.Task(coro,
    loop=loop)``, without two calls a handler.
    """
    return not _EAGER_TASKS and loop.get_task_factory() is None


def continue_in_task(
    coro: AnyCoroutine, pending: Any, finished: Report, context: Context,
    loop: asyncio.AbstractEventLoop,
) -> asyncio.Task[None]:
    """A task on *loop*, the running loop, for the rest of *coro*, stepped once without a task
    until it yielded *pending*; *finished* hears how it ends. Runs in *context*.

    Never eagerly started: a handler that yielded to the loop (``sleep(0)``) goes on only
    after the loop has gone round.
    """
    # A bare yield (``sleep(0)``) only asks to let the loop go round once, and the task's first
    # step comes a round later anyway: the task can resume the coroutine directly.
    rest = _report_rest(_Resumed(coro, _NOTHING if pending is None else pending), finished)
    # Primed: suspended inside its await before any task runs it. A task cancelled before its
    # first step throws the cancellation into its coroutine; unprimed, the wrapper would end
    # without running a line, and the handler, suspended in its first step, would be closed
    # (GeneratorExit) instead of cancelled: its ``except CancelledError`` skipped, awaits in
    # its ``finally`` refused, nested calls left running.
    rest.send(None)
    if loop.get_task_factory() is not None:
        return loop.create_task(rest, context=context)
    return _Task(rest, loop=loop, context=context)


async def _report_rest(resumed: _Resumed, finished: Report) -> None:
    """The rest of a handler, and the report of how it ended (every end, ``BaseException``
    included; ``KeyboardInterrupt`` and ``SystemExit`` then go on to stop the loop, as in any
    task)."""
    try:
        value = await resumed
    except BaseException as exc:
        finished(None, exc)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    else:
        finished(value, None)


class _Resumed(Generator[Any, Any, Any]):
    """A coroutine already stepped once, as the coroutine that awaits it sees it.

    A plain object rather than a wrapping ``async def``: no extra frame on every resume (a
    coroutine suspended inside an ``await`` cannot be awaited again, so this stands in). It
    first yields nothing (the priming step of :func:`continue_in_task`), then the future the
    first step stopped on, then hands every step to the coroutine.
    """

    __slots__ = ("_ahead", "_coro", "_pending")

    def __init__(self, coro: AnyCoroutine, pending: Any) -> None:
        self._coro = coro
        self._pending: Any = _PRIMING
        self._ahead: Any = pending  # what the task's first step gets (_NOTHING: go on at once)

    def send(self, value: Any) -> Any:
        if self._pending is _NOTHING:
            return self._coro.send(value)
        return self.__next__()  # its first steps, which are sent nothing

    def __next__(self) -> Any:
        # What an awaiting coroutine calls to resume (with None): send's body, one frame less.
        pending = self._pending
        if pending is _NOTHING:
            return self._coro.send(None)
        if pending is _PRIMING:
            self._pending = self._ahead
            return None
        self._pending = _NOTHING
        return pending

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        pending = self._pending
        if pending is not _NOTHING:
            # Cancelled before the task's first step. A task would cancel the future its
            # coroutine waits on and throw in once that is done: do exactly that.
            self._pending = _NOTHING
            cancel = getattr(pending, "cancel", None)
            if cancel is not None and cancel():
                return pending
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the legacy signature

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self


_NOTHING = object()
_PRIMING = object()
