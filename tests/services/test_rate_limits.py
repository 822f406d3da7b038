"""Rate limits: token buckets, the concurrency that adapts to 429s, their cx.toml keys, and the
openai backend under them against the loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

import cxlang
from cxlang.services import (
    BackendError,
    BackendSettings,
    ConfigError,
    ServiceRequest,
    load_settings,
)
from cxlang.services.config import RateLimits
from cxlang.services.openai import OpenAIBackend
from cxlang.services.rate_limits import Concurrency, TokenBucket, estimate_tokens

from .openai_server import OpenAIServer, answer, delay, status


class Clock:
    """A clock and a sleep for the buckets: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def think(prompt: str, **properties: object) -> ServiceRequest:
    return ServiceRequest("think", {"prompt": prompt, **properties})


# The pieces ---------------------------------------------------------------------------------------

async def test_a_bucket_lets_a_seconds_worth_through_then_paces_the_rest() -> None:
    clock = Clock()
    bucket = TokenBucket(600, clock=clock, sleep=clock.sleep)  # 10 a second, 10 at once
    for _ in range(10):
        await bucket.take(1)
    assert clock.now == 0.0
    for _ in range(5):
        await bucket.take(1)
    assert clock.now == pytest.approx(0.5)


async def test_a_take_larger_than_the_bucket_waits_for_it_full_and_goes_into_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(6000, clock=clock, sleep=clock.sleep)  # 100 a second, 100 at once
    await bucket.take(350)  # full: let through, 250 owed
    await bucket.take(50)  # waits for the debt and its own 50: 3 s
    assert clock.now == pytest.approx(3.0)


async def test_the_true_cost_corrects_the_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(6000, clock=clock, sleep=clock.sleep)
    await bucket.take(100)
    bucket.adjust(10 - 100)  # estimated 100, the answer said 10
    await bucket.take(90)
    assert clock.now == 0.0


async def test_concurrency_halves_once_per_round_and_grows_back_by_successes() -> None:
    control = Concurrency(8)
    for _ in range(8):
        await control.acquire()
    sent_in = control.round
    for _ in range(4):  # four refusals of one round: one decrease
        control.refused(sent_in, None)
    for _ in range(8):
        control.release()
    assert control.limit == 4
    control.refused(control.round, None)
    assert control.limit == 2
    for _ in range(4):
        await control.acquire()
        control.succeeded()
        control.release()
    assert control.limit == 3  # 2 + 1/2 + 1/2.5 + ...: about one per round
    for _ in range(100):
        control.succeeded()
    assert control.limit == 8  # never above max_concurrency
    for _ in range(10):
        control.refused(control.round, None)
    assert control.limit == 1  # never below one


async def test_a_cancelled_waiter_leaves_no_slot_taken() -> None:
    control = Concurrency(1)
    await control.acquire()
    waiter = asyncio.ensure_future(control.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    control.release()  # hands the slot to the waiter, which is cancelled meanwhile
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert control.in_flight == 0
    await asyncio.wait_for(control.acquire(), 1.0)


def test_the_estimate_is_a_quarter_of_the_json_plus_max_tokens() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}],
            "max_tokens": 50}
    assert 100 < estimate_tokens(body) - 50 < 120  # 400 characters of text, and the JSON


# cx.toml ----------------------------------------------------------------------------------------

def test_limits_from_cx_toml_per_model_over_the_top_level(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text(
        'model = "gpt-4o-mini"\nrequests_per_minute = 500\ntokens_per_minute = 200000\n'
        '[limits."text-embedding-3-small"]\nrequests_per_minute = 3000\n', encoding="utf-8")
    settings = load_settings(env={}, cwd=tmp_path)
    assert settings.limits_for("gpt-4o-mini") == RateLimits(500.0, 200_000.0)
    assert settings.limits_for("text-embedding-3-small") == RateLimits(3000.0, None)
    assert settings.limits_for("another") == RateLimits(500.0, 200_000.0)


def test_no_limits_by_default(tmp_path: Path) -> None:
    assert load_settings(env={}, cwd=tmp_path).limits_for("gpt-4o-mini") == RateLimits()


@pytest.mark.parametrize(("text", "message"), [
    ("requests_per_minute = 0\n", r"requests_per_minute must be a positive number, got 0"),
    ('tokens_per_minute = "many"\n', r"tokens_per_minute must be a positive number"),
    ("limits = 5\n", r"limits takes a table per model"),
    ('[limits."m"]\nrpm = 5\n', r'\[limits."m"\]: unknown setting \'rpm\''),
])
def test_bad_limits_say_what_to_write(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "cx.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, cwd=tmp_path)


# The backend under limits -----------------------------------------------------------------------

async def test_a_fan_out_against_a_server_refusing_past_4_at_once_ends_with_every_result(
    rt: cxlang.Runtime, server: OpenAIServer, settings: BackendSettings
) -> None:
    branches = 50
    server.max_in_flight = 4  # then 429 with Retry-After: 0.05
    server.always("fan", delay(0.02))
    async with cxlang.Services(rt, settings=settings) as svc:  # max_concurrency 8, 2 retries
        def asker(n: int) -> Callable[[cxlang.Event], Awaitable[str]]:
            async def ask(event: cxlang.Event) -> str:
                return await svc.think(f"fan {n}")
            return ask

        for n in range(branches):
            rt.on(f"ask.{n}", asker(n))
        started = time.monotonic()
        res = await svc.think("go", parallel={f"b{n}": f"ask.{n}" for n in range(branches)},
                              timeout=30.0)
        took = time.monotonic() - started
    refusals = sum(e.outcome == "status 429" for e in server.exchanges)
    print(f"\nfan-out: {branches} branches, {refusals} 429s seen, {took:.2f} s")
    assert res.failures == {}
    assert [res.payload[f"b{n}"] for n in range(branches)] == [
        f"echo: fan {n}" for n in range(branches)]
    assert refusals > 0  # the limit was found, not known
    assert server.most_in_flight <= 4


async def test_a_server_that_always_refuses_still_ends_each_call_with_its_retries_used(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("never", status(429, retry_after="0"))
    made = OpenAIBackend(settings)
    try:
        results = await asyncio.gather(*(made.complete(think(f"never {n}")) for n in range(6)),
                                       return_exceptions=True)
    finally:
        await made.aclose()
    assert all(isinstance(r, BackendError) and "gave up after 3 attempts" in str(r)
               for r in results)
    # Refusals while others were in flight were free, but the limit fell to one, and from
    # then each refusal used an attempt.
    assert len(server.exchanges) < 6 * 3 * 2


async def test_requests_per_minute_holds(server: OpenAIServer, settings: BackendSettings) -> None:
    rate = 600.0  # 10 a second, 10 at once
    made = OpenAIBackend(replace(settings, rate_limits=RateLimits(requests_per_minute=rate)))
    try:
        await asyncio.gather(*(made.complete(think(f"q{n}")) for n in range(25)))
    finally:
        await made.aclose()
    starts = sorted(e.started for e in server.exchanges)
    for n, start in enumerate(starts):  # the n-th waits for n - 9 more requests' worth
        assert start - starts[0] >= (n - 10) / (rate / 60) - 0.05
    assert starts[-1] - starts[0] >= 1.4


async def test_tokens_per_minute_holds_and_usage_corrects_the_estimate(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    rate = 60_000.0  # 1000 a second, 1000 at once
    made = OpenAIBackend(replace(settings, model_limits={
        "test-model": RateLimits(tokens_per_minute=rate)}, max_tokens=200))
    # Answers without usage: the estimates stand.
    server.always("pace", answer({"choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"content": "ok"}}]}))
    try:
        await asyncio.gather(*(made.complete(think(f"pace {n}")) for n in range(12)))
        chats = server.chats()
        costs = [estimate_tokens(body) for body in chats]
        starts = [e.started for e in server.exchanges]
        for n, start in enumerate(starts):
            owed = sum(costs[:n + 1]) - rate / 60
            assert start - starts[0] >= owed / (rate / 60) - 0.05
        assert starts[-1] - starts[0] >= 1.5
        # The server's usage (a dozen tokens) gives back the rest of each estimate at once.
        await asyncio.sleep(1.0)  # the bucket full again
        started = time.monotonic()
        for n in range(20):  # 20 estimates of ~240 tokens: 4 s without the correction
            await made.complete(think(f"cheap {n}"))
        assert time.monotonic() - started < 2.0
    finally:
        await made.aclose()


async def test_without_limits_nothing_waits(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("SLOW", delay(0.1))
    made = OpenAIBackend(replace(settings, max_concurrency=20))
    try:
        await asyncio.gather(*(made.complete(think(f"SLOW {n}")) for n in range(20)))
    finally:
        await made.aclose()
    intervals = [(e.started, e.ended or 0.0) for e in server.exchanges]
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
