"""Retries per branch: a failed branch's handler runs again, the rest of the call does not."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Any

import pytest

import cxlang
from cxlang import Retry, current_context
from cxlang.runtime.observe.chrome import ChromeTrace

QUICK = Retry(3, delay=0.001)


def _flaky(failures: int) -> tuple[list[int], Any]:
    """A plain handler that fails its first *failures* runs; the list counts its runs."""
    runs: list[int] = []

    def handler(event: cxlang.Event) -> str:
        runs.append(current_context().attempt)
        if len(runs) <= failures:
            raise ValueError(f"flaky run {len(runs)}")
        return f"ok on run {len(runs)}"

    return runs, handler


def _flaky_async(failures: int) -> tuple[list[int], Any]:
    runs: list[int] = []

    async def handler(event: cxlang.Event) -> str:
        runs.append(current_context().attempt)
        await asyncio.sleep(0)
        if len(runs) <= failures:
            raise ValueError(f"flaky run {len(runs)}")
        return f"ok on run {len(runs)}"

    return runs, handler


@pytest.mark.parametrize("kind", ["async def", "async def inline", "def in a thread",
                                  "def inline"])
async def test_a_branch_that_fails_twice_then_succeeds_gets_its_result(
    rt: cxlang.Runtime, kind: str
) -> None:
    runs, handler = _flaky_async(2) if kind.startswith("async") else _flaky(2)
    rt.on("flaky.run", handler, inline=kind.endswith("inline"))
    rt.on("steady.run", lambda event: "steady", inline=True)

    res = await rt.parallel({"a": "flaky.run", "b": "steady.run"}, retry=QUICK)

    assert res.payload == {"a": "ok on run 3", "b": "steady"}
    assert [o.attempts for o in res.outcomes] == [3, 1]
    assert runs == [1, 2, 3], "each run sees its attempt number in its context"


async def test_a_branch_that_always_fails_says_how_many_runs_it_had(
    rt: cxlang.Runtime,
) -> None:
    runs, handler = _flaky(99)
    rt.on("flaky.run", handler)

    res = await rt.parallel({"a": "flaky.run"}, retry=QUICK)

    assert len(runs) == 3
    assert res.failures["a"].attempts == 3
    assert res.payload["_errors"] == {
        "a": {"type": "error", "message": "ValueError: flaky run 3", "attempts": 3}}
    assert res.outcomes[0].attempts == 3


async def test_a_call_without_retry_is_unchanged(rt: cxlang.Runtime) -> None:
    runs, handler = _flaky(99)
    rt.on("flaky.run", handler)

    res = await rt.parallel({"a": "flaky.run"})

    assert runs == [1]
    assert res.failures["a"].attempts is None
    assert res.payload["_errors"] == {"a": {"type": "error", "message": "ValueError: flaky run 1"}}
    assert res.outcomes[0].attempts == 1


async def test_only_the_failed_handler_of_a_branch_runs_again(rt: cxlang.Runtime) -> None:
    steady_runs: list[int] = []
    runs, handler = _flaky(1)

    def steady(event: cxlang.Event) -> str:
        steady_runs.append(1)
        return "steady"

    rt.on("two.run", steady, inline=True)
    rt.on("two.run", handler)

    res = await rt.parallel({"a": "two.run"}, retry=QUICK)

    assert res.payload == {"a": ["steady", "ok on run 2"]}
    assert steady_runs == [1] and runs == [1, 2]
    assert res.outcomes[0].attempts == 2


async def test_a_timeout_is_retried_only_when_listed(rt: cxlang.Runtime) -> None:
    runs: list[int] = []

    @rt.on("slow.once")
    async def slow_once(event: cxlang.Event) -> str:
        runs.append(current_context().attempt)
        if len(runs) == 1:
            await asyncio.sleep(30)
        return "quick the second time"

    errors_only = await rt.parallel({"a": "slow.once"}, timeout=0.05, retry=QUICK)
    assert errors_only.failures["a"].kind == "timeout"
    assert errors_only.failures["a"].attempts == 1
    assert runs == [1]

    runs.clear()
    both = await rt.parallel({"a": "slow.once"}, timeout=0.05,
                             retry=Retry(3, delay=0.001, on=("error", "timeout")))
    assert both.payload == {"a": "quick the second time"}
    assert both.outcomes[0].attempts == 2


async def test_each_attempt_has_its_own_timeout(rt: cxlang.Runtime) -> None:
    """Three runs of 0.3 s each under a 1 s timeout: far more than the timeout in all, yet
    none of them times out."""
    runs: list[int] = []

    @rt.on("slowish.run")
    async def slowish(event: cxlang.Event) -> str:
        runs.append(1)
        await asyncio.sleep(0.3)
        if len(runs) < 3:
            raise ValueError("not yet")
        return "done"

    started = time.monotonic()
    res = await rt.parallel({"a": "slowish.run"}, timeout=1.0, retry=QUICK)
    assert res.payload == {"a": "done"}
    assert time.monotonic() - started > 0.9  # the three runs did take their time


async def test_the_handlers_own_policy_wins_over_the_calls(rt: cxlang.Runtime) -> None:
    once_runs, once = _flaky(99)
    rt.on("once.run", once, retry=Retry(1))
    own_runs, own = _flaky(3)
    rt.on("own.run", own, retry=Retry(4, delay=0.001))

    res = await rt.parallel({"once": "once.run", "own": "own.run"}, retry=QUICK)
    assert res.failures["once"].attempts == 1 and len(once_runs) == 1
    assert res.payload["own"] == "ok on run 4"

    own_runs.clear()
    res = await rt.parallel({"own": "own.run"})  # the call has no policy: the handler's applies
    assert res.payload["own"] == "ok on run 4"


async def test_the_waits_grow_with_the_backoff(rt: cxlang.Runtime) -> None:
    starts: list[float] = []

    @rt.on("fails.run", inline=True)
    def fails(event: cxlang.Event) -> None:
        starts.append(time.monotonic())
        raise ValueError("no")

    await rt.parallel({"a": "fails.run"}, retry=Retry(4, delay=0.05, backoff=3))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # Windows [0.025, 0.05], [0.075, 0.15], [0.225, 0.45]: generous bounds only.
    assert len(gaps) == 3
    assert gaps[0] < gaps[2] and gaps[2] >= 0.2


def test_each_wait_is_drawn_from_the_upper_half_of_its_window() -> None:
    policy = Retry(6, delay=0.1, backoff=2)
    for runs in range(1, 6):
        window = 0.1 * 2 ** (runs - 1)
        for _ in range(50):
            assert window / 2 <= policy.wait(runs) <= window


async def test_cancelling_the_caller_during_a_wait_ends_the_retries_at_once(
    rt: cxlang.Runtime,
) -> None:
    runs, handler = _flaky(99)
    rt.on("flaky.run", handler, inline=True)

    call = asyncio.ensure_future(rt.parallel({"a": "flaky.run"}, retry=Retry(3, delay=60)))
    while not runs:
        await asyncio.sleep(0.001)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)  # the 60 s wait is not waited for
    await asyncio.sleep(0.05)
    assert runs == [1], "no attempt starts after the caller is cancelled"


async def test_closing_a_stream_during_a_wait_ends_the_branch_cancelled(
    rt: cxlang.Runtime,
) -> None:
    runs, handler = _flaky(99)
    rt.on("flaky.run", handler, inline=True)
    rt.on("steady.run", lambda event: "steady", inline=True)

    async with rt.as_completed({"a": "flaky.run", "b": "steady.run"},
                               retry=Retry(3, delay=60)) as stream:
        async for name, _ in stream:
            assert name == "b"
            break
    assert runs == [1]


async def test_the_runtime_closing_during_a_wait_ends_the_branch_cancelled() -> None:
    rt = cxlang.Runtime()
    runs, handler = _flaky(99)
    rt.on("flaky.run", handler, inline=True)
    call = asyncio.ensure_future(rt.parallel({"a": "flaky.run"}, retry=Retry(3, delay=60)))
    while not runs:
        await asyncio.sleep(0.001)
    await asyncio.wait_for(rt.aclose(), 5)
    res = await call
    failure = res.failures["a"]
    assert failure.kind == "cancelled" and "while it waited to run again" in failure.message
    assert failure.attempts == 1


async def test_under_fail_fast_a_branch_being_retried_has_not_failed(
    rt: cxlang.Runtime,
) -> None:
    _, flaky = _flaky(2)
    rt.on("flaky.run", flaky)

    @rt.on("slow.run")
    async def slow(event: cxlang.Event) -> str:
        await asyncio.sleep(0.05)
        return "slow"

    res = await rt.parallel({"a": "flaky.run", "b": "slow.run"}, fail_fast=True, retry=QUICK)
    assert res.payload == {"a": "ok on run 3", "b": "slow"}


async def test_under_fail_fast_the_last_failed_attempt_stops_the_others(
    rt: cxlang.Runtime,
) -> None:
    runs, fails = _flaky(99)
    rt.on("fails.run", fails)

    @rt.on("forever.run")
    async def forever(event: cxlang.Event) -> None:
        await asyncio.sleep(60)

    res = await rt.parallel({"a": "fails.run", "b": "forever.run"}, fail_fast=True,
                            retry=QUICK, timeout=math.inf)
    assert len(runs) == 3
    assert res.failures["a"].kind == "error" and res.failures["a"].attempts == 3
    assert res.failures["b"].kind == "cancelled"


async def test_parallel_each_retries_too(rt: cxlang.Runtime) -> None:
    _, handler = _flaky(1)
    rt.on("flaky.run", handler)
    res = await rt.parallel_each({"a": ("flaky.run", {"x": 1})}, retry=QUICK)
    assert res.payload == {"a": "ok on run 2"}


async def test_a_limit_of_the_run_is_never_retried(rt: cxlang.Runtime) -> None:
    runs: list[int] = []

    @rt.on("limited.run", inline=True)
    def limited(event: cxlang.Event) -> None:
        runs.append(1)
        raise cxlang.LimitExceeded("event", "too many", 1)

    res = await rt.parallel({"a": "limited.run"}, retry=QUICK)
    assert runs == [1]
    assert res.failures["a"].attempts == 1


async def test_each_attempt_is_a_span_of_its_own_that_says_which() -> None:
    sink = ChromeTrace()
    async with cxlang.Runtime(trace=sink) as rt:
        _, handler = _flaky(2)
        rt.on("flaky.run", handler, inline=True)
        await rt.parallel({"a": "flaky.run"}, retry=QUICK)
    handlers = [s for s in sink.spans if s.kind == "handler"]
    assert [s.attrs.get("attempt", 1) for s in handlers] == [1, 2, 3]
    assert [s.failure is not None for s in handlers] == [True, True, False]


@pytest.mark.parametrize(("arguments", "says"), [
    ({"attempts": 0}, "attempts must be a whole number"),
    ({"attempts": 2.5}, "attempts must be a whole number"),
    ({"attempts": 2, "delay": -1}, "delay must be"),
    ({"attempts": 2, "backoff": 0.5}, "backoff must be"),
    ({"attempts": 2, "on": ()}, "at least one failure kind"),
    ({"attempts": 2, "on": ("cancelled",)}, "stopped on purpose"),
    ({"attempts": 2, "on": ("no_handler",)}, "nothing to run again"),
    ({"attempts": 2, "on": ("oops",)}, "no failure kind"),
    ({"attempts": 2000, "backoff": 10}, "wait for ever"),
])
def test_a_policy_that_makes_no_sense_is_refused(arguments: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Retry(**arguments)


def test_a_single_kind_given_as_a_string_is_refused() -> None:
    with pytest.raises(TypeError, match="tuple of failure kinds"):
        Retry(2, on="error")  # type: ignore[arg-type]
