"""The in-process event bus: subscribe, emit, dispatch in FIFO order.

``emit`` only enqueues. Dispatch happens when the emitting code finishes or suspends: a drain
scheduled with ``call_soon`` takes events off the queue in order and starts each event's handlers
in subscription order (:func:`.handlers.start_handler`). A handler that never suspends runs to
completion before the next one starts, so programs that do not wait on anything print in a
deterministic order; a handler that suspends continues as a task and lets the drain go on.

A failing handler never stops the bus: it is logged and reported as ``system.error``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .context import ExecutionContext
from .context import _current as _execution_context
from .eager import tasks_start_later
from .errors import QueueFull, RuntimeClosed
from .events import Event, EventPattern, check_event_name
from .handlers import (
    Handler,
    HandlerKind,
    Running,
    Subscription,
    cancel_handler,
    classify,
    run_and_report,
    start_handler,
)
from .limits import NO_LIMIT, LimitExceeded
from .outcomes import Failure, describe
from .pool import HandlerPool
from .subscriptions import SubscriptionTable

if TYPE_CHECKING:
    from .observe import Observer
    from .retry import Retry

__all__ = ["SYSTEM_ERROR", "EventBus", "FailureDescription", "FailureListener",
           "Transport"]

FailureListener = Callable[[Event, Subscription, BaseException], None]
"""Told of every handler failure, with the exception itself (``system.error`` has only text)."""

FailureDescription = Callable[[Subscription, BaseException], tuple[str, str, str]]
"""What ``system.error`` says of a handler's failure: the handler, the kind of error, the
message (:attr:`EventBus.describe_failure`)."""

SYSTEM_ERROR = "system.error"
# Bound C functions: a Python call less on every emit.
_get_running_loop = asyncio.events._get_running_loop
_thread_ident = threading.get_ident
_current_context = _execution_context.get
_Task = asyncio.Task
_TASK = HandlerKind.TASK
_DRAIN_BATCH = 2048  # events per loop iteration, so a flood of events cannot starve the loop

logger = logging.getLogger("cxlang.bus")


class Transport(Protocol):
    """The seam to other processes (:mod:`cxlang.runtime.distributed`); ``None`` on a bus that
    stays in one process, which then pays one attribute test per emit and nothing else."""

    def publish(self, event: Event) -> None:
        """Send an event this process emitted to the other processes (never blocks)."""

    def subscriptions_changed(self) -> None:
        """The bus's subscriptions changed: tell the other processes what this one serves."""

    def remote_handlers(self, name: str) -> tuple[Subscription, ...]:
        """One unit per handler of *name* that other processes serve, for parallel calls."""


class EventBus:
    """Named events between handlers in one process."""

    def __init__(
        self,
        pool: HandlerPool,
        *,
        max_queue: int = 100_000,
        max_events: int | None = None,
        max_depth: int | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.pool = pool
        self.max_queue = max_queue
        # Run limits (see .limits); NO_LIMIT keeps the hot paths free of None tests.
        self.max_events = _bound("max_events", max_events)
        self.max_depth = _bound("max_depth", max_depth)
        self.tripped: LimitExceeded | None = None
        self.limit_listeners: list[Callable[[LimitExceeded], None]] = []
        self.handled = 0
        self._subscriptions = SubscriptionTable()
        self._queue: deque[Event] = deque()
        self._running: dict[_HandlerRun, Running] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # The thread _loop was last seen running on. An emit there needs no other test: asking
        # asyncio for the running loop costs a system call (getpid) whenever one runs. A loop
        # run again on another thread is seen there when it next schedules a drain.
        self._loop_thread: int | None = None
        self._drain_scheduled = False
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self.failure_listeners: list[FailureListener] = []
        # A language on top names handlers and errors its own way (the CX host does: "handler
        # at prog.cx:3", "runtime error"); the library's own words are Python's.
        self.describe_failure: FailureDescription = _python_failure
        # How an exception a parallel parameter's handler raised reads in ``_errors``; the CX
        # host keeps a fault of cxlang's own out of a CX program's sight.
        self.failure_of: Callable[[Exception], Failure] = Failure.from_exception
        self.transport: Transport | None = None
        # Spans for traces and progress (.observe); None costs one test per event.
        self.observer: Observer | None = None

    # Subscribing -----------------------------------------------------------------------------

    def subscribe(
        self,
        pattern: str,
        handler: Handler,
        *,
        entity: str | None = None,
        cpu_bound: bool = False,
        inline: bool = False,
        retry: Retry | None = None,
    ) -> Subscription:
        """Subscribe *handler* to *pattern*; *retry* is its own policy in parallel calls (see
        :class:`~.handlers.Subscription`)."""
        if not callable(handler):
            raise TypeError(f"a handler must be callable (a function or an 'async def'), got "
                            f"{type(handler).__name__}")
        kind = classify(handler, cpu_bound=cpu_bound, inline=inline)
        sub = Subscription(EventPattern(pattern), handler, kind, entity, self._remove, retry)
        self._subscriptions.add(sub)
        if self.transport is not None:
            self.transport.subscriptions_changed()
        return sub

    def unsubscribe(self, handler: Handler | Subscription) -> int:
        """Remove a subscription, or every subscription of a handler; returns how many."""
        found = [s for s in self._subscriptions if s is handler or s.callback is handler]
        for sub in found:
            sub.cancel()
        return len(found)

    def _remove(self, sub: Subscription) -> None:
        self._subscriptions.remove(sub)
        if self.transport is not None:
            self.transport.subscriptions_changed()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription, in subscription order."""
        return tuple(self._subscriptions)

    @property
    def reached(self) -> Mapping[str, tuple[Subscription, ...]]:
        """What :meth:`handlers_for` gave for each name asked before, as long as the
        subscriptions stay as they are: looked up without a call more, on hot paths."""
        return self._subscriptions.reached

    def handlers_for(self, name: str) -> tuple[Subscription, ...]:
        """The subscriptions an event called *name* reaches, in subscription order (cached)."""
        subs = self._subscriptions.reached.get(name)  # the usual case, without a call more
        return subs if subs is not None else self._subscriptions.reaching(name)

    # Emitting --------------------------------------------------------------------------------

    def make_event(self, name: str, payload: dict[str, Any] | None) -> Event:
        """A new event whose causal parent is the event being handled right now, if any."""
        cause = _current_context().event
        if cause is None:
            event = Event(name, payload)
        else:
            depth = cause.depth + 1
            if depth > self.max_depth:
                self._too_deep(name, cause)
            event = Event(name, payload, parent_id=cause.id, depth=depth)
        if self.observer is not None:
            self.observer.emitted(event)
        return event

    def _too_deep(self, name: str, cause: Event) -> None:
        exc = LimitExceeded(
            "depth", f"{name!r} would be {cause.depth + 1:,} causal hops from the first event "
            f"(emitted while handling {cause.name!r}; the limit is {self.max_depth:,})",
            self.max_depth)
        self.trip(exc)
        raise exc.again()

    def emit(self, name: str, payload: dict[str, Any] | None = None) -> Event:
        """Queue an event and return at once; raises :class:`QueueFull` at the bound.

        From a handler's worker thread, the event is handed to the loop's thread, and this
        returns once it is queued there (or raises there, as at the bound)."""
        if name not in _valid_names:
            _check_name(name)
        event = self.make_event(name, payload)
        if _thread_ident() != self._loop_thread and _get_running_loop() is None and \
                (loop := self._loop) is not None and loop.is_running():
            self._emit_from_thread(loop, event)
            return event
        self.enqueue(event)
        if self.transport is not None:
            self.transport.publish(event)
        return event

    def _emit_from_thread(self, loop: asyncio.AbstractEventLoop, event: Event) -> None:
        """Queue *event* on the loop's thread and wait until it is queued (so the bound holds
        and the drain is scheduled there); what the queue refuses is raised here."""
        queued: concurrent.futures.Future[None] = concurrent.futures.Future()

        def accept() -> None:
            try:
                self.enqueue(event)
                if self.transport is not None:
                    self.transport.publish(event)
            except BaseException as exc:
                queued.set_exception(exc)
            else:
                queued.set_result(None)

        try:
            loop.call_soon_threadsafe(accept)
        except RuntimeError:  # the loop closed meanwhile
            raise RuntimeClosed(f"cannot emit {event.name!r}: the runtime's loop has stopped") \
                from None
        while True:
            try:
                return queued.result(timeout=1.0)
            except TimeoutError:
                if loop.is_closed() or not loop.is_running():
                    raise RuntimeClosed(f"cannot emit {event.name!r}: the runtime's loop has "
                                        "stopped") from None

    def use_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the bus runs on, known before its first emit (a parallel call's thread
        handlers may emit before anything else did); called on that loop's thread."""
        self._loop, self._loop_thread = loop, _thread_ident()

    async def emit_async(self, name: str, payload: dict[str, Any] | None = None) -> Event:
        """Queue an event, waiting for room while the queue is at its bound (backpressure)."""
        if name not in _valid_names:
            _check_name(name)
        event = self.make_event(name, payload)
        while len(self._queue) >= self.max_queue:
            if len(self._room_waiters) >= self.max_queue:
                self._overflowing(event)
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(room)
            self._schedule_drain()
            await room
        self.enqueue(event)
        if self.transport is not None:
            self.transport.publish(event)
        return event

    def enqueue(self, event: Event) -> None:
        queue = self._queue
        if self._closed or len(queue) >= self.max_queue:
            self._refuse(event)
        queue.append(event)
        if not self._drain_scheduled:
            self._schedule_drain()

    def _refuse(self, event: Event) -> None:
        if self.tripped is not None:
            raise self.tripped.again()
        if self._closed:
            raise RuntimeClosed(f"cannot emit {event.name!r}: the runtime is closed")
        raise QueueFull(
            f"cannot emit {event.name!r}: the event queue is full ({self.max_queue:,} events "
            "waiting). From async code use 'await emit_async(...)' to wait for room, or raise "
            "the bound with max_queue=..."
        )

    def _schedule_drain(self) -> None:
        loop = _get_running_loop()
        if loop is None or self._drain_scheduled:
            return  # nothing runs yet: run_until_idle() starts the drain
        self._loop, self._loop_thread = loop, _thread_ident()
        self._drain_scheduled = True
        loop.call_soon(self._drain)

    # Dispatching -----------------------------------------------------------------------------

    def _drain(self) -> None:
        self._drain_scheduled = False
        queue = self._queue
        dispatch = self._subscriptions.reached
        pool = self.pool
        observer = self.observer
        budget = _DRAIN_BATCH
        # The event limit costs one test per batch, not per event: the batch stops at it.
        left = self.max_events - self.handled
        if left < budget:
            budget = left
            if not left and queue:
                self._too_many(queue[0])
                return
        batch = budget
        # On 3.11 an async def handler's task is made right here, without the two calls of
        # start_handler: nothing of it runs before the loop's next turn (tasks_start_later).
        loop = asyncio.get_running_loop()  # once a drain, not a handler: it costs a system call
        tasks_here = observer is None and tasks_start_later(loop)
        while queue and budget:
            budget -= 1
            event = queue.popleft()
            subs = dispatch.get(event.name)
            if subs is None:
                subs = self._subscriptions.reaching(event.name)
            if observer is not None:
                observer.dispatching(event, len(subs))
            for sub in subs:
                handler = _HandlerRun(self, event, sub)
                if tasks_here and sub.kind is _TASK:
                    handler._running = True
                    self._running[handler] = _Task(
                        run_and_report(sub.callback, event, handler, handler), loop=loop)
                    continue
                try:
                    future = start_handler(sub, event, handler, pool, handler, loop) \
                        if observer is None \
                        else observer.start_handler(sub, event, handler, pool, handler, loop)
                except BaseException as exc:  # it failed at once, CancelledError included
                    handler._ended = True
                    self._handler_failed(handler, exc)
                    if isinstance(exc, KeyboardInterrupt | SystemExit):
                        raise  # as asyncio does: they stop the loop
                    continue
                if future is not None and not handler._ended:
                    handler._running = True
                    self._running[handler] = future
        self.handled += batch - budget
        if queue:
            self._schedule_drain()
        self._wake_room_waiters()
        self._check_idle()

    def _wake_room_waiters(self) -> None:
        room = self.max_queue - len(self._queue)
        while self._room_waiters and room > 0:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1

    def report_failure(self, event: Event, sub: Subscription, exc: BaseException) -> None:
        """Report a handler's failure (to the failure listeners, else the log) and emit
        ``system.error`` (never for a handler of ``system.error`` itself)."""
        if isinstance(exc, LimitExceeded):
            # A limit checked outside the bus (the program layer's payload size) has not
            # tripped it yet: it stops the run here. Else the trip reported it once; every
            # handler it stops need not repeat it.
            self.trip(exc)
            return
        if self.failure_listeners:
            self.notify_failure(event, sub, exc)  # the listeners report it their own way
        else:
            trace = exc if logger.isEnabledFor(logging.DEBUG) else None  # tracebacks on request
            logger.error("handler %s failed on %s: %s: %s", sub.name, event.name,
                         type(exc).__name__, describe(exc), exc_info=trace)
        if event.name != SYSTEM_ERROR and not self._closed:
            handler, kind, message = self.describe_failure(sub, exc)
            payload = {"event": event.name, "handler": handler, "error": message, "type": kind}
            try:
                self.enqueue(Event(SYSTEM_ERROR, payload, parent_id=event.id,
                                   depth=event.depth + 1))
            except QueueFull:
                logger.error("system.error for %s dropped: the event queue is full", event.name)

    def notify_failure(self, event: Event, sub: Subscription, exc: BaseException) -> None:
        """Tell the failure listeners only (a handler serving a call from another process)."""
        if isinstance(exc, LimitExceeded):
            self.trip(exc)  # as in report_failure
            return
        for listener in self.failure_listeners:
            listener(event, sub, exc)

    # Waiting ---------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return not self._queue and not self._running

    async def run_until_idle(self) -> None:
        """Wait until no event is queued and no handler started by the bus is running.

        Raises :class:`LimitExceeded` if a run limit stops the bus (before or while waiting).
        """
        if self.tripped is not None:
            raise self.tripped.again()
        if self._queue:
            self._schedule_drain()
        if self.idle and not self._drain_scheduled:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(waiter)
        await waiter

    def _check_idle(self) -> None:
        if self._idle_waiters and self.idle and not self._drain_scheduled:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def running_handlers(self) -> list[str]:
        """Describe what is still running, for messages such as a run's time limit."""
        return [f"{h._sub.name} (on {h.event.name})" for h in self._running]

    async def cancel_running(self) -> None:
        """Cancel every handler the bus started and wait for them to finish (a thread handler
        is told, not waited for: a thread cannot be interrupted)."""
        for handler, future in list(self._running.items()):
            handler.cancel(future)
        if self._running:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def close(self) -> None:
        self._closed = True
        self._queue.clear()

    # Limits ----------------------------------------------------------------------------------

    def _too_many(self, next_event: Event) -> None:
        self.trip(LimitExceeded(
            "event", f"{self.handled:,} events handled (the next was {next_event.name!r})",
            self.max_events))

    def _overflowing(self, event: Event) -> None:
        """As many emitters wait for room as the queue holds: a fan-out that grows without
        end (each handler emits more than one event). Waiting on would pile up suspended
        handlers until memory runs out; stop instead."""
        exc = LimitExceeded(
            "queue", f"{len(self._queue):,} events queued and {len(self._room_waiters):,} "
            f"emits waiting for room (emitting {event.name!r}): events are emitted faster than "
            "they are handled", self.max_queue)
        self.trip(exc)
        raise exc.again()

    def trip(self, exc: LimitExceeded) -> None:
        """Stop the run: drop what is queued, refuse new events, fail the idle waiters with
        *exc* and tell the limit listeners. Handlers already running are left to their owner
        (``Runtime.aclose`` cancels them). The first limit reached is the one reported."""
        if self.tripped is not None:
            return
        self.tripped = exc
        self._closed = True
        self._queue.clear()
        self._wake_room_waiters()  # their emits now fail with the limit
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc.again())
        for listener in self.limit_listeners:
            listener(exc)

    def _handler_failed(self, handler: _HandlerRun, error: BaseException) -> None:
        if not (handler.cancelled and isinstance(error, asyncio.CancelledError)):
            self.report_failure(handler.event, handler._sub, error)


def _bound(name: str, value: int | None) -> int:
    if value is None:
        return NO_LIMIT
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (or None for no limit), got {value}")
    return value


class _HandlerRun(ExecutionContext):
    """One run of a handler the bus started: the execution context the handler sees, and the
    :data:`~.handlers.Finished` it tells how it ended (one object per handler run)."""

    __slots__ = ("_bus", "_ended", "_running", "_sub")
    event: Event  # always set here

    def __init__(self, bus: EventBus, event: Event, sub: Subscription) -> None:
        self.entity = sub.entity
        self.execution_id = None
        self.parameter = None
        self.event = event
        self._bus = bus
        self._sub = sub
        self._running = False  # still running after the drain that started it
        self._ended = False
        self.cancelled = False

    __eq__ = object.__eq__  # a run is itself, whatever its context looks like
    __hash__ = object.__hash__

    def __call__(self, value: Any, error: BaseException | None) -> None:
        if self._ended:
            return  # after a cancel a second report can come; the first one counts
        self._ended = True
        if error is not None:
            self._bus._handler_failed(self, error)
        if self._running:  # it ended after the drain that started it: out of the bus's table
            bus = self._bus
            running = bus._running
            del running[self]
            if not running and bus._idle_waiters:  # idle can only come with the last end
                bus._check_idle()

    def cancel(self, future: Running) -> None:
        self.cancelled = True
        cancel_handler(future, self)


_valid_names: set[str] = set()  # names emitted before, checked once each
_VALID_NAMES_MAX = 10_000


def _python_failure(sub: Subscription, exc: BaseException) -> tuple[str, str, str]:
    return sub.name, type(exc).__name__, describe(exc)


def _check_name(name: str) -> None:
    check_event_name(name)
    if len(_valid_names) < _VALID_NAMES_MAX:
        _valid_names.add(name)
