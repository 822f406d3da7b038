"""Handlers report their own end; one timer keeps every deadline.

These are the corners of that design: a task cancelled before its first step (its report
never comes, so the canceller's safety net must), cancellation from outside (``asyncio.run``
shutting down), and deadlines of different lengths sharing one timer, on more than one loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import cxlang


async def test_a_task_cancelled_before_its_first_step_is_reported_cancelled(
    rt: cxlang.Runtime,
) -> None:
    ran: list[str] = []

    @rt.on("slow.start")
    async def slow(event: cxlang.Event) -> str:
        ran.append("slow")
        await asyncio.sleep(10)
        return "never"

    @rt.on("bad.now", inline=True)
    def bad(event: cxlang.Event) -> str:
        raise ValueError("at once")

    # On 3.11 the slow handler's task has not taken its first step when the inline handler
    # fails; fail-fast cancels it there and then.
    res = await asyncio.wait_for(
        rt.parallel({"slow": "slow.start", "bad": "bad.now"}, fail_fast=True), 5)
    assert res.failures["bad"].kind == "error"
    assert res.failures["slow"].kind == "cancelled"
    assert res.payload["slow"] is None


async def test_a_handler_cancelled_from_outside_is_still_reported(rt: cxlang.Runtime) -> None:
    started = asyncio.Event()

    @rt.on("work.start")
    async def work(event: cxlang.Event) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    call = asyncio.create_task(rt.parallel({"w": "work.start"}))
    await started.wait()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task() and task is not call:
            task.cancel()  # as a shutdown would: the handler's task, not the call
    res = await asyncio.wait_for(call, 5)
    assert res.failures["w"].kind == "cancelled"


def test_asyncio_run_shutting_down_mid_call_does_not_hang() -> None:
    """``asyncio.run`` cancels every task at once, handler tasks before their first step too."""

    async def main() -> None:
        rt = cxlang.Runtime()

        @rt.on("work.start")
        async def work(event: cxlang.Event) -> str:
            await asyncio.sleep(10)
            return "never"

        left_behind.append(asyncio.create_task(
            rt.parallel({f"w{i}": "work.start" for i in range(20)})))
        await asyncio.sleep(0)  # the call has started its handlers' tasks; leave them behind

    left_behind: list[asyncio.Task[Any]] = []

    finished = threading.Event()

    def run() -> None:
        asyncio.run(main())
        finished.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert finished.is_set(), "asyncio.run did not return: a cancelled call kept waiting"


async def test_a_short_deadline_is_kept_while_a_long_one_is_pending(rt: cxlang.Runtime) -> None:
    @rt.on("slow.start")
    async def slow(event: cxlang.Event) -> str:
        await asyncio.sleep(0.5)
        return "done"

    long_call = asyncio.create_task(rt.parallel({"s": "slow.start"}, timeout=5))
    await asyncio.sleep(0)
    short = await asyncio.wait_for(rt.parallel({"s": "slow.start"}, timeout=0.05), 0.4)
    assert short.failures["s"].kind == "timeout"
    assert (await long_call).payload["s"] == "done"


async def test_deadlines_of_calls_that_finished_in_time_do_not_fire(rt: cxlang.Runtime) -> None:
    @rt.on("quick.start")
    async def quick(event: cxlang.Event) -> str:
        await asyncio.sleep(0)
        return "ok"

    for _ in range(50):
        res = await rt.parallel({"q": "quick.start"}, timeout=0.02)
        assert res.payload["q"] == "ok"
    await asyncio.sleep(0.05)  # the shared timer fires now and finds nothing due
    res = await rt.parallel({"q": "quick.start"}, timeout=0.02)
    assert res.failures == {}


async def test_a_branch_started_later_keeps_its_own_deadline(rt: cxlang.Runtime) -> None:
    # One at a time: each branch starts in a round of its own, after the one before ends. The
    # first round's deadline passes while the second branch runs: it must not be cut short.
    @rt.on("turn.take")
    async def take(event: cxlang.Event) -> str:
        await asyncio.sleep(0.5)
        return "done"

    @rt.on("turn.hang")
    async def hang(event: cxlang.Event) -> str:
        await asyncio.sleep(30)
        return "never"

    res = await asyncio.wait_for(rt.parallel(
        {"first": "turn.take", "second": "turn.take", "third": "turn.hang"},
        timeout=0.8, max_concurrency=1), 20)
    assert res.results == {"first": "done", "second": "done"}
    assert res.failures["third"].kind == "timeout"
    timings = res.timings
    assert timings["second"].finished - timings["first"].started > 0.8, \
        "the second branch ran past the first round's deadline"
    assert timings["third"].finished - timings["third"].started >= 0.8


def test_one_runtime_keeps_deadlines_on_a_second_loop() -> None:
    rt = cxlang.Runtime()

    @rt.on("stuck.start")
    async def stuck(event: cxlang.Event) -> str:
        await asyncio.sleep(10)
        return "never"

    async def call() -> Any:
        return await asyncio.wait_for(rt.parallel({"s": "stuck.start"}, timeout=0.05), 5)

    for _ in range(2):
        assert asyncio.run(call()).failures["s"].kind == "timeout"
