"""Plain ``def`` handlers on the thread lane: batched, yet never held back by a slow one.

The lane (:mod:`cxlang.runtime.threads`) runs queued thread handlers one after another on a
drainer thread and spills to more threads when every drainer is stuck on one handler. These
tests pin its edges: cancelling a handler while it waits or while it runs, a slow handler in
front of quick ones, failures in a batch, the thread limit, and a loop that closes under it.
Nothing here asserts a duration; waits are bounded generously so that a regression fails
instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import cxlang
from cxlang.runtime.context import ExecutionContext, current_context, set_context
from cxlang.runtime.events import Event, EventPattern
from cxlang.runtime.handlers import Finished, HandlerKind, Subscription
from cxlang.runtime.pool import HandlerPool
from cxlang.runtime.threads import HandlerThread, ThreadLane

BOUND = 10.0  # a generous bound on anything that could hang
WAIT = 5.0  # how long a handler waits for what the test expects to happen meanwhile


class Ends:
    """A :data:`~cxlang.runtime.handlers.Finished` that records every report it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, BaseException | None]] = []

    def __call__(self, value: Any, error: BaseException | None) -> None:
        self.heard.append((value, error))


def _call(sub: Subscription, event: Event, execution: ExecutionContext) -> Any:
    """What handlers.py hands the pool, minus the coroutine check: the handler, in its
    execution context."""
    set_context(execution)
    return sub.callback(event)


def _start(pool: HandlerPool, sub: Subscription, finished: Finished) -> HandlerThread:
    return pool.run_in_thread(contextvars.copy_context(), _call, sub, Event("lane.test"),
                              ExecutionContext(), finished)


async def _until(condition: Callable[[], object], what: str) -> None:
    """Wait for *condition*; fail, saying *what* was awaited, after :data:`BOUND`."""
    try:
        async with asyncio.timeout(BOUND):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"waited {BOUND} s for {what}")


# Parallel calls ------------------------------------------------------------------------------


async def test_parallel_plain_def_branches_run_at_once(rt: cxlang.Runtime) -> None:
    # Ten branches that each wait for all ten: on one thread, or one after another, the
    # barrier breaks (and the branches fail) instead of opening.
    branches = 10
    everyone = threading.Barrier(branches, timeout=WAIT)

    @rt.on("meet.one")
    def meet(event: cxlang.Event) -> int:
        everyone.wait()
        return 1

    res = await asyncio.wait_for(
        rt.parallel({f"b{i}": "meet.one" for i in range(branches)}), BOUND)
    assert res.failures == {}
    assert res.results == {f"b{i}": 1 for i in range(branches)}


async def test_a_quick_branch_behind_a_slow_one_does_not_time_out() -> None:
    release = threading.Event()
    async with cxlang.Runtime() as rt:
        @rt.on("slow.one")
        def slow(event: cxlang.Event) -> str:
            release.wait(WAIT)
            return "slow"

        @rt.on("quick.one")
        def quick(event: cxlang.Event) -> str:
            return "quick"

        try:
            # The slow branch is queued first, so the quick one waits behind it on the
            # drainer until the lane spills: well within the per-handler timeout.
            res = await asyncio.wait_for(
                rt.parallel({"a": "slow.one", "b": "quick.one"}, timeout=2.0), BOUND)
        finally:
            release.set()
        assert res.results == {"b": "quick"}
        assert res.failures["a"].kind == "timeout"


async def test_one_failing_branch_loses_none_of_the_others_results(
    rt: cxlang.Runtime,
) -> None:
    @rt.on("work.ok")
    def ok(event: cxlang.Event) -> str:
        return event.name

    @rt.on("work.fails")
    def fails(event: cxlang.Event) -> str:
        raise ValueError("no")

    res = await asyncio.wait_for(
        rt.parallel({"a": "work.ok", "b": "work.fails", "c": "work.ok", "d": "work.ok"}),
        BOUND)
    assert res.results == {"a": "work.ok", "c": "work.ok", "d": "work.ok"}
    assert res.failures["b"].message.endswith("no")


async def test_the_thread_limit_holds_while_the_lane_spills() -> None:
    limit = 3
    release = threading.Event()
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}
    async with cxlang.Runtime(max_threads=limit) as rt:
        @rt.on("block.one")
        def block(event: cxlang.Event) -> int:
            with lock:
                running["now"] += 1
                running["peak"] = max(running["peak"], running["now"])
            release.wait(WAIT)
            with lock:
                running["now"] -= 1
            return 1

        call = asyncio.ensure_future(rt.parallel({f"b{i}": "block.one" for i in range(6)}))
        try:
            await _until(lambda: running["now"] == limit, "the lane to spill up to the limit")
            await asyncio.sleep(0.1)  # several spill checks: none may go past the limit
            assert running["peak"] == limit
        finally:
            release.set()
        res = await asyncio.wait_for(call, BOUND)
        assert res.results == {f"b{i}": 1 for i in range(6)}
        assert running["peak"] == limit


# The bus -------------------------------------------------------------------------------------


async def test_quick_handlers_run_while_a_slow_one_blocks_the_first_drainer(
    rt: cxlang.Runtime,
) -> None:
    quick_ran = threading.Event()
    saw: list[bool] = []

    @rt.on("slow.one")
    def slow(event: cxlang.Event) -> None:
        # Waits for the quick handlers queued behind it: without the spill they would only
        # run once this one gave up, and it would see False.
        saw.append(quick_ran.wait(WAIT))

    @rt.on("quick.one")
    def quick(event: cxlang.Event) -> None:
        quick_ran.set()

    rt.emit("slow.one")
    for _ in range(3):
        rt.emit("quick.one")
    await asyncio.wait_for(rt.run_until_idle(), BOUND)
    assert saw == [True]


async def test_short_blocking_handlers_share_the_threads(rt: cxlang.Runtime) -> None:
    # Each waits 5 ms, under the spill check's interval: no drainer ever looks stuck, but the
    # process sits idle while handlers queue, so the lane spreads them over more threads.
    lock = threading.Lock()
    running = {"now": 0, "peak": 0}

    @rt.on("io.one")
    def io(event: cxlang.Event) -> None:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        time.sleep(0.005)
        with lock:
            running["now"] -= 1

    for _ in range(40):
        rt.emit("io.one")
    await asyncio.wait_for(rt.run_until_idle(), BOUND)
    assert running["peak"] > 1


# Cancelling ----------------------------------------------------------------------------------


async def test_a_handler_cancelled_in_the_turn_it_was_queued_never_runs(
    rt: cxlang.Runtime,
) -> None:
    ran = threading.Event()
    sub = rt.on("never.one", lambda event: ran.set())
    finished = Ends()
    job = _start(rt.pool, sub, finished)
    job.cancel()
    assert len(finished.heard) == 1 and isinstance(finished.heard[0][1],
                                                   asyncio.CancelledError)
    called: list[str] = []
    job.when_ended(lambda: called.append("ended"))
    assert called == ["ended"], "a handler that never started has nothing to wait for"
    # Give the lane every chance to run it: a handler queued after it runs and ends.
    after = Ends()
    _start(rt.pool, rt.on("after.one", lambda event: "after"), after)
    await _until(lambda: after.heard, "the next handler to end")
    assert not ran.is_set()
    assert len(finished.heard) == 1


async def test_a_handler_cancelled_while_queued_behind_a_blocked_one_never_runs() -> None:
    release = threading.Event()
    ran = threading.Event()
    async with cxlang.Runtime(max_threads=1) as rt:
        blocker = rt.on("block.one", lambda event: release.wait(WAIT))
        queued = rt.on("queued.one", lambda event: ran.set())
        blocked, waiting = Ends(), Ends()
        _start(rt.pool, blocker, blocked)
        job = _start(rt.pool, queued, waiting)
        await asyncio.sleep(0.05)  # both handed to the lane; only one thread may run
        assert not job.started
        job.cancel()
        assert isinstance(waiting.heard[0][1], asyncio.CancelledError)
        release.set()
        await _until(lambda: blocked.heard, "the blocking handler to end")
        await asyncio.sleep(0.05)
        assert not ran.is_set()
        assert len(waiting.heard) == 1


async def test_a_running_handler_is_told_reported_at_once_and_its_slot_waits_for_its_end(
    rt: cxlang.Runtime,
) -> None:
    started = threading.Event()
    release = threading.Event()
    told: list[bool] = []

    def runs(event: Event) -> str:
        started.set()
        release.wait(WAIT)
        told.append(current_context().cancelled)
        return "dropped"

    finished = Ends()
    job = _start(rt.pool, rt.on("runs.one", runs), finished)
    await asyncio.to_thread(started.wait, BOUND)
    # What the bus and the coordinator do: mark the context, then cancel.
    job._execution.cancelled = True
    job.cancel()
    assert len(finished.heard) == 1
    assert isinstance(finished.heard[0][1], asyncio.CancelledError)
    assert job.running
    ended: list[str] = []
    job.when_ended(lambda: ended.append("ended"))
    assert ended == []
    release.set()
    await _until(lambda: ended, "the thread's end to reach the loop")
    assert told == [True]
    assert len(finished.heard) == 1, "its result is dropped"


async def test_an_end_report_that_raises_loses_none_of_the_others(rt: cxlang.Runtime) -> None:
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    try:
        gate = threading.Event()
        sub = rt.on("gate.one", lambda event: gate.wait(WAIT))
        reports = [Ends() for _ in range(4)]

        def raising(value: Any, error: BaseException | None) -> None:
            reports[1](value, error)
            raise RuntimeError("a report failed")

        # The drainer waits at the gate, so all four end close together, most likely in
        # one delivery: the failing report must not take the ones after it down with it.
        for i, finished in enumerate(reports):
            _start(rt.pool, sub, raising if i == 1 else finished)
        await asyncio.sleep(0.02)
        gate.set()
        await _until(lambda: all(r.heard for r in reports), "every end to be reported")
        assert [len(r.heard) for r in reports] == [1, 1, 1, 1]
        assert [str(e.get("exception")) for e in errors] == ["a report failed"]
    finally:
        loop.set_exception_handler(None)


# A loop that closes under the lane -----------------------------------------------------------


def test_a_loop_closed_with_handlers_queued_drops_them_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []
    pool = HandlerPool(max_threads=1)
    sub = Subscription(EventPattern("loop.closes"), lambda event: None, HandlerKind.THREAD,
                       None, lambda sub: None)

    def call(sub: Subscription, event: Event, execution: ExecutionContext) -> int:
        if event.payload["n"] == 0:
            started.set()
            release.wait(WAIT)
        ran.append(event.payload["n"])
        return 1

    async def queue_four() -> None:
        for n in range(4):
            pool.run_in_thread(contextvars.copy_context(), call, sub,
                               Event("loop.closes", {"n": n}), ExecutionContext(), Ends())
        await asyncio.sleep(0.05)

    loop = asyncio.new_event_loop()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.run_until_complete(queue_four())
        assert started.wait(BOUND)
        loop.close()
        release.set()
        # The drainer ends the first handler, finds the loop closed, and stops.
        for _ in range(int(BOUND / 0.01)):
            if ran and not pool._lane._drainers:  # type: ignore[union-attr]
                break
            threading.Event().wait(0.01)
        gc.collect()
    assert ran == [0], "the handlers queued behind it never run"
    assert not pool._lane._drainers  # type: ignore[union-attr]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    pool.shutdown()


@pytest.mark.parametrize("stuck_on", ["waiting", "computing"])
async def test_a_handler_queued_behind_a_stuck_one_starts_within_three_checks(
    monkeypatch: pytest.MonkeyPatch, stuck_on: str
) -> None:
    # What the README promises (about 20 ms), counted in the lane's checks, not in seconds:
    # the first check may find the drainer not yet on the slow handler, the next sees it there,
    # the one after that at the latest finds it still there and spills.
    checks = 0
    spill = ThreadLane._spill

    def counted(lane: ThreadLane) -> None:
        nonlocal checks
        checks += 1
        spill(lane)

    monkeypatch.setattr(ThreadLane, "_spill", counted)
    release = threading.Event()
    started_after: list[int] = []
    async with cxlang.Runtime() as rt:
        @rt.on("slow.one")
        def slow(event: cxlang.Event) -> None:
            if stuck_on == "waiting":
                release.wait(WAIT)
                return
            deadline = time.monotonic() + WAIT  # busy: the process is not idle
            while not release.is_set() and time.monotonic() < deadline:
                pass

        @rt.on("quick.one")
        def quick(event: cxlang.Event) -> None:
            started_after.append(checks)

        try:
            rt.emit("slow.one")
            rt.emit("quick.one")
            await _until(lambda: started_after, "the quick handler to start")
        finally:
            release.set()
        await rt.run_until_idle()
    assert started_after[0] <= 3
