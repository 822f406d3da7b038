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
call does not return, normally or by exception, while any unit it started is still running.
Unlike a task group, a failing branch does not cancel its siblings unless the call is
``fail_fast``: the failure is recorded and the others' results are kept.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .bus import EventBus
from .context import ExecutionContext
from .deadlines import Deadlines, Expiring
from .events import Event, new_id
from .handlers import Subscription, cancel_handler, start_handler
from .mapper import PayloadPropertyMapper
from .outcomes import BranchOutcome, Failure, ParallelExecutionResult
from .resolver import HandlerParameters

__all__ = ["BranchFailed", "BranchStream", "ParallelHandlerCoordinator"]

_monotonic = time.monotonic


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

    def close(self) -> None:
        """Stop the deadline timer (the runtime is closing)."""
        self.deadlines.close()

    def _call(
        self,
        parameters: HandlerParameters,
        payload: Mapping[str, Any] | None,
        timeout: float | None,
        max_concurrency: int | None,
        fail_fast: bool,
        on_outcome: Callable[[BranchOutcome], None] | None = None,
    ) -> _ParallelCall:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        limit = self.default_timeout if timeout is None else _check_timeout(timeout)
        source = payload if isinstance(payload, dict) else dict(payload or {})
        make_event = self.bus.make_event
        events = [make_event(event, source) for event in parameters.values()]
        return _ParallelCall(self.bus, self.deadlines, parameters.keys(), events, source, limit,
                             max_concurrency, fail_fast, on_outcome)

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
        transport = self.bus.transport
        if publish and transport is not None:
            for event in events:
                transport.publish(event)
        call = _ParallelCall(self.bus, self.deadlines, [e.name for e in events], events, {},
                             math.inf, None, False, None, report_failures=True)
        call.start()
        if call.open:
            await call.wait()
        return [branch._results() for branch in call.branches]

    async def run(
        self,
        parameters: HandlerParameters,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
    ) -> ParallelExecutionResult:
        """Run every parameter's handlers at once over *payload*; see the module docstring.

        *timeout* is per handler, in seconds (``None``: the coordinator's default; ``math.inf``:
        none).
        """
        call = self._call(parameters, payload, timeout, max_concurrency, fail_fast)
        call.start()
        if call.open:
            await call.wait()
        return call.result(self.mapper)

    def stream(
        self,
        parameters: HandlerParameters,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
    ) -> BranchStream:
        """Like :meth:`run`, but yields ``(name, outcome)`` as each branch finishes."""
        return BranchStream(self.mapper, lambda push: self._call(
            parameters, payload, timeout, max_concurrency, fail_fast, push))


def _check_timeout(timeout: float) -> float:
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return timeout


class _Branch(BranchOutcome):
    """One handler parameter while its handlers run, and then its outcome.

    One object for both because one is made per branch on the hot path. A branch with several
    handlers keeps one result per handler in ``_values``; with one (most have one) the result
    goes straight to ``value``.
    """

    __slots__ = ("_event", "_handlers", "_pending", "_values")

    def __init__(self, name: str, event: Event, handlers: int) -> None:
        self.name = name
        self.value: Any = None
        self.failure: Failure | None = None
        self.started = 0.0
        self.finished = 0.0
        self._event = event
        self._handlers = handlers
        self._pending = handlers
        self._values: list[Any] | None = [None] * handlers if handlers > 1 else None

    def _results(self) -> list[Any]:
        """Every handler's result (or :class:`Failure`), in subscription order."""
        if self._values is not None:
            return list(self._values)
        if not self._handlers:
            return []
        return [self.failure if self.failure is not None else self.value]


class _Unit(ExecutionContext):
    """One handler of one branch: the execution context its handler sees, and the
    :data:`~.handlers.Finished` its handler tells how it ended (one object per handler run)."""

    __slots__ = ("_branch", "_call", "_future", "_index", "_settled", "_sub", "_timed_out")

    def __init__(self, call: _ParallelCall, branch: _Branch, index: int, sub: Subscription) -> None:
        self.entity = sub.entity
        self.execution_id = call.execution_id
        self.parameter = branch.name
        self.event = branch._event
        self._call = call
        self._branch = branch
        self._index = index
        self._sub = sub
        self._future: asyncio.Future[Any] | None = None
        self._settled = False
        self._timed_out = False

    __eq__ = object.__eq__  # a run is itself, whatever its context looks like
    __hash__ = object.__hash__

    def __call__(self, value: Any, error: BaseException | None) -> None:
        if not self._settled:  # after a cancel a second report can come; the first one counts
            self._settled = True
            self._call._settle(self, value, error)

    def expire(self) -> None:
        """Its deadline passed (:class:`.deadlines.Deadlines` tells)."""
        self._timed_out = True
        self.cancel()

    def cancel(self) -> None:
        if self._future is not None:  # set while it runs, cleared when it is settled
            cancel_handler(self._future, self)


class _ParallelCall:
    __slots__ = ("_drained", "_granted_pending", "_pumping", "_waiter", "branches", "bus",
                 "cap", "deadline_group", "deadlines", "execution_id", "fail_fast", "loop",
                 "observer", "on_outcome", "open", "payload", "queue", "report_failures",
                 "round_deadline", "round_started", "running", "stop_reason", "timeout", "units")

    def __init__(
        self,
        bus: EventBus,
        deadlines: Deadlines,
        names: Iterable[str],
        events: list[Event],
        payload: dict[str, Any],
        timeout: float,
        cap: int | None,
        fail_fast: bool,
        on_outcome: Callable[[BranchOutcome], None] | None,
        *,
        report_failures: bool = False,
    ) -> None:
        self.bus = bus
        self.observer = bus.observer
        self.loop = asyncio.get_running_loop()
        self.deadlines = deadlines
        self.deadline_group: dict[Expiring, float] | None = None  # set for each round
        if timeout != math.inf:
            deadlines.use(self.loop)
        self.execution_id = new_id()
        self.payload = payload
        self.timeout = timeout
        self.cap = cap
        self.fail_fast = fail_fast
        self.on_outcome = on_outcome
        self.branches: list[_Branch] = []
        self.report_failures = report_failures
        self.open = len(events)
        self.running = 0
        self.stop_reason: str | None = None
        self._pumping = False
        self._granted_pending = False
        self.round_started = 0.0
        self.round_deadline = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        handlers_for = bus.handlers_for
        # Handlers in other processes join a parameter's own (never plain delivery's).
        remote = None if report_failures or bus.transport is None else \
            bus.transport.remote_handlers
        units: list[_Unit] = []
        for name, event in zip(names, events, strict=True):
            subs = handlers_for(event.name)
            if remote is not None:
                subs += remote(event.name)
            branch = _Branch(name, event, len(subs))
            self.branches.append(branch)
            for i, sub in enumerate(subs):
                units.append(_Unit(self, branch, i, sub))
        self.units = units  # every unit, for stop()
        self.queue: deque[_Unit] = deque(units)

    # Starting --------------------------------------------------------------------------------

    def start(self) -> None:
        if self.observer is not None:
            self.observer.call_started(
                self.execution_id, [(b.name, b._event, b._handlers) for b in self.branches],
                delivery=self.report_failures)
        for branch in self.branches:
            if not branch._pending and self.report_failures:
                self._finish_branch(branch)  # plain delivery: an event nobody handles is fine
            elif not branch._pending:
                branch.started = _monotonic()
                branch.failure = Failure(
                    "no_handler", f"no handler is subscribed to {branch._event.name!r}"
                )
                self._finish_branch(branch)
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return  # a unit finished inside _start: the loop below picks up where it is
        self._pumping = True
        try:
            queue = self.queue
            pool = self.bus.pool
            if queue:
                self._new_round()
            while queue and (self.cap is None or self.running < self.cap):
                if not pool.try_acquire():
                    if not self._granted_pending:
                        self._granted_pending = True
                        pool.wait_for_slot(self._slot_granted)
                    break
                self._start(queue.popleft())
        finally:
            self._pumping = False

    def _new_round(self) -> None:
        # Units started together share one start time and one deadline: two floats per round,
        # not per unit (it shows in the memory of a thousand-branch call).
        self.round_started = _monotonic()
        if self.timeout != math.inf:
            self.round_deadline = self.loop.time() + self.timeout
            self.deadline_group = self.deadlines.group(self.timeout, self.round_deadline)

    def _slot_granted(self) -> None:
        self._granted_pending = False
        if self.queue and (self.cap is None or self.running < self.cap):
            self._new_round()
            self._start(self.queue.popleft())
            self._pump()
        else:
            self.bus.pool.release()

    def _start(self, unit: _Unit) -> None:
        branch = unit._branch
        if not branch.started:
            branch.started = self.round_started
        sub = unit._sub
        event = branch._event
        self.running += 1
        try:
            future = start_handler(sub, event, unit, self.bus.pool, unit) \
                if self.observer is None \
                else self.observer.start_handler(sub, event, unit, self.bus.pool, unit)
        except Exception as exc:  # the handler failed at once
            unit._settled = True
            self._settle(unit, None, exc)
            return
        if future is not None and not unit._settled:
            unit._future = future
            if self.deadline_group is not None:
                self.deadline_group[unit] = self.round_deadline

    # Finishing -------------------------------------------------------------------------------

    def _settle(self, unit: _Unit, value: Any, error: BaseException | None) -> None:
        if unit._future is not None:
            unit._future = None
            if self.deadline_group is not None:
                self.deadline_group.pop(unit, None)
        if unit._timed_out:  # even if it swallowed the cancellation and returned a value
            failure: Failure | None = Failure(
                "timeout",
                f"{unit._sub.name} did not finish within {self.timeout:g} s "
                f"(handling {unit._branch._event.name!r}) and was cancelled",
            )
        elif error is None:
            failure = None
        elif type(error) is BranchFailed:
            failure = error.failure
        elif isinstance(error, asyncio.CancelledError):
            failure = Failure("cancelled", self.stop_reason or "the handler was cancelled")
        else:
            failure = Failure.from_exception(error)
        self.running -= 1
        self.bus.pool.release()
        self._record(unit, value, failure)
        if self.queue and not self._pumping:
            self._pump()
        elif not self.running and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _record(self, unit: _Unit, value: Any, failure: Failure | None) -> None:
        branch = unit._branch
        if failure is None:
            if branch._values is None:
                branch.value = value
            else:
                branch._values[unit._index] = value
        else:
            if branch._values is not None:
                branch._values[unit._index] = failure
            if branch.failure is None:
                branch.failure = failure
            if failure.exception is not None:
                if self.report_failures:
                    self.bus.report_failure(branch._event, unit._sub, failure.exception)
                else:
                    self.bus.notify_failure(branch._event, unit._sub, failure.exception)
        branch._pending -= 1
        if not branch._pending:
            self._finish_branch(branch)
        if failure is not None and self.fail_fast and self.stop_reason is None:
            self.stop(f"cancelled because {branch.name!r} failed and the call is fail-fast")

    def _finish_branch(self, branch: _Branch) -> None:
        branch.finished = _monotonic()
        if branch.failure is not None:
            branch.value = None
        elif branch._values is not None:
            branch.value = branch._values  # several subscribers: a list in subscription order
        if self.observer is not None:
            self.observer.branch_finished(self.execution_id, branch)
        self.open -= 1
        if self.on_outcome is not None:
            self.on_outcome(branch)
        if not self.open:
            # Every unit has ended. Dropping them breaks the call <-> unit cycles, so the call
            # is freed when its caller lets go, not by the cyclic garbage collector: at a
            # hundred branches a call, collecting them cost as much as running them.
            self.units = []
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def stop(self, reason: str) -> None:
        """Cancel everything still running or waiting; each such branch fails ``cancelled``."""
        self.stop_reason = reason
        while self.queue:
            unit = self.queue.popleft()
            if not unit._branch.started:
                unit._branch.started = _monotonic()
            self._record(unit, None, Failure("cancelled", reason))
        for unit in self.units:
            unit.cancel()

    # Waiting ---------------------------------------------------------------------------------

    async def wait(self) -> None:
        """Wait for every branch; if the caller is cancelled, cancel and drain them first."""
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        except BaseException:
            self.stop("cancelled: the parallel call itself was cancelled")
            await self.drain()
            raise

    async def drain(self) -> None:
        """Wait until no unit of this call is running (no branch outlives the call)."""
        while self.running:
            self._drained = self.loop.create_future()
            try:
                await self._drained
            except asyncio.CancelledError:
                continue  # keep waiting; the cancellation is re-raised by our caller

    def result(self, mapper: PayloadPropertyMapper) -> ParallelExecutionResult:
        outcomes = tuple(self.branches) if not self.open else \
            tuple(b for b in self.branches if b.finished)
        return ParallelExecutionResult(
            self.execution_id, mapper.consolidate(self.payload, outcomes), outcomes
        )


class BranchStream:
    """``async for name, outcome in stream``: branches in the order they finish.

    Branches start on the first iteration. Leaving the loop early does not stop them; close the
    stream (``async with`` or ``aclose()``) to cancel what is still running. After the last
    branch, :attr:`result` holds the consolidated result, exactly as :meth:`run` gives it.
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
            if not call.open:
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
        call = self._call
        if self._started and call.open:
            call.stop("cancelled: the stream was closed before this branch finished")
            await call.drain()

    async def __aenter__(self) -> BranchStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def result(self) -> ParallelExecutionResult:
        call = self._call
        if not self._started or call.open:
            raise RuntimeError("the stream's branches have not all finished yet")
        return call.result(self._mapper)
