"""Thread handlers follow the loop they were started from.

The pool keeps one thread lane per event loop, and knows which one to use without asking
asyncio for the running loop on every handler (that costs a system call): the lane's loop,
running on the thread that made the lane, is the running loop there. These tests pin the
cases around that shortcut: a new loop on the same thread, and one loop run on two threads
in turn. Nothing here asserts a duration; waits are bounded generously.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

from cxlang.runtime.context import ExecutionContext
from cxlang.runtime.events import Event, EventPattern
from cxlang.runtime.handlers import HandlerKind, Subscription
from cxlang.runtime.pool import HandlerPool

BOUND = 10.0  # a generous bound on anything that could hang


def _call(sub: Subscription, event: Event, execution: ExecutionContext) -> Any:
    return sub.callback(event)


async def _run_one(pool: HandlerPool) -> tuple[str, asyncio.AbstractEventLoop]:
    """Run one thread handler; what it returned, and the loop its end was reported on."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[tuple[str, asyncio.AbstractEventLoop]] = loop.create_future()

    def finished(value: Any, error: BaseException | None) -> None:
        ended.set_result((value, asyncio.get_running_loop()))

    sub = Subscription(EventPattern("loops.one"), lambda event: "ran", HandlerKind.THREAD,
                       None, lambda sub: None)
    pool.run_in_thread(contextvars.copy_context(), _call, sub, Event("loops.one"),
                       ExecutionContext(), finished)
    async with asyncio.timeout(BOUND):
        return await ended


def test_a_pool_used_on_a_new_loop_reports_ends_on_that_loop() -> None:
    pool = HandlerPool()
    try:
        for _ in range(2):  # the second loop runs on the same thread as the first
            loop = asyncio.new_event_loop()
            try:
                value, reported_on = loop.run_until_complete(_run_one(pool))
            finally:
                loop.close()
            assert (value, reported_on) == ("ran", loop)
    finally:
        pool.shutdown()


def test_one_loop_run_on_two_threads_in_turn_keeps_its_lane_working() -> None:
    pool = HandlerPool()
    loop = asyncio.new_event_loop()
    outcomes: list[tuple[str, asyncio.AbstractEventLoop]] = []

    def run_there() -> None:
        outcomes.append(loop.run_until_complete(_run_one(pool)))

    try:
        run_there()  # on this thread, which makes the lane
        other = threading.Thread(target=run_there)
        other.start()
        other.join(BOUND)
        assert not other.is_alive()
    finally:
        loop.close()
        pool.shutdown()
    assert outcomes == [("ran", loop), ("ran", loop)]
