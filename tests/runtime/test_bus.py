"""The event bus: ordering, eager start, failures, backpressure, causality."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import cxlang


async def test_events_dispatch_fifo_and_handlers_in_subscription_order(
    rt: cxlang.Runtime,
) -> None:
    log: list[str] = []

    @rt.on("a.one")
    async def first(event: cxlang.Event) -> None:
        log.append(f"first:{event.name}")
        rt.emit("a.two")

    @rt.on("a.any")
    async def wildcard(event: cxlang.Event) -> None:
        log.append(f"wild:{event.name}")

    rt.emit("a.one")
    rt.emit("b.one")
    log.append("top level done")
    await rt.run_until_idle()
    assert log == ["top level done", "first:a.one", "wild:a.one", "wild:a.two"]


async def test_a_handler_that_does_not_suspend_runs_before_the_next_starts(
    rt: cxlang.Runtime,
) -> None:
    log: list[str] = []

    @rt.on("tick.tock")
    async def suspends(event: cxlang.Event) -> None:
        log.append("suspends: start")
        await asyncio.sleep(0.01)
        log.append("suspends: end")

    @rt.on("tick.tock")
    async def at_once(event: cxlang.Event) -> None:
        log.append("at once")

    rt.emit("tick.tock")
    await rt.run_until_idle()
    assert log == ["suspends: start", "at once", "suspends: end"]


async def test_a_failing_handler_becomes_system_error_and_the_bus_goes_on(
    rt: cxlang.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[dict[str, Any]] = []
    later: list[str] = []

    @rt.on("job.start")
    async def broken(event: cxlang.Event) -> None:
        raise ValueError("bad input")

    @rt.on("job.late")
    async def broken_later(event: cxlang.Event) -> None:
        await asyncio.sleep(0)
        raise KeyError("gone")

    @rt.on("job.start")
    async def fine(event: cxlang.Event) -> None:
        later.append("still ran")

    @rt.on("system.error")
    async def on_error(event: cxlang.Event) -> None:
        errors.append(event.payload)

    with caplog.at_level(logging.ERROR, logger="cxlang.bus"):
        rt.emit("job.start")
        rt.emit("job.late")
        await rt.run_until_idle()
    assert later == ["still ran"]
    assert [e["error"] for e in errors] == ["bad input", "'gone'"]
    assert errors[0]["event"] == "job.start"
    assert errors[0]["type"] == "ValueError"
    assert "broken" in errors[0]["handler"]
    assert "bad input" in caplog.text


async def test_a_failing_system_error_handler_does_not_loop(rt: cxlang.Runtime) -> None:
    calls = 0

    @rt.on("system.error")
    async def also_broken(event: cxlang.Event) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("again")

    @rt.on("x.y")
    async def broken(event: cxlang.Event) -> None:
        raise RuntimeError("first")

    rt.emit("x.y")
    await rt.run_until_idle()
    assert calls == 1


async def test_full_queue_raises_in_sync_code_and_waits_in_async_code() -> None:
    async with cxlang.Runtime(max_queue=3) as rt:
        seen: list[int] = []

        @rt.on("n.item")
        async def collect(event: cxlang.Event) -> None:
            seen.append(event.payload["i"])

        for i in range(3):
            rt.emit("n.item", {"i": i})
        with pytest.raises(cxlang.QueueFull, match="emit_async"):
            rt.emit("n.item", {"i": 99})
        for i in range(3, 10):
            await rt.emit_async("n.item", {"i": i})
        await rt.run_until_idle()
        assert seen == list(range(10)), "nothing dropped, order kept"


async def test_causal_parent_and_depth(rt: cxlang.Runtime) -> None:
    seen: dict[str, cxlang.Event] = {}

    @rt.on("chain.one")
    async def one(event: cxlang.Event) -> None:
        seen["one"] = event
        rt.emit("chain.two")

    @rt.on("chain.two")
    async def two(event: cxlang.Event) -> None:
        seen["two"] = event

    root = rt.emit("chain.one")
    await rt.run_until_idle()
    assert seen["one"] is root and root.parent_id is None and root.depth == 0
    assert seen["two"].parent_id == root.id and seen["two"].depth == 1


async def test_sync_handlers_run_in_threads_and_may_emit(rt: cxlang.Runtime) -> None:
    threads: dict[str, str] = {}  # which handler ran on which thread; they run at once
    got: list[str] = []

    @rt.on("work.sync")
    def blocking(event: cxlang.Event) -> None:
        threads["sync"] = threading.current_thread().name
        rt.emit("work.done", {"from": "thread"})

    @rt.on("work.done")
    async def done(event: cxlang.Event) -> None:
        got.append(event.payload["from"])

    @rt.on("work.inline", inline=True)
    def inline(event: cxlang.Event) -> None:
        threads["inline"] = threading.current_thread().name

    rt.emit("work.sync")
    rt.emit("work.inline")
    await rt.run_until_idle()
    await rt.run_until_idle()
    assert threads["sync"].startswith("cx-handler")
    assert threads["inline"] == threading.current_thread().name
    assert got == ["thread"]


async def test_an_emit_from_a_thread_of_the_programs_own_waits_for_the_loop_to_queue_it(
    rt: cxlang.Runtime,
) -> None:
    got: list[str] = []
    rt.on("side.thread", lambda event: got.append(threading.current_thread().name),
          inline=True)
    rt.emit("side.first")  # the bus has now seen its loop, on this thread
    await rt.run_until_idle()
    returned = threading.Event()

    def emit_there() -> None:
        rt.emit("side.thread")
        returned.set()

    thread = threading.Thread(target=emit_there)
    thread.start()
    # The loop is blocked here, so the emit cannot be queued: it must not return meanwhile.
    returned_while_blocked = returned.wait(0.3)
    await asyncio.to_thread(thread.join, 10)
    await rt.run_until_idle()
    assert not returned_while_blocked
    assert got == [threading.current_thread().name]


def test_an_emit_on_the_loops_thread_after_its_loop_ended_is_queued_for_the_next() -> None:
    rt = cxlang.Runtime()
    got: list[int] = []
    rt.on("later.one", lambda event: got.append(event.payload["n"]), inline=True)

    async def first() -> None:
        rt.emit("later.one", {"n": 1})
        await rt.run_until_idle()

    asyncio.run(first())
    rt.emit("later.one", {"n": 2})  # no loop runs: queued as it is
    asyncio.run(rt.run_until_idle())
    asyncio.run(rt.aclose())
    assert got == [1, 2]


async def test_unsubscribe(rt: cxlang.Runtime) -> None:
    calls: list[str] = []

    async def handler(event: cxlang.Event) -> None:
        calls.append(event.name)

    sub = rt.on("u.one", handler)
    rt.on("u.two", handler)
    rt.emit("u.one")
    await rt.run_until_idle()
    sub.cancel()
    rt.emit("u.one")
    await rt.run_until_idle()
    assert rt.off(handler) == 1
    rt.emit("u.two")
    await rt.run_until_idle()
    assert calls == ["u.one"]


async def test_a_handler_unsubscribed_during_dispatch_still_runs_for_that_event_only(
    rt: cxlang.Runtime,
) -> None:
    calls: list[str] = []

    @rt.on("u.any", inline=True)
    def first(event: cxlang.Event) -> None:
        calls.append("first " + event.name)
        rt.off(second)  # the handlers of this event were fixed when it was dispatched

    @rt.on("u.any", inline=True)
    def second(event: cxlang.Event) -> None:
        calls.append("second " + event.name)

    rt.emit("u.one")
    await rt.run_until_idle()
    rt.emit("u.two")
    await rt.run_until_idle()
    assert calls == ["first u.one", "second u.one", "first u.two"]


async def test_publish_and_emit_parallel_wait_for_results(rt: cxlang.Runtime) -> None:
    @rt.on("q.one")
    async def one(event: cxlang.Event) -> int:
        await asyncio.sleep(0.01)
        return event.payload["n"] + 1

    @rt.on("q.any")
    async def any_q(event: cxlang.Event) -> str:
        return event.name

    @rt.on("q.bad")
    async def bad(event: cxlang.Event) -> None:
        raise RuntimeError("nope")

    assert await rt.publish("q.one", {"n": 1}) == [2, "q.one"]
    both = await rt.emit_parallel(["q.one", "q.two", "q.none.here"], {"n": 5})
    assert both == [[6, "q.one"], ["q.two"], []]
    errors: list[Any] = []
    rt.on("system.error", lambda e: errors.append(e.payload), inline=True)
    (result,) = await rt.emit_parallel(["q.bad"])
    assert result[0] == "q.bad"
    assert isinstance(result[1], cxlang.Failure) and result[1].kind == "error"
    await rt.run_until_idle()
    assert errors and errors[0]["error"] == "nope"


async def test_closed_runtime_refuses_events() -> None:
    rt = cxlang.Runtime()
    await rt.aclose()
    with pytest.raises(cxlang.RuntimeClosed):
        rt.emit("a.b")


async def test_run_until_idle_waits_for_suspended_handlers(rt: cxlang.Runtime) -> None:
    done: list[int] = []

    @rt.on("slow.job")
    async def slow(event: cxlang.Event) -> None:
        await asyncio.sleep(0.02)
        done.append(1)

    rt.emit("slow.job")
    await rt.run_until_idle()
    assert done == [1]
    assert rt.bus.idle


async def test_failure_listeners_get_the_exception_instead_of_the_log(
    rt: cxlang.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    told: list[tuple[str, str, BaseException]] = []
    rt.bus.failure_listeners.append(lambda event, sub, exc: told.append((event.name, sub.name,
                                                                         exc)))

    @rt.on("job.fails")
    async def fails(event: cxlang.Event) -> None:
        raise LookupError("where")

    @rt.on("branch.fails")
    async def branch(event: cxlang.Event) -> None:
        raise ValueError("branch")

    with caplog.at_level(logging.ERROR, logger="cxlang.bus"):
        rt.emit("job.fails")
        await rt.run_until_idle()
        res = await rt.parallel({"b": "branch.fails"})
    # A branch's failure is its call's to handle: it is in the result, not told to listeners.
    assert [(name, type(exc)) for name, _, exc in told] == [("job.fails", LookupError)]
    assert "fails" in told[0][1]
    assert res.failures["b"].kind == "error"
    assert isinstance(res.failures["b"].exception, ValueError)
    assert caplog.text == ""
