"""ParallelHandlerCoordinator: run every handler parameter of a call at once.

One call is one :class:`_ParallelCall`. Each parameter is a *branch*; each handler subscribed to
the parameter's event is a *unit* of that branch. Units start in declaration order (an inline
handler that never suspends finishes inside ``start``, with no task and no timer), as long as
the call's ``max_concurrency`` and the pool's budget allow; the rest wait in a queue and start as
others finish. A unit that suspends gets a deadline, kept by the coordinator's
:class:`~.deadlines.Deadlines` (one timer for all of its calls); when it passes, the unit is
cancelled (its ``finally`` runs) and its branch fails with ``timeout``. Each unit is told how
its handler ended by the handler itself (:func:`.handlers.start_handler`), and a branch is its
own outcome once its units are done.

The guarantees are those of a task group: cancelling the caller cancels every branch, and the
call does not return, normally or by exception, while any unit it started is still running
(a thread cannot be interrupted: see :mod:`.threads` for what holds for thread handlers).
A handler that raises a ``BaseException`` that is not an ``Exception`` (nor a cancellation)
cancels its siblings, and the call raises it once they have ended, as a task group does.
Unlike a task group, a failing branch does not cancel its siblings unless the call is
``fail_fast``: the failure is recorded and the others' results are kept.

Under a :class:`~.retry.Retry` (the call's, or a handler's own, which wins), a unit that fails
with a kind the policy lists is not recorded: its slot is given back, and after the policy's
wait a fresh unit (:class:`_Retry`, one object per run as ever) joins the front of the queue,
with a deadline of its own. Until its last attempt fails the branch has not failed, so
fail-fast does not stop the call for it; stopping the call (the caller's cancellation,
fail-fast, ``aclose``) cancels the waits, and their branches fail ``cancelled``.

Plain delivery (:meth:`ParallelHandlerCoordinator.emit_parallel`, behind ``Runtime.publish``)
runs the same way as a :class:`_Delivery`: no deadline, no ``no_handler``, and a failing
handler is reported as ``system.error``.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, cast

from .bus import EventBus
from .context import ExecutionContext
from .context import _current as _execution_context
from .deadlines import Deadlines
from .eager import tasks_start_later
from .errors import RuntimeClosed
from .events import Event, ReadOnlyPayload, new_id
from .handlers import (
    HandlerKind,
    Running,
    Subscription,
    cancel_handler,
    start_handler,
)
from .limits import LimitExceeded
from .mapper import PayloadPropertyMapper
from .outcomes import BranchOutcome, Failure, ParallelExecutionResult
from .pool import HandlerPool
from .resolver import HandlerParameters
from .retry import Retry
from .threads import HandlerThread

__all__ = ["BranchFailed", "BranchStream", "ParallelHandlerCoordinator"]

_monotonic = time.monotonic
_Task = asyncio.Task
_TASK = HandlerKind.TASK
_new_object = object.__new__
_current_context = _execution_context.get
_set_context = _execution_context.set


class BranchFailed(Exception):  # noqa: N818 - it carries a failure, it is not one itself
    """Raised by a unit that knows its failure's kind, such as a handler in another process
    that timed out there or whose server is gone; reported as that :class:`Failure`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class ParallelHandlerCoordinator:
    """Runs parallel handler parameters over the handlers subscribed on *bus*."""

    def __init__(
        self,
        bus: EventBus,
        *,
        default_timeout: float = 30.0,
        mapper: PayloadPropertyMapper | None = None,
    ) -> None:
        self.bus = bus
        self.default_timeout = _check_timeout(default_timeout)
        self.mapper = mapper or PayloadPropertyMapper()
        self.deadlines = Deadlines()
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight: set[_Handlers] = set()  # for aclose(), and to refuse a second loop
        self._first_steps = 0  # handlers' first steps on the stack now, one inside the other

    async def aclose(self) -> None:
        """Refuse new calls, cancel those in flight and wait for their handlers, stop the
        deadline timer."""
        self.closed = True
        calls = list(self._in_flight)
        for call in calls:
            call.stop("cancelled: the runtime was closed")
        for call in calls:
            await call.drain()
        self.deadlines.close()

    def _admit(self) -> asyncio.AbstractEventLoop:
        """The running loop, if this coordinator may start a call on it."""
        if self.closed:
            raise RuntimeClosed("cannot start a parallel call: the runtime is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            previous = self._loop
            if previous is not None and self._in_flight and previous.is_running():
                raise RuntimeError(
                    "this Runtime has parallel calls in flight on another event loop; a Runtime "
                    "serves one event loop at a time: make one Runtime per loop (or thread)")
            self._loop = loop
            self.deadlines.use(loop)
            self.bus.use_loop(loop)
        return loop

    def prepare(
        self,
        parameters: HandlerParameters,
        payload: Mapping[str, Any] | None,
        timeout: float | None,
        max_concurrency: int | None,
        fail_fast: bool,
        retry: Retry | None,
        on_outcome: Callable[[BranchOutcome], None] | None = None,
        payloads: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> _ParallelCall:
        """A parallel call, ready to start: ``await call.run()`` runs every parameter's
        handlers at once over *payload* (see the module docstring), then
        ``call.result(mapper)`` is the consolidated result. *timeout* is per handler, in seconds
        (``None``: the coordinator's default; ``math.inf``: none); with *retry*, per attempt.
        Given as a call rather than run in a coroutine of its own, so that ``Runtime.parallel``
        adds no coroutine to every call."""
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        limit = self.default_timeout if timeout is None else _check_timeout(timeout)
        loop = self._admit()
        # One read-only copy per call: a handler cannot change what its siblings see.
        source = ReadOnlyPayload(payload or ())
        make_event = self.bus.make_event
        if payloads is None:
            events = _branch_events(self.bus, parameters.values(), source)
        else:  # each branch its own payload: a model's tool calls, each with its arguments
            events = [make_event(event, ReadOnlyPayload(payloads[name]))
                      for name, event in parameters.items()]
        return _ParallelCall(self, loop, parameters.keys(), events, source, limit,
                             max_concurrency, fail_fast, retry, on_outcome)

    async def emit_parallel(
        self, events: list[Event], *, publish: bool = True
    ) -> list[list[Any]]:
        """Dispatch *events* to their handlers all at once and wait for every handler.

        Unlike a parallel call this is plain event delivery: no timeout, no ``no_handler``, and a
        failing handler is reported as ``system.error`` (its slot in the result holds the
        :class:`Failure`). Returns each event's handler results in subscription order. With a
        transport, other processes get the events as ordinary emits (unless *publish* is false:
        the events came from them); only this process's handlers are waited for.
        """
        loop = self._admit()
        transport = self.bus.transport
        if publish and transport is not None:
            for event in events:
                transport.publish(event)
        delivery = _Delivery(self, loop, [e.name for e in events], events)
        await delivery.run()
        return [branch.results() for branch in delivery.outcomes()]

    async def run_each(
        self,
        branches: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        retry: Retry | None = None,
    ) -> ParallelExecutionResult:
        """A call of :meth:`prepare`, run to its end, where each branch ``name: (event,
        payload)`` has a payload of its own; the consolidated payload holds only the results."""
        parameters = HandlerParameters({name: event for name, (event, _) in branches.items()})
        payloads = {name: payload for name, (_, payload) in branches.items()}
        call = self.prepare(parameters, None, timeout, max_concurrency, fail_fast, retry,
                          payloads=payloads)
        await call.run()
        return call.result(self.mapper)

    def stream(
        self,
        parameters: HandlerParameters,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        retry: Retry | None = None,
    ) -> BranchStream:
        """A call of :meth:`prepare` that yields ``(name, outcome)`` as each branch finishes."""
        return BranchStream(self.mapper, lambda push: self.prepare(
            parameters, payload, timeout, max_concurrency, fail_fast, retry, push))


def _max_nesting() -> int:
    """How many handlers' first steps may be on the stack, one inside another, before a call
    they start is refused.

    Handlers whose first step starts a call whose handlers do the same nest on Python's stack
    (a dozen or two frames each, some of them C calls that ``sys._getframe`` does not see). Let
    that run into the recursion limit and the ``RecursionError`` can strike in the calls' own
    bookkeeping, leaving a call that never ends. Refused here, well before, while the call has
    no state yet, it is the failure of the handler that started it, like any other.
    """
    return sys.getrecursionlimit() // 40


def _branch_events(bus: EventBus, names: Iterable[str], payload: ReadOnlyPayload) -> list[Event]:
    """One event per branch, all over *payload*. The first is made by the bus (which checks
    the depth limit and tells the observer); the others are its siblings, exactly what the bus
    would make, made for a fraction of the cost."""
    names = iter(names)
    first = next(names, None)
    if first is None:
        return []
    event = bus.make_event(first, payload)
    events = [event]
    sibling = event.sibling
    observer = bus.observer
    for name in names:
        event = sibling(name)
        if observer is not None:
            observer.emitted(event)
        events.append(event)
    return events


def _check_timeout(timeout: float) -> float:
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return timeout


class _Branch(BranchOutcome):
    """One handler parameter while its handlers run, and then its outcome.

    One object for both because one is made per branch on the hot path. A branch with several
    handlers keeps one result per handler in ``_values``; with one (most have one) the result
    goes straight to ``value``. A branch of one handler that runs once has none of this while
    it runs: its :class:`_Unit` stands for it, and it is made when the unit ends.
    """

    __slots__ = ("_event", "_handlers", "_pending", "_values")

    def __init__(self, name: str, event: Event, handlers: int) -> None:
        self.name = name
        self.value: Any = None
        self.failure: Failure | None = None
        self.started = 0.0
        self.finished = 0.0
        self.attempts = 1
        self._event = event
        self._handlers = handlers
        self._pending = handlers
        self._values: list[Any] | None = [None] * handlers if handlers > 1 else None

    def results(self) -> list[Any]:
        """Every handler's result (or :class:`Failure`), in subscription order."""
        if self._values is not None:
            return list(self._values)
        if not self._handlers:
            return []
        return [self.failure if self.failure is not None else self.value]


class _Unit(ExecutionContext):
    """One handler of one branch: the execution context its handler sees, and the
    :data:`~.handlers.Finished` its handler tells how it ended (one object per handler run).

    A branch of one handler that runs once (no retry policy applies to it), which is most
    branches, has no :class:`_Branch` while it runs (``_branch`` is ``None``): the unit stands
    for it, and its outcome is made when it ends: one object fewer per branch in flight
    (about 100 of the 1.9 KB each costs until it ends).
    """

    __slots__ = ("_branch", "_call", "_future", "_index", "_lent", "_settled", "_started",
                 "_sub", "_timed_out", "_waits")

    parameter: str  # never None here, unlike in a plain ExecutionContext
    event: Event

    def __init__(
        self, call: _Handlers, branch: _Branch | None, index: int, sub: Subscription,
        name: str, event: Event,
    ) -> None:
        self.entity = sub.entity
        self.execution_id = call.execution_id
        self.parameter = name
        self.event = event
        self.cancelled = False
        self._call = call
        self._branch = branch
        # Its place among its branch's handlers; for a unit that stands for its branch, the
        # branch's place among the call's.
        self._index = index
        self._started = 0.0  # when a unit that stands for its branch started
        self._sub = sub
        self._future: Running | None = None
        self._settled = False
        self._timed_out = False
        self._lent = 0  # nested calls in flight that its budget slot is lent to
        self._waits: dict[str, float] | None = None  # what it waited for outside, how long

    __eq__ = object.__eq__  # a run is itself, whatever its context looks like
    __hash__ = object.__hash__

    def __call__(self, value: Any, error: BaseException | None) -> None:
        """How its handler ended, settled in its call: its slot given back, its result or its
        failure recorded, the next unit started. Written here rather than in a method of the
        call's, which it would only call: this runs once per handler."""
        if self._settled:
            return  # after a cancel a second report can come; the first one counts
        self._settled = True
        call = self._call
        future = self._future
        lingering: HandlerThread | None = None
        if future is not None:
            self._future = None
            if type(future) is HandlerThread and future.running:
                lingering = future
        if error is None and not self.cancelled:
            failure = None
        else:
            failure = call._failure(self, error, future, lingering is not None)
        if lingering is not None:
            call.lingering += 1  # it keeps its slot and its place under the cap until it ends
            lingering.when_ended(self._thread_ended)
        else:
            call.running -= 1
            call.pool.release()
        if failure is None:
            # Its result, recorded here rather than in a method, for the same reason.
            branch = self._branch
            if branch is None:
                # The outcome of the branch it stood for, made without __init__: once a branch.
                ended = _new_object(_Branch)
                ended.name = self.parameter
                ended.value = value
                ended.failure = None
                ended.started = self._started
                ended.attempts = 1
                ended._event = self.event
                ended._handlers = 1
                ended._pending = 0
                ended._values = None
                call.branches[self._index] = ended
                call._finish_branch(ended)
            else:
                if branch._values is None:
                    branch.value = value
                else:
                    branch._values[self._index] = value
                branch._pending -= 1
                if not branch._pending:
                    call._finish_branch(branch)
        else:
            failure = call._retry(self, failure)
            if failure is None:  # it runs again later: its branch has not failed
                call._after_settle()
                return
            call._record_failure(self, failure)
        # As call._after_settle(), written out, for the same reason.
        if call.queue and not call._pumping:
            call._pump()
        elif call.running == call.lingering and call._drained is not None \
                and not call._drained.done():
            call._drained.set_result(None)

    def note_wait(self, what: str, seconds: float) -> None:
        if self._waits is None:
            self._waits = {}
        self._waits[what] = self._waits.get(what, 0.0) + seconds

    def waited(self) -> str:
        """What its timeout message adds: how long it waited, and for what."""
        if not self._waits:
            return ""
        spent = " and ".join(f"{seconds:.1f} s waiting for {what}"
                             for what, seconds in self._waits.items())
        return (f"; it spent {spent}, which counts against its time (a branch waiting for a "
                "place under the call's own concurrency bound has not started, nor has its "
                "clock)")

    def expire(self) -> None:
        """Its deadline passed (:class:`.deadlines.Deadlines` tells)."""
        self._timed_out = True
        self.cancel()

    def cancel(self) -> None:
        self.cancelled = True  # what a thread handler, which cannot be interrupted, can see
        if self._future is not None:  # set while it runs, cleared when it is settled
            cancel_handler(self._future, self)

    def _thread_ended(self) -> None:
        """The thread of a handler settled as cancelled has really ended: its slot is free."""
        self._call._lingering_ended()

    # Lending the budget slot to nested calls -------------------------------------------------

    def lend_slot(self, pool: HandlerPool) -> None:
        """The handler is about to wait for a nested parallel call: while it waits it is not
        running, so its slot goes back to the budget, where the nested call's handlers can
        take it (otherwise a full budget deadlocks: the outer handler holds what the inner
        ones wait for)."""
        self._lent += 1
        if self._lent == 1:
            pool.release()

    async def take_slot_back(self, pool: HandlerPool) -> None:
        """The nested call is over: wait for a slot before the handler goes on, ahead of new
        work. Cancelled meanwhile, it still waits (briefly: slots are held by running
        handlers), then lets the cancellation through, so the budget stays exact."""
        self._lent -= 1
        if self._lent or pool.try_acquire():
            return
        granted = asyncio.get_running_loop().create_future()
        pool.wait_for_slot(lambda: granted.set_result(None), first=True)
        cancelled = False
        while not granted.done():
            try:
                await asyncio.shield(granted)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError


class _Handlers:
    """Handlers of several events started at once, within the call's and the pool's budget,
    and waited for: the part that plain delivery and a parallel call share."""

    __slots__ = ("_drained", "_granted_pending", "_pumping", "_waiter", "base_error",
                 "branches", "bus", "cap", "coordinator", "deadlines", "execution_id",
                 "last_round", "lingering", "loop", "observer", "on_outcome", "pool", "queue",
                 "round_started", "running", "stop_reason", "timeout", "unfinished",
                 "unhandled", "units")

    def __init__(
        self,
        coordinator: ParallelHandlerCoordinator,
        loop: asyncio.AbstractEventLoop,
        names: Iterable[str],
        events: list[Event],
        timeout: float,
        cap: int | None,
        remote: bool,
        on_outcome: Callable[[BranchOutcome], None] | None,
        retry: Retry | None,
    ) -> None:
        bus = coordinator.bus
        self.coordinator = coordinator
        self.bus = bus
        self.pool = bus.pool
        self.observer = bus.observer
        self.loop = loop
        self.deadlines = coordinator.deadlines
        self.last_round: _Round | None = None  # the units started last, with their deadline
        self.execution_id = new_id()
        self.timeout = timeout
        self.cap = cap
        self.on_outcome = on_outcome  # told of each branch as it finishes (a stream)
        self.unfinished = len(events)  # branches not yet finished
        self.running = 0  # units started and not settled, plus lingering threads
        self.lingering = 0  # cancelled thread handlers whose thread still runs
        self.stop_reason: str | None = None
        self.base_error: BaseException | None = None
        self._pumping = False
        self._granted_pending = False
        self.round_started = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        handlers_for = bus.handlers_for
        reached = bus.reached  # the names seen before: their handlers without a call more
        # Handlers in other processes join a parameter's own (never plain delivery's).
        remote_handlers = None if not remote or bus.transport is None else \
            bus.transport.remote_handlers
        # In declaration order: each branch, or the unit that stands for it until it ends.
        branches: list[_Branch | _Unit] = []
        unhandled: list[_Branch] = []  # branches of an event no handler is subscribed to
        units: list[_Unit] = []
        for index, (name, event) in enumerate(zip(names, events, strict=True)):
            subs = reached.get(event.name)
            if subs is None:
                subs = handlers_for(event.name)
            if remote_handlers is not None:
                subs += remote_handlers(event.name)
            if len(subs) == 1 and retry is None and subs[0].retry is None:
                unit = _Unit(self, None, index, subs[0], name, event)
                branches.append(unit)
                units.append(unit)
            else:
                branch = _Branch(name, event, len(subs))
                branches.append(branch)
                if not subs:
                    unhandled.append(branch)
                for i, sub in enumerate(subs):
                    units.append(_Unit(self, branch, i, sub, name, event))
        self.branches = branches
        self.unhandled = tuple(unhandled)  # most often the empty tuple, which costs nothing
        self.units = units  # every unit, for stop()
        # Units waiting to start, the next one last: a list used as a stack, not a deque (a
        # deque's first block alone costs a small call 60 bytes a branch).
        self.queue = units[::-1]

    # Running, start to end -------------------------------------------------------------------

    async def run(self) -> None:
        """Start every branch and wait for them all; see the module docstring. If the caller
        is cancelled meanwhile, the branches are cancelled and drained first (the waiting is
        written here rather than in a method of its own: one coroutine less per call)."""
        parent = _current_context()
        lender = parent if type(parent) is _Unit and parent._call.pool is self.pool and \
            self.pool.max_concurrency is not None else None
        if lender is not None:
            lender.lend_slot(self.pool)
        try:
            self.start()
            if self.unfinished:
                self._waiter = self.loop.create_future()
                try:
                    await self._waiter
                except BaseException:
                    self.stop("cancelled: the parallel call itself was cancelled")
                    await self.drain()
                    raise
        finally:
            if lender is not None:
                await lender.take_slot_back(self.pool)
        if self.base_error is not None:
            raise self.base_error

    def start(self) -> None:
        coordinator = self.coordinator
        if coordinator._first_steps and coordinator._first_steps >= _max_nesting():
            raise RecursionError(
                f"parallel calls nested {coordinator._first_steps} deep on the stack: each "
                "handler's first step starts another call without waiting")
        coordinator._in_flight.add(self)
        if self.observer is not None:
            self.observer.call_started(
                self.execution_id,
                [(b.name, b._event, b._handlers) if isinstance(b, _Branch) else
                 (b.parameter, b.event, 1) for b in self.branches],
                delivery=type(self) is _Delivery)
        for branch in self.unhandled:
            self._no_handler(branch)
        if self.unfinished:
            self._pump()
        else:
            coordinator._in_flight.discard(self)

    def _no_handler(self, branch: _Branch) -> None:
        raise NotImplementedError

    def _pump(self, slot_in_hand: bool = False) -> None:
        """Start queued units while the call's cap and the pool's budget allow; *slot_in_hand*:
        the first one's budget slot is already taken (handed over by the pool)."""
        if self._pumping:
            return  # a unit finished inside _start: the loop below picks up where it is
        self._pumping = True
        try:
            queue = self.queue
            pool = self.pool
            # Units started together share one start time and one deadline, kept once a round
            # rather than once a unit (it shows in the memory of a thousand-branch call).
            timed: _Round | None = None
            if queue:
                self.round_started = _monotonic()
                if self.timeout != math.inf:
                    timed = self.last_round = _Round(self.deadlines, self.timeout,
                                                     self.loop.time(), self.last_round)
            started = self.round_started
            # On 3.11 an async def handler's task is made right here, without the two calls of
            # start_handler: nothing of it runs before the loop's next turn (tasks_start_later).
            loop = self.loop
            tasks_here = self.observer is None and tasks_start_later(loop)
            while queue and (self.cap is None or self.running < self.cap):
                if slot_in_hand:
                    slot_in_hand = False
                elif not pool.try_acquire():
                    if not self._granted_pending:
                        self._granted_pending = True
                        pool.wait_for_slot(self._slot_granted)
                    break
                unit = queue.pop()
                self.running += 1
                branch = unit._branch
                if branch is None:
                    unit._started = started
                elif not branch.started:
                    branch.started = started
                sub = unit._sub
                if tasks_here and sub.kind is _TASK:
                    unit._future = _Task(_run_unit(unit), loop=loop)
                elif not self._start(unit):
                    continue
                if timed is not None:
                    timed.append(unit)
        finally:
            self._pumping = False

    def _slot_granted(self) -> None:
        self._granted_pending = False
        if self.queue and (self.cap is None or self.running < self.cap):
            self._pump(slot_in_hand=True)
        else:
            self.pool.release()

    def _start(self, unit: _Unit) -> bool:
        """Start *unit*'s handler, counted as running; whether it is still running (it may
        have ended, or failed, in its first step)."""
        coordinator = self.coordinator
        coordinator._first_steps += 1
        try:
            future = start_handler(unit._sub, unit.event, unit, self.pool, unit, self.loop) \
                if self.observer is None else self.observer.start_handler(
                    unit._sub, unit.event, unit, self.pool, unit, self.loop)
        except BaseException as exc:  # it failed at once, CancelledError included
            unit(None, exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise  # as asyncio does: they stop the loop
            return False
        finally:
            coordinator._first_steps -= 1
        if future is None or unit._settled:
            return False
        unit._future = future
        if unit.cancelled:  # the call was stopped while the handler took its first step
            cancel_handler(future, unit)  # which may settle it at once (a thread not started)
        return not unit._settled

    # Finishing -------------------------------------------------------------------------------

    def _lingering_ended(self) -> None:
        self.lingering -= 1
        self.running -= 1
        self.pool.release()
        self._after_settle()

    def _after_settle(self) -> None:
        if self.queue and not self._pumping:
            self._pump()
        elif self.running == self.lingering and self._drained is not None \
                and not self._drained.done():
            self._drained.set_result(None)

    def _retry(self, unit: _Unit, failure: Failure) -> Failure | None:
        """*failure* as recorded, or ``None`` if *unit* will run again instead (plain delivery
        runs each handler once)."""
        return failure

    def _unstarted(self, unit: _Unit, reason: str) -> Failure:
        """The failure of *unit*, stopped for *reason* before it started."""
        return Failure("cancelled", reason)

    def _failure(
        self, unit: _Unit, error: BaseException | None, future: Running | None, lingering: bool
    ) -> Failure:
        """Why *unit* has no result: it raised *error*, or it was cancelled."""
        name = unit._sub.name
        if unit._timed_out:  # even if it swallowed the cancellation and returned a value
            handling = f"(handling {unit.event.name!r})"
            if lingering:
                return Failure("timeout", f"{name} did not finish within {self.timeout:g} s "
                               f"{handling}; its thread is still running and its result will be "
                               "dropped")
            if type(future) is HandlerThread:
                return Failure("timeout", f"{name} did not start within {self.timeout:g} s "
                               f"{handling}: {future.why_not_started()}")
            return Failure("timeout", f"{name} did not finish within {self.timeout:g} s "
                           f"{handling} and was cancelled{unit.waited()}")
        if unit.cancelled and not isinstance(error, Exception):
            # Stopped (fail-fast, the caller, aclose): cancelled, even if it swallowed that
            # and returned. An exception it raised meanwhile says more, and is kept.
            reason = self.stop_reason or "the handler was cancelled"
            if lingering:
                reason += "; its thread is still running and its result will be dropped"
            return Failure("cancelled", reason)
        assert error is not None
        if type(error) is BranchFailed:
            return error.failure
        if isinstance(error, Exception):
            return self.bus.failure_of(error)
        if isinstance(error, asyncio.CancelledError):
            return Failure("cancelled", f"{name} raised CancelledError, though nothing "
                           "cancelled it")
        # Another BaseException: as in a task group, the siblings are cancelled and the call
        # raises it once they have ended.
        if self.base_error is None:
            self.base_error = error
            self.stop(f"cancelled because {name} raised {type(error).__name__}")
        return Failure("error", f"{name} raised {type(error).__name__}", error)

    def _record_failure(self, unit: _Unit, failure: Failure) -> None:
        """*unit* ended without a result (results are recorded by :meth:`_Unit.__call__`)."""
        branch = unit._branch
        if branch is None:  # it stood for its branch, which it now leaves in its place
            branch = self.branches[unit._index] = _Branch(unit.parameter, unit.event, 1)
            branch.started = unit._started
        if branch._values is not None:
            branch._values[unit._index] = failure
        if branch.failure is None:
            branch.failure = failure
        branch._pending -= 1
        if failure.exception is not None and isinstance(failure.exception, Exception):
            self._report(unit, failure.exception)
        if not branch._pending:
            self._finish_branch(branch)
        self._failed(branch)

    def outcomes(self) -> tuple[_Branch, ...]:
        """The branches that have finished, in declaration order: all of them, once the call
        is over."""
        if not self.unfinished:
            # Every unit that stood for its branch has ended, and its outcome took its place.
            return tuple(cast("list[_Branch]", self.branches))
        return tuple(b for b in self.branches if isinstance(b, _Branch) and b.finished)

    def _report(self, unit: _Unit, exc: Exception) -> None:
        raise NotImplementedError

    def _failed(self, branch: _Branch) -> None:
        """A unit of *branch* failed (fail-fast calls stop here)."""

    def _finish_branch(self, branch: _Branch) -> None:
        branch.finished = _monotonic()
        if branch._values is not None:
            # Several subscribers: a list in subscription order, failures in their places.
            branch.value = branch._values
        elif branch.failure is not None:
            branch.value = None
        if self.observer is not None:
            self.observer.branch_finished(self.execution_id, branch)
        self.unfinished -= 1
        if self.on_outcome is not None:
            self.on_outcome(branch)
        if not self.unfinished:
            # Every unit has ended. Dropping them breaks the call <-> unit cycles, so the call
            # is freed when its caller lets go, not by the cyclic garbage collector: at a
            # hundred branches a call, collecting them cost as much as running them.
            self.units = []
            started = self.last_round
            while started is not None:
                started.deadlines.pop(started, None)
                started = started.earlier
            self.last_round = None
            self.coordinator._in_flight.discard(self)
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def stop(self, reason: str) -> None:
        """Cancel everything still running or waiting; each such branch fails ``cancelled``."""
        if self.stop_reason is None:
            self.stop_reason = reason
        while self.queue:
            unit = self.queue.pop()
            unit.cancelled = True
            branch = unit._branch
            if branch is None:
                unit._started = _monotonic()
            elif not branch.started:
                branch.started = _monotonic()
            self._record_failure(unit, self._unstarted(unit, reason))
        for unit in self.units:
            unit.cancel()

    # Waiting ---------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until no unit of this call is running (no branch outlives the call); a
        cancelled thread handler whose thread still runs is not waited for."""
        cancelled = False
        while self.running > self.lingering:
            # Callers may drain at once (the call's own wait() when cancelled, and
            # Runtime.aclose()): they share one future, for a unit's end resolves only the latest,
            # and a shield, so that one cancelled waiter does not cancel it under the others.
            drained = self._drained
            if drained is None or drained.done():
                drained = self._drained = self.loop.create_future()
            try:
                await asyncio.shield(drained)
            except asyncio.CancelledError:
                cancelled = True  # keep waiting; the cancellation goes on once they have ended
        if cancelled:
            raise asyncio.CancelledError


async def _run_unit(unit: _Unit) -> None:
    """The task of an ``async def`` handler the call starts itself (:meth:`_Handlers._pump`):
    :func:`.handlers.run_and_report` for a unit, which is both the handler's context and its
    report. One argument rather than four: its frame is 24 bytes smaller a branch in flight."""
    _set_context(unit)
    try:
        value = await unit._sub.callback(unit.event)
    except BaseException as exc:
        unit(None, exc)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    else:
        unit(value, None)


class _Round(list[_Unit]):
    """The units a call started together, which share one deadline: told when it passes, it
    expires those still running. One entry in the coordinator's :class:`~.deadlines.Deadlines`
    a round, not one a unit: a unit that ends in time (the usual case) costs no entry to add
    and none to remove. The list of its units itself, and a link to the call's round before
    it: the fewest objects a call."""

    __slots__ = ("deadlines", "earlier")
    __eq__ = object.__eq__  # a key in its group: each round is itself, whatever units it holds
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __init__(
        self, deadlines: Deadlines, timeout: float, now: float, earlier: _Round | None
    ) -> None:
        super().__init__()
        deadline = now + timeout
        self.deadlines = deadlines.group(timeout, deadline)  # to leave when its call ends
        self.deadlines[self] = deadline
        self.earlier = earlier

    def expire(self) -> None:
        for unit in self:
            if unit._future is not None:  # still running: it is cleared when a unit ends
                unit.expire()


class _ParallelCall(_Handlers):
    """The branches of one call with parallel handler parameters."""

    __slots__ = ("fail_fast", "payload", "retry", "sleeping")

    def __init__(
        self,
        coordinator: ParallelHandlerCoordinator,
        loop: asyncio.AbstractEventLoop,
        names: Iterable[str],
        events: list[Event],
        payload: dict[str, Any],
        timeout: float,
        cap: int | None,
        fail_fast: bool,
        retry: Retry | None,
        on_outcome: Callable[[BranchOutcome], None] | None,
    ) -> None:
        super().__init__(coordinator, loop, names, events, timeout, cap, True, on_outcome, retry)
        self.payload = payload
        self.fail_fast = fail_fast
        self.retry = retry
        self.sleeping: set[_Retry] | None = None  # runs waiting for their turn to run again

    def _retry(self, unit: _Unit, failure: Failure) -> Failure | None:
        policy = unit._sub.retry or self.retry
        if policy is None:
            return failure
        runs = unit.attempt
        if runs >= policy.attempts or failure.kind not in policy.on \
                or self.stop_reason is not None or isinstance(failure.exception, LimitExceeded):
            return replace(failure, attempts=runs)
        assert unit._branch is not None  # a branch a policy applies to has its _Branch
        again = _Retry(self, unit._branch, unit._index, unit._sub, runs + 1)
        self.units.append(again)  # for stop()
        if self.sleeping is None:
            self.sleeping = set()
        self.sleeping.add(again)
        again.timer = self.loop.call_later(policy.wait(runs), self._retry_due, again)
        return None

    def _retry_due(self, unit: _Retry) -> None:
        assert self.sleeping is not None
        self.sleeping.discard(unit)
        unit.timer = None
        self.queue.append(unit)  # next: a branch under way finishes before new ones start
        if not self._pumping:
            self._pump()

    def _unstarted(self, unit: _Unit, reason: str) -> Failure:
        if unit._sub.retry is None and self.retry is None:
            return Failure("cancelled", reason)
        return Failure("cancelled", reason, attempts=unit.attempt - 1)  # the runs it had

    def stop(self, reason: str) -> None:
        super().stop(reason)
        sleeping = self.sleeping
        while sleeping:
            unit = sleeping.pop()
            assert unit.timer is not None
            unit.timer.cancel()
            unit.cancelled = True
            self._record_failure(unit, self._unstarted(
                unit, f"{reason}, while it waited to run again"))

    def _no_handler(self, branch: _Branch) -> None:
        branch.started = _monotonic()
        branch.failure = Failure("no_handler", f"no handler is subscribed to "
                                 f"{branch._event.name!r}")
        self._finish_branch(branch)

    def _report(self, unit: _Unit, exc: Exception) -> None:
        """A branch's failure is its call's to handle, and its result says it (the failure
        keeps the exception, traceback and all); only a run limit a handler ran into stops the
        run, as it does for any handler (:meth:`.EventBus.report_failure`)."""
        if isinstance(exc, LimitExceeded):
            self.bus.trip(exc)

    def _failed(self, branch: _Branch) -> None:
        if self.fail_fast and self.stop_reason is None:
            self.stop(f"cancelled because {branch.name!r} failed and the call is fail-fast")

    def result(self, mapper: PayloadPropertyMapper) -> ParallelExecutionResult:
        outcomes = self.outcomes()
        return ParallelExecutionResult(
            self.execution_id, mapper.consolidate(self.payload, outcomes), outcomes
        )


class _Retry(_Unit):
    """One more run of a handler whose last one failed under a :class:`~.retry.Retry`."""

    __slots__ = ("attempt", "timer")

    def __init__(
        self, call: _Handlers, branch: _Branch, index: int, sub: Subscription, attempt: int
    ) -> None:
        super().__init__(call, branch, index, sub, branch.name, branch._event)
        self.attempt = attempt
        self.timer: asyncio.TimerHandle | None = None  # while it waits to start

    def __call__(self, value: Any, error: BaseException | None) -> None:
        branch = self._branch
        assert branch is not None  # a branch run again has its _Branch
        if not self._settled and self.attempt > branch.attempts:
            branch.attempts = self.attempt  # it ran, however it ended
        super().__call__(value, error)


class _Delivery(_Handlers):
    """Plain delivery of events to their handlers, waited for: ``Runtime.publish``."""

    __slots__ = ()

    def __init__(
        self,
        coordinator: ParallelHandlerCoordinator,
        loop: asyncio.AbstractEventLoop,
        names: Iterable[str],
        events: list[Event],
    ) -> None:
        super().__init__(coordinator, loop, names, events, math.inf, None, False, None, None)

    def _no_handler(self, branch: _Branch) -> None:
        self._finish_branch(branch)  # an event nobody handles is fine

    def _report(self, unit: _Unit, exc: Exception) -> None:
        self.bus.report_failure(unit.event, unit._sub, exc)


class BranchStream:
    """``async for name, outcome in stream``: branches in the order they finish.

    Branches start on the first iteration. Leaving the loop early does not stop them; close the
    stream (``async with`` or ``aclose()``) to cancel what is still running. After the last
    branch, :attr:`result` holds the consolidated result, exactly as ``Runtime.parallel``
    gives it.
    """

    def __init__(
        self,
        mapper: PayloadPropertyMapper,
        prepare: Callable[[Callable[[BranchOutcome], None]], _ParallelCall],
    ) -> None:
        self._mapper = mapper
        self._started = False
        self._ready: deque[BranchOutcome] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._call = prepare(self._push)  # the call reports each finished branch to _push

    def _push(self, outcome: BranchOutcome) -> None:
        self._ready.append(outcome)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def __aiter__(self) -> BranchStream:
        return self

    async def __anext__(self) -> tuple[str, BranchOutcome]:
        call = self._call
        if not self._started:
            self._started = True
            call.start()
        while not self._ready:
            if not call.unfinished:
                if call.base_error is not None:
                    raise call.base_error
                raise StopAsyncIteration
            self._wakeup = call.loop.create_future()
            try:
                await self._wakeup
            except BaseException:
                await self.aclose()
                raise
        outcome = self._ready.popleft()
        return outcome.name, outcome

    async def aclose(self) -> None:
        """Cancel the branches still running and wait for them; a ``BaseException`` one of
        them raised (not an ``Exception``) is raised here, as from the loop."""
        call = self._call
        if self._started and call.unfinished:
            call.stop("cancelled: the stream was closed before this branch finished")
            await call.drain()
        if call.base_error is not None:
            raise call.base_error

    async def __aenter__(self) -> BranchStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def result(self) -> ParallelExecutionResult:
        call = self._call
        if not self._started or call.unfinished:
            raise RuntimeError("the stream's branches have not all finished yet")
        return call.result(self._mapper)
