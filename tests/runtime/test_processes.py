"""cpu_bound handlers in worker processes: a hung or dead worker is terminated and replaced.

Every test runs real worker processes through ``cxlang.Runtime``. A hung handler writes its
worker's pid to a file, so a test knows it is running and can check its process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import cxlang
from cxlang import ProcessHandlerError

from . import process_handlers

WAIT = 30.0  # a generous bound on every wait, never a measure of speed

HANDLERS = {
    "x.hang": process_handlers.hang,
    "x.stubborn": process_handlers.hang_ignoring_sigterm,
    "x.crash": process_handlers.crash,
    "x.kill": process_handlers.kill_myself,
    "x.pid": process_handlers.pid,
    "x.mark": process_handlers.mark,
    "x.who": process_handlers.where_and_who,
    "x.value_error": process_handlers.raise_value_error,
    "x.unpicklable": process_handlers.raise_unpicklable,
    "x.unrebuildable": process_handlers.raise_unrebuildable,
    "x.stop": process_handlers.raise_stop_iteration,
}


def runtime_with_handlers(max_processes: int) -> cxlang.Runtime:
    rt = cxlang.Runtime(max_processes=max_processes)
    for event, handler in HANDLERS.items():
        rt.on(event, handler, cpu_bound=True)
    rt.pool.warm_up_processes()  # a handler then starts well within a short timeout
    return rt


@pytest.fixture
async def rt1(tmp_path: Path) -> AsyncIterator[cxlang.Runtime]:
    """One worker process: a replaced worker shows as a new pid."""
    rt = runtime_with_handlers(1)
    yield rt
    kill_hung_workers(tmp_path)
    await rt.aclose()


@pytest.fixture
async def rt2(tmp_path: Path) -> AsyncIterator[cxlang.Runtime]:
    rt = runtime_with_handlers(2)
    yield rt
    kill_hung_workers(tmp_path)
    await rt.aclose()


def kill_hung_workers(tmp_path: Path) -> None:
    """Where workers cannot be stopped (the bug under test), a hung one would hold up the
    runtime's closing for 1000 s: end it, so such a test fails instead of hanging."""
    for pid_file in tmp_path.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def pid_in(pid_file: Path) -> int:
    """The pid a hung handler wrote: waits until it runs."""

    async def written() -> int:
        while not (pid_file.exists() and pid_file.read_text()):
            await asyncio.sleep(0.01)
        return int(pid_file.read_text())

    return await asyncio.wait_for(written(), WAIT)


async def gone(pid: int) -> bool:
    """Whether process *pid* ends and is reaped (leaves /proc) within :data:`WAIT` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while Path(f"/proc/{pid}").exists():
                await asyncio.sleep(0.01)
    except TimeoutError:
        return False
    return True


async def call(rt: cxlang.Runtime, parameters: dict[str, str], payload: dict[str, Any],
               **options: Any) -> cxlang.ParallelExecutionResult:
    return await asyncio.wait_for(rt.parallel(parameters, payload, **options), WAIT)


async def runs_on_a_fresh_worker(rt: cxlang.Runtime, old_pid: int) -> None:
    result = await call(rt, {"p": "x.pid"}, {}, timeout=WAIT)
    assert result.failures == {}
    assert result.payload["p"] != old_pid


# Stopping a worker ------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["x.hang", "x.stubborn"])  # stubborn: SIGKILL it is
async def test_a_hung_handler_times_out_and_its_worker_is_replaced(
    rt1: cxlang.Runtime, tmp_path: Path, event: str
) -> None:
    pid_file = tmp_path / "hang.pid"
    result = await call(rt1, {"h": event}, {"pid_file": str(pid_file)}, timeout=0.5)
    assert result.failures["h"].kind == "timeout"
    hung = await pid_in(pid_file)
    assert await gone(hung), "the hung worker process was terminated"
    await runs_on_a_fresh_worker(rt1, hung)


async def test_fail_fast_terminates_a_hung_sibling(rt1: cxlang.Runtime, tmp_path: Path) -> None:
    pid_file = tmp_path / "hang.pid"

    @rt1.on("x.fails")
    async def fails(event: cxlang.Event) -> None:
        await pid_in(pid_file)  # fail once the hung handler runs
        raise RuntimeError("boom")

    result = await call(rt1, {"h": "x.hang", "f": "x.fails"}, {"pid_file": str(pid_file)},
                        timeout=WAIT, fail_fast=True)
    assert result.failures["f"].kind == "error"
    assert result.failures["h"].kind == "cancelled"
    hung = await pid_in(pid_file)
    assert await gone(hung)
    await runs_on_a_fresh_worker(rt1, hung)


@pytest.mark.parametrize("how", ["task.cancel", "wait_for"])
async def test_cancelling_the_caller_terminates_the_worker(
    rt1: cxlang.Runtime, tmp_path: Path, how: str
) -> None:
    pid_file = tmp_path / "hang.pid"
    parallel = rt1.parallel({"h": "x.hang"}, {"pid_file": str(pid_file)}, timeout=WAIT)
    if how == "task.cancel":
        task = asyncio.ensure_future(parallel)
        await pid_in(pid_file)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
    else:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(parallel, 1.0)
    hung = await pid_in(pid_file)
    assert await gone(hung)
    await runs_on_a_fresh_worker(rt1, hung)


async def test_a_job_waiting_for_a_worker_is_dropped_when_cancelled(
    rt1: cxlang.Runtime, tmp_path: Path
) -> None:
    pid_file, mark_file = tmp_path / "hang.pid", tmp_path / "mark"
    hanging = asyncio.ensure_future(
        rt1.parallel({"h": "x.hang"}, {"pid_file": str(pid_file)}, timeout=WAIT))
    hung = await pid_in(pid_file)  # the only worker is busy: the next job waits
    waiting = await call(rt1, {"m": "x.mark"}, {"mark_file": str(mark_file)}, timeout=0.2)
    assert waiting.failures["m"].kind == "timeout"
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(hanging, WAIT)
    await runs_on_a_fresh_worker(rt1, hung)  # FIFO: the dropped job would have run first
    assert not mark_file.exists(), "the dropped job never ran"


# A worker that dies ----------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "how"), [("x.crash", "exit code 3"),
                                           ("x.kill", "killed by SIGKILL")])
async def test_a_worker_that_dies_fails_only_its_own_branch(
    rt1: cxlang.Runtime, event: str, how: str
) -> None:
    # One worker: the siblings wait for it, and run on its replacement.
    result = await call(rt1, {"a": "x.who", "dies": event, "b": "x.who"}, {"n": 1},
                        timeout=WAIT)
    assert set(result.failures) == {"dies"}
    failure = result.failures["dies"]
    assert failure.kind == "error"
    assert isinstance(failure.exception, ProcessHandlerError)
    name = HANDLERS[event].__name__
    assert failure.message == (f"ProcessHandlerError: cpu_bound handler {name!r} ended its "
                               f"worker process ({how}); the worker was replaced")
    assert result.payload["a"]["n"] == result.payload["b"]["n"] == 2
    assert result.payload["b"]["pid"] != result.payload["a"]["pid"]
    await runs_on_a_fresh_worker(rt1, result.payload["a"]["pid"])


async def test_siblings_on_other_workers_keep_their_results(rt2: cxlang.Runtime) -> None:
    result = await call(rt2, {"dies": "x.crash", "a": "x.who"}, {"n": 4}, timeout=WAIT)
    assert set(result.failures) == {"dies"}
    assert result.payload["a"]["n"] == 8
    again = await call(rt2, {"a": "x.who", "b": "x.who"}, {"n": 1}, timeout=WAIT)
    assert again.failures == {}


async def test_a_worker_killed_while_idle_is_replaced_before_the_next_job(
    rt1: cxlang.Runtime,
) -> None:
    first = await call(rt1, {"p": "x.pid"}, {}, timeout=WAIT)
    idle = first.payload["p"]
    os.kill(idle, signal.SIGKILL)
    assert await gone(idle)
    await runs_on_a_fresh_worker(rt1, idle)


# Closing ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def loop_watchdog(loop: asyncio.AbstractEventLoop, hung: int) -> Iterator[threading.Event]:
    """Pings *loop* from a thread; if it stays blocked for 10 s, sets the event it yields and
    kills the hung worker, so a loop blocked on that worker ends in a failed assertion."""
    blocked, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.is_set():
            answered = threading.Event()
            loop.call_soon_threadsafe(answered.set)
            if not answered.wait(10):
                blocked.set()
                with contextlib.suppress(ProcessLookupError):
                    os.kill(hung, signal.SIGKILL)
                return
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield blocked
    finally:
        done.set()
        watcher.join()


async def test_aclose_terminates_a_hung_worker_without_blocking_the_loop(tmp_path: Path) -> None:
    rt = runtime_with_handlers(1)
    pid_file, mark_file = tmp_path / "hang.pid", tmp_path / "mark"
    try:
        hanging = asyncio.ensure_future(
            rt.parallel({"h": "x.hang"}, {"pid_file": str(pid_file)}, timeout=WAIT))
        waiting = asyncio.ensure_future(
            rt.parallel({"m": "x.mark"}, {"mark_file": str(mark_file)}, timeout=WAIT))
        hung = await pid_in(pid_file)
        with loop_watchdog(asyncio.get_running_loop(), hung) as blocked:
            await asyncio.wait_for(rt.aclose(), WAIT)
            ran, dropped = await asyncio.wait_for(asyncio.gather(hanging, waiting), WAIT)
        assert not blocked.is_set(), "aclose() blocked the event loop on the hung worker"
    finally:
        kill_hung_workers(tmp_path)
        await rt.aclose()
    assert ran.failures["h"].kind == "cancelled"
    assert dropped.failures["m"].kind == "cancelled"
    assert await gone(hung)
    assert not mark_file.exists()


async def test_warm_up_starts_every_worker() -> None:
    before = set(multiprocessing.active_children())
    rt = runtime_with_handlers(2)
    try:
        started = set(multiprocessing.active_children()) - before
        assert len(started) == 2
        assert all(process.is_alive() for process in started)
    finally:
        await rt.aclose()


# What crosses to the worker and back ------------------------------------------------------------


async def test_the_context_reaches_the_worker(rt2: cxlang.Runtime) -> None:
    result = await call(rt2, {"a": "x.who", "b": "x.who"}, {"n": 5}, timeout=WAIT)
    for name in ("a", "b"):
        seen = result.payload[name]
        assert seen["pid"] != os.getpid()
        assert seen["parameter"] == name
        assert seen["event"] == "x.who"
        assert seen["execution_id"] == result.execution_id
        assert seen["n"] == 10


async def test_exceptions_come_back_as_themselves_or_read_well(rt1: cxlang.Runtime) -> None:
    worker = (await call(rt1, {"p": "x.pid"}, {}, timeout=WAIT)).payload["p"]
    result = await call(rt1, {"v": "x.value_error", "u": "x.unpicklable",
                              "r": "x.unrebuildable", "s": "x.stop"}, {"n": 7}, timeout=WAIT)
    value_error = result.failures["v"].exception
    assert type(value_error) is ValueError
    assert result.failures["v"].message == "ValueError: no good: 7"
    assert "raise_value_error" in str(value_error.__cause__), "the worker's traceback"
    assert result.failures["u"].message == (
        "ProcessHandlerError: cpu_bound handler 'raise_unpicklable' raised HoldsALockError: "
        "cannot cross, an exception that cannot be sent back from its worker process "
        "(cannot pickle '_thread.lock' object)")
    unrebuildable = result.failures["r"].message
    assert unrebuildable.startswith(
        "ProcessHandlerError: cpu_bound handler 'raise_unrebuildable' raised "
        "TwoArgumentsError: this and that, an exception that cannot be sent back")
    # An asyncio future refuses StopIteration; a task turns it into a RuntimeError too.
    assert result.failures["s"].message == (
        "RuntimeError: cpu_bound handler 'raise_stop_iteration' raised StopIteration")
    after = await call(rt1, {"p": "x.pid"}, {}, timeout=WAIT)
    assert after.payload["p"] == worker, "a handler that raises does not cost its worker"
