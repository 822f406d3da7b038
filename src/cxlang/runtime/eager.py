"""Eager start: run a coroutine's first step now; make a task only if it suspends.

Most handlers finish without ever awaiting anything (a lookup, a bit of arithmetic, an ``emit``).
Wrapping each in an :class:`asyncio.Task` costs a task object, a loop iteration and a callback
before the handler even starts. Python 3.12 added ``eager_task_factory`` for this; we need it on
3.11 too, and we also want no task object at all when the handler completes at once, so we step
the coroutine ourselves:

* :func:`first_step` sends ``None`` into the coroutine inside a given context. It raises
  ``StopIteration`` when the coroutine returned, the handler's own exception when it failed, and
  otherwise returns what the coroutine yielded to the event loop (a future, or ``None`` for a bare
  ``sleep(0)``).
* :func:`continue_in_task` hands that half-run coroutine to a real task, first yielding the
  pending future so the task waits on it exactly as if it had run the first step itself.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from contextvars import Context
from typing import Any

__all__ = ["continue_in_task", "first_step"]

AnyCoroutine = Coroutine[Any, Any, Any]


def first_step(coro: AnyCoroutine, context: Context) -> Any:
    """Run *coro* up to its first suspension inside *context*; see the module docstring."""
    return context.run(coro.send, None)


def continue_in_task(
    loop: asyncio.AbstractEventLoop, coro: AnyCoroutine, pending: Any, context: Context
) -> asyncio.Task[Any]:
    """Finish a coroutine that :func:`first_step` left suspended on *pending*, in a task."""
    return loop.create_task(_resume(coro, pending), context=context)


async def _resume(coro: AnyCoroutine, pending: Any) -> Any:
    return await _drive(coro, pending)


@types.coroutine
def _drive(coro: AnyCoroutine, pending: Any) -> Generator[Any, Any, Any]:
    # Relay between the task and the inner coroutine: what the task sends or throws (a result
    # wake-up, a cancellation) goes in; what the coroutine yields (the next future) goes out.
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation must reach the handler too
            try:
                pending = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as stop:
                return stop.value
