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
from collections.abc import Callable
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from .context import ExecutionContext, set_context
from .context import _current as _execution_context
from .eager import start_in_task, start_without_task
from .events import EventPattern

if TYPE_CHECKING:
    from .events import Event
    from .pool import ParallelTaskPool

__all__ = ["Handler", "HandlerKind", "Running", "Subscription", "classify", "start_handler"]

Handler = Callable[["Event"], Any]
_set_context = _execution_context.set  # one call less per handler than set_context()


class HandlerKind(enum.Enum):
    TASK = "task"  # async def: a task of its own (eagerly started on 3.12+)
    INLINE_COROUTINE = "inline coroutine"  # async def, inline=True: no task unless it suspends
    INLINE = "inline"  # def, inline=True: called on the loop
    THREAD = "thread"  # def: the pool's threads
    PROCESS = "process"  # cpu_bound=True: the pool's processes


class Subscription:
    """One handler subscribed to one pattern. ``cancel()`` unsubscribes it."""

    __slots__ = ("_unsubscribe", "active", "callback", "entity", "kind", "name", "pattern")

    def __init__(
        self,
        pattern: EventPattern,
        callback: Handler,
        kind: HandlerKind,
        entity: str | None,
        unsubscribe: Callable[[Subscription], None],
    ) -> None:
        self.pattern = pattern
        self.callback = callback
        self.kind = kind
        self.entity = entity
        self.name = _describe(callback)
        self.active = True
        self._unsubscribe = unsubscribe

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._unsubscribe(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.pattern.text} -> {self.name} ({self.kind.value})>"


def _describe(callback: Handler) -> str:
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


class Running:
    """Returned by :func:`start_handler` when the handler is still running in *future*."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future


def start_handler(
    sub: Subscription, event: Event, context: ExecutionContext, pool: ParallelTaskPool
) -> Any:
    """Start *sub* on *event*: its result if it finished at once, else a :class:`Running`.

    A handler that fails at once raises here; the caller decides what a failure means.
    """
    kind = sub.kind
    if kind is HandlerKind.INLINE_COROUTINE:
        try:
            return Running(start_without_task(_FirstStep(sub.callback, event, context),
                                              copy_context()))
        except StopIteration as done:
            return done.value
    if kind is HandlerKind.TASK:
        ctx = copy_context()
        task = start_in_task(ctx.run(_call, sub.callback, event, context), ctx)
        if task.done():  # an eager task (3.12+) that finished in its first step
            return task.result()
        return Running(task)
    if kind is HandlerKind.INLINE:
        return copy_context().run(_call, sub.callback, event, context)
    if kind is HandlerKind.THREAD:
        ctx = copy_context()
        ctx.run(set_context, context)
        return Running(pool.run_in_thread(ctx, sub.callback, event))
    return Running(pool.run_in_process(sub.callback, event, context))


class _FirstStep:
    """Install the execution context, create the handler's coroutine, step it once."""

    __slots__ = ("context", "event", "fn")

    def __init__(self, fn: Handler, event: Event, context: ExecutionContext) -> None:
        self.fn = fn
        self.event = event
        self.context = context

    def __call__(self) -> tuple[Any, Any]:
        _set_context(self.context)
        coro = self.fn(self.event)
        return coro, coro.send(None)


def _call(fn: Handler, event: Event, context: ExecutionContext) -> Any:
    _set_context(context)
    return fn(event)

