"""The coordinator's promises at their edges: however a handler ends, whatever cancels it.

Each test here failed (or hung, bounded by ``asyncio.wait_for``) before the fix it guards.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import cxlang
from cxlang import Failure
from cxlang.runtime.observe.span import Span

BOUND = 10.0  # a generous bound on anything that could hang


async def _cancelled_future() -> None:
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future  # raises CancelledError without ever suspending


# 1. Inline handlers are cancelled, not closed -------------------------------------------------


async def test_inline_handler_cancelled_before_its_task_ran_sees_cancelled_error(
    rt: cxlang.Runtime,
) -> None:
    seen: list[str] = []
    nested_done = asyncio.Event()

    @rt.on("slow.inner")
    async def inner(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            nested_done.set()

    @rt.on("slow.one", inline=True)
    async def slow(event: cxlang.Event) -> None:
        try:
            await rt.parallel({"inner": "slow.inner"})
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            await asyncio.sleep(0)  # an await in finally works after a cancellation
            seen.append("finally")

    @rt.on("fails.now", inline=True)
    async def fails(event: cxlang.Event) -> None:
        raise ValueError("at once")

    res = await asyncio.wait_for(
        rt.parallel({"slow": "slow.one", "bad": "fails.now"}, fail_fast=True), BOUND)
    assert seen == ["cancelled", "finally"]
    assert nested_done.is_set(), "the nested call's handler ended before the outer call returned"
    assert res.failures["slow"].kind == "cancelled"
    assert res.failures["bad"].kind == "error"


# 2. CancelledError raised without suspending --------------------------------------------------


@pytest.mark.parametrize("inline", [True, False])
@pytest.mark.parametrize("cap", [None, 1])
async def test_cancelled_error_without_suspending_is_this_branch_only(
    inline: bool, cap: int | None
) -> None:
    async with cxlang.Runtime(max_concurrency=cap) as rt:
        @rt.on("odd.one", inline=inline)
        async def odd(event: cxlang.Event) -> None:
            await _cancelled_future()

        @rt.on("good.one")
        async def good(event: cxlang.Event) -> int:
            await asyncio.sleep(0.01)
            return 1

        for _ in range(2):  # the next call does not hang on a leaked slot
            res = await asyncio.wait_for(rt.parallel({"odd": "odd.one", "good": "good.one"}),
                                         BOUND)
            assert res.results == {"good": 1}
            assert res.failures["odd"].kind == "cancelled"
            assert "nothing cancelled it" in res.failures["odd"].message
        assert rt.pool.in_use == 0


async def test_bus_goes_on_after_a_handler_raises_cancelled_error_at_once(
    rt: cxlang.Runtime,
) -> None:
    seen: list[int] = []

    @rt.on("tick.odd", inline=True)
    async def odd(event: cxlang.Event) -> None:
        await _cancelled_future()

    @rt.on("tick.odd", inline=True)
    def after(event: cxlang.Event) -> None:
        seen.append(event.payload["n"])

    for n in range(3):
        rt.emit("tick.odd", {"n": n})
    await asyncio.wait_for(rt.run_until_idle(), BOUND)
    assert seen == [0, 1, 2]


# 3. Other BaseExceptions: as a task group -----------------------------------------------------


class Stop(BaseException):
    pass


@pytest.mark.parametrize("inline", [True, False])
async def test_a_base_exception_cancels_the_siblings_then_propagates(
    rt: cxlang.Runtime, inline: bool
) -> None:
    sibling_ended = asyncio.Event()

    @rt.on("stop.now", inline=inline)
    async def stop(event: cxlang.Event) -> None:
        await asyncio.sleep(0.01)
        raise Stop

    @rt.on("long.one")
    async def long(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            sibling_ended.set()

    with pytest.raises(Stop):
        await asyncio.wait_for(
            rt.parallel({"stop": "stop.now", "long": "long.one"}, timeout=math.inf), BOUND)
    assert sibling_ended.is_set()
    assert rt.pool.in_use == 0


# 4. An exception that cannot be printed -------------------------------------------------------


class Unprintable(Exception):  # noqa: N818 - named for what it does
    def __str__(self) -> str:
        raise RuntimeError("no")


async def test_an_unprintable_exception_is_reported_and_the_call_ends(rt: cxlang.Runtime) -> None:
    @rt.on("bad.str")
    async def bad(event: cxlang.Event) -> None:
        await asyncio.sleep(0)
        raise Unprintable

    res = await asyncio.wait_for(rt.parallel({"bad": "bad.str"}, timeout=0.5), BOUND)
    failure = res.failures["bad"]
    assert failure.kind == "error"
    assert "Unprintable" in failure.message and "cannot be shown" in failure.message

    rt.emit("bad.str")  # and on the bus
    await asyncio.wait_for(rt.run_until_idle(), BOUND)
    assert await asyncio.wait_for(rt.publish("bad.str"), BOUND) != []


# 5. Thread handlers ---------------------------------------------------------------------------


class Peak:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


async def test_a_timed_out_thread_keeps_its_slot_until_it_really_ends() -> None:
    peak = Peak()
    release = threading.Event()
    async with cxlang.Runtime(max_concurrency=2) as rt:
        @rt.on("block.one")
        def block(event: cxlang.Event) -> str:
            with peak:
                release.wait(5)
            return "late"

        first = await asyncio.wait_for(
            rt.parallel({"a": "block.one", "b": "block.one"}, timeout=0.1), BOUND)
        for name in "ab":
            failure = first.failures[name]
            assert failure.kind == "timeout"
            assert "its thread is still running and its result will be dropped" in \
                failure.message
        assert rt.pool.in_use == 2, "the threads still run: their slots stay taken"
        second = asyncio.ensure_future(rt.parallel({"c": "block.one", "d": "block.one"},
                                                   timeout=5))
        await asyncio.sleep(0.2)
        assert peak.peak == 2, "the budget of two held, threads included"
        release.set()
        res = await asyncio.wait_for(second, BOUND)
        assert res.results == {"c": "late", "d": "late"}
        assert peak.peak == 2
        assert rt.pool.in_use == 0


async def test_a_thread_handler_sees_that_it_was_cancelled() -> None:
    stopped = threading.Event()
    async with cxlang.Runtime() as rt:
        @rt.on("poll.one")
        def poll(event: cxlang.Event) -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if cxlang.current_context().cancelled:
                    stopped.set()
                    cxlang.check_cancelled()
                time.sleep(0.005)

        res = await asyncio.wait_for(rt.parallel({"p": "poll.one"}, timeout=0.05), BOUND)
        assert res.failures["p"].kind == "timeout"
        assert await asyncio.to_thread(stopped.wait, 5)


@pytest.mark.parametrize(
    ("max_threads", "timeout", "why"),
    [
        # The one thread is taken by the blocked handler.
        (1, 0.2, "every one of the 1 handler threads (max_threads) was busy"),
        # Threads to spare, but a timeout shorter than the lane's first check: the handler was
        # still queued behind the blocked one on the same thread.
        (8, 0.002, "it was queued behind other handlers on a thread"),
    ],
)
async def test_a_thread_that_never_started_says_why_it_timed_out(
    max_threads: int, timeout: float, why: str
) -> None:
    release = threading.Event()
    async with cxlang.Runtime(max_threads=max_threads) as rt:
        @rt.on("block.one")
        def block(event: cxlang.Event) -> None:
            release.wait(5)

        @rt.on("quick.one")
        def quick(event: cxlang.Event) -> int:
            return 1

        try:
            res = await asyncio.wait_for(
                rt.parallel({"a": "block.one", "b": "quick.one"}, timeout=timeout), BOUND)
            message = res.failures["b"].message
            assert f"did not start within {timeout:g} s" in message
            assert why in message
        finally:
            release.set()


# 7. Closing -----------------------------------------------------------------------------------


async def test_aclose_cancels_calls_in_flight_and_refuses_new_work() -> None:
    ended = asyncio.Event()
    rt = cxlang.Runtime()

    @rt.on("long.one")
    async def long(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(100)
        finally:
            ended.set()

    call = asyncio.ensure_future(rt.parallel({"long": "long.one"}, timeout=0.2))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(rt.aclose(), BOUND)
    assert ended.is_set()
    res = await asyncio.wait_for(call, BOUND)
    assert res.failures["long"].kind == "cancelled"
    assert "closed" in res.failures["long"].message
    with pytest.raises(cxlang.RuntimeClosed):
        await rt.parallel({"long": "long.one"})
    with pytest.raises(cxlang.RuntimeClosed):
        await rt.publish("long.one")
    with pytest.raises(cxlang.RuntimeClosed):
        rt.as_completed({"long": "long.one"})
    with pytest.raises(cxlang.RuntimeClosed):
        rt.emit("long.one")


# 7b. Calls nested on the stack until it runs out ---------------------------------------------

# Run in a fresh interpreter: where the stack runs out depends on every frame below the call,
# and pytest's own frames (and the C calls they make) move it.
_NESTED_ON_THE_STACK = """
import asyncio, sys
import cxlang

def at_depth(frames, then):
    return then() if frames == 0 else at_depth(frames - 1, then)

async def main(cap):
    for extra in range(40):  # every position of the limit within one level of nesting
        rt = cxlang.Runtime(max_concurrency=cap)

        @rt.on("deep.call", inline=True)
        async def deep(event):
            res = await rt.parallel({"inner": "deep.call", "other": "deep.leaf"})
            return res.failures["inner"].kind if "inner" in res.failures else res.results

        @rt.on("deep.leaf", inline=True)
        async def leaf(event):
            return 1

        res = await asyncio.wait_for(at_depth(extra, lambda: rt.parallel({"top": "deep.call"})), 10)
        assert res.failures == {}, res.failures
        await asyncio.wait_for(rt.aclose(), 10)
        assert rt.pool.in_use == 0 and not rt.coordinator._in_flight, extra

asyncio.run(main(None if sys.argv[1] == "none" else int(sys.argv[1])))
print("ok")
"""


@pytest.mark.parametrize("cap", ["none", "3"])
def test_calls_nested_without_waiting_fail_cleanly_wherever_the_stack_runs_out(cap: str) -> None:
    """A handler whose first step starts a call to itself nests on Python's stack. However
    deep the first call starts, the nesting ends in a failure of the innermost branch, every
    call returns, no slot leaks, and the runtime closes."""
    done = subprocess.run([sys.executable, "-c", _NESTED_ON_THE_STACK, cap],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "ok\n"
    assert done.stderr == ""


# 8. Nested calls under a runtime budget -------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 2])
async def test_nested_calls_under_a_full_budget_do_not_deadlock(cap: int) -> None:
    peak = Peak()
    async with cxlang.Runtime(max_concurrency=cap) as rt:
        @rt.on("leaf.one")
        async def leaf(event: cxlang.Event) -> int:
            with peak:
                await asyncio.sleep(0.01)
            return 1

        @rt.on("outer.one")
        async def outer(event: cxlang.Event) -> int:
            with peak:
                await asyncio.sleep(0.01)
            res = await rt.parallel({"x": "leaf.one", "y": "leaf.one"})
            with peak:
                await asyncio.sleep(0.01)
            return sum(res.results.values())

        res = await asyncio.wait_for(
            rt.parallel({"a": "outer.one", "b": "outer.one", "c": "outer.one"}, timeout=5),
            BOUND)
        assert res.results == {"a": 2, "b": 2, "c": 2}
        assert peak.peak <= cap
        assert rt.pool.in_use == 0


# 9. Emits from threads ------------------------------------------------------------------------


async def test_emits_from_thread_handlers_are_delivered_and_bounded() -> None:
    got: list[int] = []
    queued: list[int] = []
    async with cxlang.Runtime(max_queue=10) as rt:
        @rt.on("from.thread")
        def emitter(event: cxlang.Event) -> int:
            for n in range(50):
                rt.emit("thread.says", {"n": n, "from": event.payload["k"]})
            return 50

        @rt.on("thread.says", inline=True)
        def hear(event: cxlang.Event) -> None:
            got.append(event.payload["n"])
            queued.append(len(rt.bus._queue))

        params = {f"e{k}": "from.thread" for k in range(4)}
        res = await asyncio.wait_for(rt.parallel(params, {"k": 0}), BOUND)
        assert list(res.results.values()) == [50] * 4
        # Delivered without anything else draining the bus, and the bound held.
        for _ in range(100):
            if len(got) == 200:
                break
            await asyncio.sleep(0.01)
        assert sorted(got) == sorted(list(range(50)) * 4)
        assert max(queued) < 10


# 10. Deadlines --------------------------------------------------------------------------------


async def test_a_nested_call_in_a_first_step_does_not_delay_the_outer_deadline(
    rt: cxlang.Runtime,
) -> None:
    @rt.on("inner.slow")
    async def inner(event: cxlang.Event) -> None:
        await asyncio.sleep(100)

    @rt.on("outer.busy", inline=True)
    async def outer(event: cxlang.Event) -> None:
        time.sleep(0.3)  # a first step that takes time, then a nested call, same timeout
        await rt.parallel({"i": "inner.slow"}, timeout=0.6)

    started = time.monotonic()
    res = await asyncio.wait_for(rt.parallel({"o": "outer.busy"}, timeout=0.6), BOUND)
    elapsed = time.monotonic() - started
    assert res.failures["o"].kind == "timeout"
    assert elapsed < 0.85, f"the outer deadline came {elapsed - 0.6:.2f} s late"


def test_a_runtime_refuses_a_second_loop_while_the_first_has_calls_in_flight() -> None:
    rt = cxlang.Runtime()
    inside = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    @rt.on("slow.one")
    async def slow(event: cxlang.Event) -> None:
        inside.set()
        await asyncio.to_thread(release.wait, 5)

    def first_loop() -> None:
        asyncio.run(rt.parallel({"s": "slow.one"}, timeout=5))

    thread = threading.Thread(target=first_loop)
    thread.start()
    try:
        assert inside.wait(5)

        async def second() -> None:
            try:
                await rt.parallel({"s": "slow.one"}, timeout=5)
            except RuntimeError as exc:
                errors.append(exc)

        asyncio.run(second())
    finally:
        release.set()
        thread.join(5)
    assert errors and "one event loop at a time" in str(errors[0])


# 13. Smaller promises -------------------------------------------------------------------------


async def test_several_subscribers_keep_their_values_when_one_fails(rt: cxlang.Runtime) -> None:
    @rt.on("many.one")
    async def first(event: cxlang.Event) -> int:
        return 1

    @rt.on("many.one")
    async def second(event: cxlang.Event) -> int:
        raise ValueError("two")

    @rt.on("many.one")
    async def third(event: cxlang.Event) -> int:
        return 3

    res = await rt.parallel({"m": "many.one"})
    (outcome,) = res.outcomes
    assert outcome.failure is not None and outcome.failure.kind == "error"
    assert outcome.value[0] == 1 and outcome.value[2] == 3
    assert isinstance(outcome.value[1], Failure)
    assert res.payload["m"] == [1, None, 3]
    assert res.payload["_errors"]["m"]["type"] == "error"


async def test_handlers_cannot_change_what_their_siblings_see(rt: cxlang.Runtime) -> None:
    seen: list[Any] = []

    @rt.on("edit.one")
    async def edit(event: cxlang.Event) -> str:
        with pytest.raises(TypeError, match="read-only"):
            event.payload["x"] = 2
        return "tried"

    @rt.on("read.one")
    async def read(event: cxlang.Event) -> None:
        await asyncio.sleep(0)
        seen.append(event.payload["x"])

    source = {"x": 1}
    res = await rt.parallel({"e": "edit.one", "r": "read.one"}, source)
    assert seen == [1] and res.payload["x"] == 1 and source == {"x": 1}


@pytest.mark.parametrize("inline", [True, False])
async def test_a_plain_function_returning_a_coroutine_is_refused(
    rt: cxlang.Runtime, inline: bool
) -> None:
    async def later(event: cxlang.Event) -> int:
        return 1

    def wraps(event: cxlang.Event) -> Any:
        return later(event)

    rt.on("wraps.one", wraps, inline=inline)
    res = await rt.parallel({"w": "wraps.one"})
    assert res.failures["w"].kind == "error"
    assert "returned a coroutine" in res.failures["w"].message


@pytest.mark.parametrize("name", ["", "a..b", "a.any", "*.b", ".a"])
async def test_emit_refuses_names_that_are_not_one_event(rt: cxlang.Runtime, name: str) -> None:
    with pytest.raises(ValueError, match="invalid event name"):
        rt.emit(name)
    with pytest.raises(ValueError, match="invalid event name"):
        await rt.emit_async(name)
    with pytest.raises(ValueError, match="invalid event name"):
        await rt.publish(name)


def test_on_refuses_a_handler_that_is_not_callable(rt: cxlang.Runtime) -> None:
    with pytest.raises(TypeError, match="must be callable"):
        rt.on("a.b", "not a function")  # type: ignore[call-overload]


# 11. Traces -----------------------------------------------------------------------------------


async def test_spans_of_handlers_cancelled_before_they_ran_end() -> None:
    ended: list[Span] = []
    opened: list[Span] = []

    class Sink:
        def started(self, span: Span) -> None:
            opened.append(span)

        def ended(self, span: Span) -> None:
            ended.append(span)

        def close(self) -> None:
            pass

    async with cxlang.Runtime(trace=Sink()) as rt:
        @rt.on("fails.now", inline=True)
        async def fails(event: cxlang.Event) -> None:
            raise ValueError("at once")

        @rt.on("never.ran")
        async def never(event: cxlang.Event) -> None:
            await asyncio.sleep(1)

        await rt.parallel({"bad": "fails.now", "a": "never.ran", "b": "never.ran"},
                          fail_fast=True)
    handler_spans = {s.id for s in opened if s.kind == "handler"}
    assert handler_spans <= {s.id for s in ended}
