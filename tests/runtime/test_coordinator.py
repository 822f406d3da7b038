"""The parallel handler coordinator: isolation, timeouts, cancellation, limits, streaming."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from typing import Any

import pytest

import cxlang
from cxlang import Failure

from . import process_handlers


async def test_results_land_under_their_names_in_declaration_order(rt: cxlang.Runtime) -> None:
    @rt.on("analytics.complete")
    async def analytics(event: cxlang.Event) -> dict[str, str]:
        await asyncio.sleep(0.01)
        return {"tone": "positive"}

    @rt.on("reporting.ready")
    def reporting(event: cxlang.Event) -> str:
        return "report on " + event.payload["prompt"]

    source = {"prompt": "Q3"}
    res = await rt.parallel(
        {"reporting": "reporting.ready", "analytics": "analytics.complete"}, source
    )
    assert res.payload == {"prompt": "Q3", "reporting": "report on Q3",
                           "analytics": {"tone": "positive"}}
    assert list(res.payload) == ["prompt", "reporting", "analytics"]
    assert res.failures == {}
    assert not res.has_partial_failures
    assert source == {"prompt": "Q3"}, "the source payload is never mutated"
    for timing in res.timings.values():
        assert timing.finished >= timing.started


async def test_partial_failure_keeps_the_other_results(rt: cxlang.Runtime) -> None:
    @rt.on("good.one")
    async def good(event: cxlang.Event) -> int:
        await asyncio.sleep(0)
        return 1

    @rt.on("bad.one")
    async def bad(event: cxlang.Event) -> int:
        await asyncio.sleep(0)
        raise ValueError("model unavailable")

    @rt.on("bad.sync")
    async def bad_at_once(event: cxlang.Event) -> int:
        raise KeyError("x")

    res = await rt.parallel({"good": "good.one", "bad": "bad.one", "worse": "bad.sync",
                             "nobody": "no.subscriber"})
    assert res.results == {"good": 1}
    assert res.payload["good"] == 1
    assert res.payload["bad"] is None and res.payload["worse"] is None
    assert res.payload["_errors"] == {
        "bad": {"type": "error", "message": "ValueError: model unavailable"},
        "worse": {"type": "error", "message": "KeyError: 'x'"},
        "nobody": {"type": "no_handler", "message": "no handler is subscribed to 'no.subscriber'"},
    }
    assert isinstance(res.failures["bad"].exception, ValueError)
    assert res.failed_names == ["bad", "worse", "nobody"]
    assert res.has_partial_failures


async def test_timeout_cancels_that_branch_only_and_leaves_no_task(rt: cxlang.Runtime) -> None:
    cleaned_up = []

    @rt.on("slow.one")
    async def slow(event: cxlang.Event) -> str:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned_up.append("slow")
        return "never"

    @rt.on("quick.one")
    async def quick(event: cxlang.Event) -> str:
        await asyncio.sleep(0.001)
        return "done"

    before = asyncio.all_tasks()
    res = await rt.parallel({"slow": "slow.one", "quick": "quick.one"}, timeout=0.05)
    assert res.results == {"quick": "done"}
    assert res.failures["slow"].kind == "timeout"
    assert "0.05 s" in res.failures["slow"].message
    assert res.payload["_errors"]["slow"]["type"] == "timeout"
    assert cleaned_up == ["slow"], "the timed-out handler's finally ran before the call returned"
    assert asyncio.all_tasks() == before


async def test_a_handler_that_swallows_its_cancellation_still_times_out(
    rt: cxlang.Runtime,
) -> None:
    @rt.on("stubborn.one")
    async def stubborn(event: cxlang.Event) -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "late"
        return "never"

    res = await rt.parallel({"s": "stubborn.one"}, timeout=0.02)
    assert res.failures["s"].kind == "timeout"


async def test_cancelling_the_caller_cancels_every_branch(rt: cxlang.Runtime) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def sleeper(event: cxlang.Event) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            finished.append(event.name)

    rt.on("a.go", sleeper)
    rt.on("b.go", sleeper)
    before = asyncio.all_tasks()
    call = asyncio.create_task(rt.parallel({"a": "a.go", "b": "b.go"}))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(finished) == ["a.go", "b.go"], "no branch outlives the call"
    assert asyncio.all_tasks() == before


async def test_fail_fast_cancels_the_siblings(rt: cxlang.Runtime) -> None:
    finished: list[str] = []

    @rt.on("fails.soon")
    async def fails(event: cxlang.Event) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("no")

    @rt.on("runs.long")
    async def long(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            finished.append("long")

    res = await rt.parallel({"f": "fails.soon", "l": "runs.long"}, fail_fast=True)
    assert res.failures["f"].kind == "error"
    assert res.failures["l"].kind == "cancelled"
    assert "fail-fast" in res.failures["l"].message
    assert finished == ["long"]

    without = await rt.parallel({"f": "fails.soon", "q": "fails.soon"}, timeout=5)
    assert set(without.failures) == {"f", "q"}


async def test_fail_fast_also_drops_branches_that_never_started(rt: cxlang.Runtime) -> None:
    @rt.on("fails.soon")
    async def fails(event: cxlang.Event) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("no")

    @rt.on("waits.turn")
    async def waits(event: cxlang.Event) -> int:
        await asyncio.sleep(0)
        return 1

    res = await rt.parallel({"f": "fails.soon", "w1": "waits.turn", "w2": "waits.turn"},
                            max_concurrency=1, fail_fast=True)
    assert res.failures["f"].kind == "error"
    assert res.failures["w1"].kind == "cancelled"
    assert res.failures["w2"].kind == "cancelled"


async def test_every_kind_of_branch_keeps_its_place_and_its_own_times(
    rt: cxlang.Runtime,
) -> None:
    # A branch of one handler has no record of its own while it runs (its unit stands for it):
    # its outcome, made when it ends, must still say when it started, and sit in its place.
    @rt.on("one.handler")
    async def one(event: cxlang.Event) -> int:
        await asyncio.sleep(0)
        return 1

    @rt.on("two.handlers")
    async def first(event: cxlang.Event) -> int:
        return 1

    @rt.on("two.handlers")
    async def second(event: cxlang.Event) -> int:
        await asyncio.sleep(0)
        return 2

    @rt.on("fails.soon")
    async def fails(event: cxlang.Event) -> int:
        await asyncio.sleep(0.01)
        raise ValueError("no")

    before = time.monotonic()
    res = await rt.parallel({"one": "one.handler", "two": "two.handlers", "nobody": "no.handler",
                             "queued": "one.handler", "fails": "fails.soon"}, max_concurrency=1)
    after = time.monotonic()
    assert [o.name for o in res.outcomes] == ["one", "two", "nobody", "queued", "fails"]
    assert res.results == {"one": 1, "two": [1, 2], "queued": 1}
    assert res.failures["fails"].kind == "error"
    for name, timing in res.timings.items():
        assert before <= timing.started <= timing.finished <= after, name
    # Queued behind the others under max_concurrency=1: it started after "one" had finished.
    assert res.timings["queued"].started >= res.timings["one"].finished


async def test_the_events_of_a_nested_call_are_caused_by_the_handler_that_made_it(
    rt: cxlang.Runtime,
) -> None:
    # All but the first of a call's events are made as siblings of the first one: each must
    # still name the handler's event as its cause, one hop deeper, with an id of its own.
    seen: dict[str, cxlang.Event] = {}

    @rt.on("inner.first")
    async def inner(event: cxlang.Event) -> int:
        seen[event.name] = event
        return 1

    rt.on("inner.other", inner)
    rt.on("inner.third", inner)

    @rt.on("outer.call")
    async def outer(event: cxlang.Event) -> dict[str, Any]:
        seen["outer"] = event
        res = await rt.parallel({"a": "inner.first", "b": "inner.other", "c": "inner.third"},
                                {"k": 1})
        return res.payload

    res = await rt.parallel({"outer": "outer.call"})
    assert res.payload["outer"] == {"k": 1, "a": 1, "b": 1, "c": 1}
    cause = seen["outer"]
    branches = [seen[name] for name in ("inner.first", "inner.other", "inner.third")]
    for event in branches:
        assert event.parent_id == cause.id
        assert event.depth == cause.depth + 1
        assert event.payload == {"k": 1}
    assert len({event.id for event in branches} | {cause.id}) == 4


async def test_observed_concurrency_never_exceeds_the_cap(rt: cxlang.Runtime) -> None:
    running = 0
    peak = 0

    @rt.on("work.item")
    async def work(event: cxlang.Event) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return 1

    params = {f"p{i}": "work.item" for i in range(40)}
    res = await rt.parallel(params, max_concurrency=3)
    assert res.results == {name: 1 for name in params}
    assert peak == 3


async def test_the_runtime_budget_is_shared_between_calls() -> None:
    running = 0
    peak = 0
    async with cxlang.Runtime(max_concurrency=4) as rt:

        @rt.on("work.item")
        async def work(event: cxlang.Event) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.002)
            running -= 1
            return 1

        calls = [rt.parallel({f"p{i}": "work.item" for i in range(10)}) for _ in range(3)]
        results = await asyncio.gather(*calls)
        assert all(len(r.results) == 10 for r in results)
        assert peak == 4
        assert rt.pool.in_use == 0


async def test_a_thousand_branches(rt: cxlang.Runtime) -> None:
    @rt.on("square.it")
    async def square(event: cxlang.Event) -> int:
        ctx = cxlang.current_context()
        assert ctx.parameter is not None
        if int(ctx.parameter[1:]) % 2:
            await asyncio.sleep(0)
        return int(ctx.parameter[1:]) ** 2

    res = await rt.parallel({f"p{i}": "square.it" for i in range(1000)})
    assert res.results == {f"p{i}": i * i for i in range(1000)}


async def test_several_subscribers_give_a_list_in_subscription_order(
    rt: cxlang.Runtime,
) -> None:
    @rt.on("multi.cast")
    async def first(event: cxlang.Event) -> str:
        await asyncio.sleep(0.01)
        return "first"

    @rt.on("multi.any")
    async def second(event: cxlang.Event) -> str:
        return "second"

    res = await rt.parallel({"m": "multi.cast"})
    assert res.payload["m"] == ["first", "second"]


async def test_every_branch_sees_its_own_context(rt: cxlang.Runtime) -> None:
    seen: dict[str, Any] = {}

    @rt.on("where.async")
    async def in_loop(event: cxlang.Event) -> None:
        await asyncio.sleep(0)
        seen["async"] = cxlang.current_context()

    @rt.on("where.thread", entity="ada")
    def in_thread(event: cxlang.Event) -> None:
        seen["thread"] = (cxlang.current_context(), threading.current_thread().name)

    parent = rt.emit("user.asked", {})

    @rt.on("user.asked")
    async def caller(event: cxlang.Event) -> cxlang.ParallelExecutionResult:
        return await rt.parallel({"a": "where.async", "t": "where.thread"})

    await rt.run_until_idle()
    ctx_a = seen["async"]
    ctx_t, thread_name = seen["thread"]
    assert ctx_a.parameter == "a" and ctx_t.parameter == "t"
    assert ctx_a.execution_id == ctx_t.execution_id is not None
    assert ctx_t.entity == "ada" and ctx_a.entity is None
    assert thread_name.startswith("cx-handler")
    assert ctx_a.event_name == "where.async"
    assert ctx_a.depth == 1, "one causal hop from the user.asked event"
    assert cxlang.current_context().parameter is None, "nothing leaks into the caller"
    assert parent.id != ctx_a.event_id


async def test_cpu_bound_handler_runs_in_a_process_and_sees_its_context(
    rt: cxlang.Runtime,
) -> None:
    rt.on("compute.it", process_handlers.where_and_who, cpu_bound=True)
    res = await rt.parallel({"x": "compute.it"}, {"n": 21})
    value = res.payload["x"]
    assert value["pid"] != os.getpid()
    assert value["parameter"] == "x"
    assert value["event"] == "compute.it"
    assert value["execution_id"] == res.execution_id
    assert value["n"] == 42


async def test_cpu_bound_handler_that_cannot_be_pickled_fails_clearly(
    rt: cxlang.Runtime,
) -> None:
    def local_function(event: cxlang.Event) -> int:
        return 1

    rt.on("local.fn", local_function, cpu_bound=True)
    rt.on("bad.result", process_handlers.returns_unpicklable, cpu_bound=True)
    res = await rt.parallel({"l": "local.fn", "r": "bad.result"})
    assert res.failures["l"].kind == "error"
    assert "module-level function" in res.failures["l"].message
    assert "cannot be sent back" in res.failures["r"].message


async def test_as_completed_streams_results_as_they_finish(rt: cxlang.Runtime) -> None:
    @rt.on("slow.one")
    async def slow(event: cxlang.Event) -> str:
        await asyncio.sleep(0.05)
        return "slow"

    @rt.on("fast.one")
    async def fast(event: cxlang.Event) -> str:
        await asyncio.sleep(0)
        return "fast"

    order = []
    stream = rt.as_completed({"s": "slow.one", "f": "fast.one", "n": "nobody.home"})
    async for name, outcome in stream:
        order.append((name, outcome.value if outcome.ok else outcome.failure))
    assert order == [("n", Failure("no_handler", "no handler is subscribed to 'nobody.home'")),
                     ("f", "fast"), ("s", "slow")]
    assert stream.result.payload["s"] == "slow"


async def test_closing_a_stream_early_cancels_what_is_left(rt: cxlang.Runtime) -> None:
    finished = []

    @rt.on("slow.one")
    async def slow(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            finished.append("slow")

    @rt.on("fast.one")
    async def fast(event: cxlang.Event) -> str:
        return "fast"

    async with rt.as_completed({"s": "slow.one", "f": "fast.one"}) as stream:
        async for name, _ in stream:
            assert name == "f"
            break
    assert finished == ["slow"]


async def test_no_timeout_with_math_inf(rt: cxlang.Runtime) -> None:
    @rt.on("a.b")
    async def handler(event: cxlang.Event) -> int:
        await asyncio.sleep(0.01)
        return 7

    assert (await rt.parallel({"x": "a.b"}, timeout=math.inf)).payload["x"] == 7
    with pytest.raises(ValueError, match="positive"):
        await rt.parallel({"x": "a.b"}, timeout=0)


async def test_task_bound_code_works_before_the_first_await(rt: cxlang.Runtime) -> None:
    seen: dict[str, bool] = {}

    @rt.on("bound.work")
    async def bound(event: cxlang.Event) -> str:
        first = asyncio.current_task()
        async with asyncio.timeout(5):  # binds to the task the handler lives in
            await asyncio.sleep(0.001)
        seen[event.payload["where"]] = first is asyncio.current_task() is not None
        return "done"

    @rt.on("bound.slow")
    async def bound_slow(event: cxlang.Event) -> str:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)
        return "never"

    res = await rt.parallel({"a": "bound.work", "b": "bound.work", "slow": "bound.slow"},
                            {"where": "parallel"})
    assert res.results == {"a": "done", "b": "done"}
    assert res.failures["slow"].kind == "error"
    assert "TimeoutError" in res.failures["slow"].message, "the handler's own timeout, not ours"
    rt.emit("bound.work", {"where": "bus"})
    await rt.run_until_idle()
    assert seen == {"parallel": True, "bus": True}



async def test_an_applications_task_factory_makes_the_handlers_tasks(rt: cxlang.Runtime) -> None:
    # Without a factory the coordinator makes these tasks itself on 3.11; with one, the
    # application's factory (tracing, say) must see every task, in calls and on the bus.
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    @rt.on("traced.work")
    async def traced(event: cxlang.Event) -> bool:
        await asyncio.sleep(0)
        return asyncio.current_task() in made

    loop.set_task_factory(factory)
    try:
        res = await rt.parallel({f"p{i}": "traced.work" for i in range(3)})
        rt.emit("traced.work")
        await rt.run_until_idle()
    finally:
        loop.set_task_factory(None)
    assert res.results == {"p0": True, "p1": True, "p2": True}
    assert len(made) == 4, "three branches and one handler on the bus"

async def test_inline_coroutines_start_without_a_task(rt: cxlang.Runtime) -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    @rt.on("light.work", inline=True)
    async def light(event: cxlang.Event) -> int:
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        tasks.append(asyncio.current_task())
        return 1

    caller = asyncio.current_task()
    res = await rt.parallel({"x": "light.work"})
    assert res.payload["x"] == 1
    assert tasks[0] is caller, "the first step ran right here, in the caller"
    assert tasks[1] is not None and tasks[1] is not caller


async def test_a_timeout_says_how_long_the_branch_waited_for_what(rt: cxlang.Runtime) -> None:
    gate = asyncio.Semaphore(1)

    @rt.on("db.query")
    async def query(event: cxlang.Event) -> str:
        with cxlang.runtime.waiting("a database connection"):
            async with gate:  # the other branch holds it for longer than the timeout
                await asyncio.sleep(5)
        return "rows"

    res = await rt.parallel({"a": "db.query", "b": "db.query"}, timeout=0.2)
    for failure in res.failures.values():
        assert failure.kind == "timeout"
        assert "s waiting for a database connection, which counts against its time" \
            in failure.message


async def test_waiting_outside_a_branch_is_harmless(rt: cxlang.Runtime) -> None:
    seen: list[str] = []

    @rt.on("job.run")
    async def job(event: cxlang.Event) -> None:
        with cxlang.runtime.waiting("something"):
            await asyncio.sleep(0)
        seen.append("done")

    with cxlang.runtime.waiting("nothing"):  # the root context keeps no tally
        rt.emit("job.run")
        await rt.run_until_idle()
    assert seen == ["done"]


async def test_closing_ends_while_cancelled_handlers_drain_their_own_calls() -> None:
    # aclose() and a cancelled handler's own call both waited for that call to drain: the
    # second wait replaced the first's future, which then never resolved (a hang at close).
    rt = cxlang.Runtime()
    ready = asyncio.Event()

    async def fan_out(event: cxlang.Event) -> None:
        depth = event.payload["depth"]
        if depth == 0:
            ready.set()
            await asyncio.Event().wait()
        await rt.parallel({"a": "x.go", "b": "x.go"}, {"depth": depth - 1}, timeout=math.inf)

    rt.on("x.go", fan_out, inline=True)
    call = asyncio.ensure_future(rt.parallel({"top": "x.go"}, {"depth": 4}, timeout=math.inf))
    await ready.wait()
    await asyncio.sleep(0.01)  # every leaf is waiting
    await asyncio.wait_for(rt.aclose(), 60)
    res = await asyncio.wait_for(call, 60)
    assert res.failures["top"].kind == "cancelled"
