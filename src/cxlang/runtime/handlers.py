"""Subscriptions, and how a handler is started wherever it has to run.

Both the bus and the coordinator start handlers the same way, through :func:`start_handler`:

* ``async def`` handlers get a task of their own (eagerly started on Python 3.12+), so
  task-bound code works in them from the first line; subscribed ``inline=True``, they are
  stepped right here with no task, and get one only if they suspend (:mod:`.eager`);
* plain functions run in the pool's threads, unless subscribed ``inline=True`` (fast, non-blocking
  code that may run on the loop);
* ``cpu_bound=True`` handlers run in the pool's worker processes.

Each run gets its own copy of the caller's contextvars with a fresh :class:`ExecutionContext`, so
branches are isolated from each other and from the dispatcher.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import types
from collections.abc import Callable, Coroutine
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from .context import ExecutionContext
from .context import _current as _execution_context
from .eager import continue_in_task, start_in_task
from .events import EventPattern
from .threads import HandlerThread

if TYPE_CHECKING:
    from .events import Event
    from .pool import HandlerPool
    from .retry import Retry

__all__ = ["Finished", "Handler", "HandlerKind", "Running", "Subscription", "cancel_handler",
           "classify", "run_and_report", "start_handler"]

Finished = Callable[[Any, "BaseException | None"], None]
"""Told exactly once how a handler ended: ``(value, None)``, or ``(None, exception)``, where a
:class:`asyncio.CancelledError` means it was cancelled."""

Handler = Callable[["Event"], Any]
Running: TypeAlias = "asyncio.Future[Any] | HandlerThread"
"""What :func:`start_handler` gives back to cancel a handler that is still running."""
_CoroutineType = types.CoroutineType
# Bound C methods: one call less per handler than set_context().
_set_context = _execution_context.set


class HandlerKind(enum.Enum):
    TASK = "task"  # async def: a task of its own (eagerly started on 3.12+)
    INLINE_COROUTINE = "inline coroutine"  # async def, inline=True: no task unless it suspends
    INLINE = "inline"  # def, inline=True: called on the loop
    THREAD = "thread"  # def: the pool's threads
    PROCESS = "process"  # cpu_bound=True: the pool's processes


# Module globals: one lookup each in start_handler, not a global plus an attribute.
_TASK = HandlerKind.TASK
_INLINE_COROUTINE = HandlerKind.INLINE_COROUTINE
_INLINE = HandlerKind.INLINE
_THREAD = HandlerKind.THREAD


class Subscription:
    """One handler subscribed to one pattern. ``cancel()`` unsubscribes it.

    ``retry``: the handler's own policy when it runs as a branch of a parallel call; it wins
    over the call's, since the handler knows best whether running it again can help.
    """

    __slots__ = ("_unsubscribe", "active", "callback", "entity", "kind", "name", "pattern",
                 "retry")

    def __init__(
        self,
        pattern: EventPattern,
        callback: Handler,
        kind: HandlerKind,
        entity: str | None,
        unsubscribe: Callable[[Subscription], None],
        retry: Retry | None = None,
    ) -> None:
        self.pattern = pattern
        self.callback = callback
        self.kind = kind
        self.entity = entity
        self.name = _handler_name(callback)
        self.active = True
        self._unsubscribe = unsubscribe
        self.retry = retry

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._unsubscribe(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.pattern.text} -> {self.name} ({self.kind.value})>"


def _handler_name(callback: Handler) -> str:
    inner = getattr(callback, "func", callback)  # a functools.partial names its function
    name = getattr(inner, "__qualname__", None)
    return name if isinstance(name, str) else repr(callback)


def classify(callback: Handler, *, cpu_bound: bool, inline: bool) -> HandlerKind:
    """Decide once, at subscription, where a handler runs."""
    if cpu_bound:
        if inline:
            raise ValueError("a handler cannot be both cpu_bound and inline")
        return HandlerKind.PROCESS
    is_async = inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
        getattr(callback, "__call__", None)  # noqa: B004 - an object with ``async def __call__``
    )
    if is_async:
        return HandlerKind.INLINE_COROUTINE if inline else HandlerKind.TASK
    return HandlerKind.INLINE if inline else HandlerKind.THREAD


def start_handler(
    sub: Subscription,
    event: Event,
    context: ExecutionContext,
    pool: HandlerPool,
    finished: Finished,
    loop: asyncio.AbstractEventLoop,
) -> Running | None:
    """Start *sub* on *event* and tell *finished* how it ends, perhaps before this returns;
    *loop* is the running loop (the caller knows it; asyncio asks the system for it).

    Returns what to cancel (with :func:`cancel_handler`) while the handler runs, or ``None`` if
    it has already ended. A coroutine handler reports from inside its own task, the moment it
    ends: cheaper than a done callback, which costs a callback handle and a loop iteration per
    handler. An ``inline=True`` handler that fails right here, before it ever suspends, raises
    instead (any exception, ``CancelledError`` and other ``BaseException`` included): the
    caller reports it from its own frame, which matters when the failure is a
    ``RecursionError`` (handlers that call services whose handlers call services) and every
    frame counts.
    """
    kind = sub.kind
    if kind is _INLINE_COROUTINE:
        ctx = copy_context()
        coro, step = ctx.run(_first_step, sub.callback, event, context)
        if coro is None:
            finished(step, None)  # it returned in its first step
            return None
        return continue_in_task(coro, step, finished, ctx, loop)
    if kind is _TASK:
        task = start_in_task(run_and_report(sub.callback, event, context, finished), loop)
        return None if task.done() else task  # an eager task (3.12+) that finished at once
    if kind is _INLINE:
        value = copy_context().run(_call, sub.callback, event, context)
        if type(value) is _CoroutineType:
            _refuse_coroutine(sub, value)
        finished(value, None)
        return None
    if kind is _THREAD:
        return pool.run_in_thread(copy_context(), _call_in_thread, sub, event, context, finished)
    future = pool.run_in_process(sub.callback, sub.name, event, context)
    future.add_done_callback(_FutureReport(finished))
    return future


async def run_and_report(
    fn: Handler, event: Event, context: ExecutionContext, finished: Finished
) -> None:
    """A task's whole life: run the handler with *context* installed, report how it ended.

    The handler's coroutine is made here, inside the task, so a task cancelled before its
    first step leaves no coroutine behind unawaited (and :func:`cancel_handler` reports it).
    Every end is reported, ``BaseException`` included; ``KeyboardInterrupt`` and
    ``SystemExit`` then go on to stop the loop, as in any task.
    """
    _set_context(context)  # in the task's own copy of the context
    try:
        value = await fn(event)
    except BaseException as exc:
        finished(None, exc)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    else:
        finished(value, None)


def cancel_handler(future: Running, finished: Finished) -> None:
    """Cancel a handler that :func:`start_handler` started with *finished*.

    A task cancelled before its first step ends without running any of its code, so the
    report from inside it never comes: the future's end is reported to *finished* as well.
    *finished* therefore hears twice after a cancel, in the usual case, and must ignore the
    second report. A thread handler reports its own cancellation (:mod:`.threads`).
    """
    if isinstance(future, HandlerThread):
        future.cancel()
        return
    future.cancel()
    future.add_done_callback(_FutureReport(finished))


class _FutureReport:
    """A done callback that tells a :data:`Finished` what its future ended with."""

    __slots__ = ("finished",)

    def __init__(self, finished: Finished) -> None:
        self.finished = finished

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.finished(None, asyncio.CancelledError())
        elif (exc := future.exception()) is not None:
            self.finished(None, exc)
        else:
            self.finished(future.result(), None)


def _first_step(fn: Handler, event: Event, context: ExecutionContext) -> tuple[Any, Any]:
    """Install the execution context, create the handler's coroutine, step it once:
    ``(coroutine, what it yielded)``, or ``(None, result)`` if it returned. The
    ``StopIteration`` is caught where it is raised: one that travels up frames costs more than
    the rest of a short handler."""
    _set_context(context)
    coro = fn(event)
    try:
        return coro, coro.send(None)
    except StopIteration as done:
        return None, done.value


def _call(fn: Handler, event: Event, context: ExecutionContext) -> Any:
    _set_context(context)
    return fn(event)


def _call_in_thread(sub: Subscription, event: Event, context: ExecutionContext) -> Any:
    _set_context(context)  # in the thread: the loop, which queues every handler, does less
    value = sub.callback(event)
    if type(value) is _CoroutineType:
        _refuse_coroutine(sub, value)
    return value


def _refuse_coroutine(sub: Subscription, coro: Coroutine[Any, Any, Any]) -> NoReturn:
    coro.close()  # never awaited, and never warned about
    raise TypeError(
        f"handler {sub.name} returned a coroutine instead of a result: it is a plain function "
        "that calls an async one; subscribe an 'async def' handler, or await the coroutine "
        "inside one"
    )
