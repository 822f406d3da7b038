"""Subscriptions, and how a handler is started wherever it has to run.

Both the bus and the coordinator start handlers the same way, through :func:`start_handler`:

* ``async def`` handlers are stepped eagerly (:mod:`.eager`): one that never suspends finishes
  right here, with no task; one that suspends continues in a task.
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
from .eager import continue_in_task
from .events import EventPattern

if TYPE_CHECKING:
    from .events import Event
    from .pool import ParallelTaskPool

__all__ = ["Handler", "HandlerKind", "Running", "Subscription", "classify", "start_handler"]

Handler = Callable[["Event"], Any]
_set_context = _execution_context.set  # one call less per handler than set_context()


class HandlerKind(enum.Enum):
    COROUTINE = "coroutine"
    INLINE = "inline"
    THREAD = "thread"
    PROCESS = "process"


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
        return HandlerKind.COROUTINE
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
    if kind is HandlerKind.COROUTINE:
        ctx = copy_context()
        try:
            coro, pending = ctx.run(_first_step, sub.callback, event, context)
        except StopIteration as done:
            return done.value
        return Running(continue_in_task(asyncio.get_running_loop(), coro, pending, ctx))
    if kind is HandlerKind.INLINE:
        return copy_context().run(_call, sub.callback, event, context)
    if kind is HandlerKind.THREAD:
        ctx = copy_context()
        ctx.run(set_context, context)
        return Running(pool.run_in_thread(ctx, sub.callback, event))
    return Running(pool.run_in_process(sub.callback, event, context))


def _first_step(fn: Handler, event: Event, context: ExecutionContext) -> tuple[Any, Any]:
    _set_context(context)
    coro = fn(event)
    return coro, coro.send(None)


def _call(fn: Handler, event: Event, context: ExecutionContext) -> Any:
    _set_context(context)
    return fn(event)

