"""Scenario 4: events per second through the bus, against a bare ``asyncio.Queue`` loop.

Both sides take N events and run one handler on each; the bus also gives every event an id, a
causal parent, FIFO dispatch and failure reporting, which the bare loop does not. The target is
300,000 events/s for a handler that does not suspend, on one core.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from ..runtime import Runtime
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, ScenarioResult, Target, Unit, value_at_least
from .workloads import AsyncHandler, return_at_once, suspend_once

__all__ = ["bus_rate", "queue_rate", "throughput"]

EVENT = "bench.tick"
PAYLOAD = {"n": 1}
QUEUE = "asyncio.Queue loop"


def throughput(budget: Budget) -> list[ScenarioResult]:
    target = value_at_least(300_000, ">= 300,000/s")
    # A handler in a task of its own, or one that suspends, costs a task per event: fewer
    # events keep those runs short.
    return [
        run_async(_rates("bus, inline handler returns at once", return_at_once, True,
                         budget.events, budget, target)),
        run_async(_rates("bus, handler returns at once", return_at_once, False,
                         budget.events // 4, budget, None)),
        run_async(_rates("bus, handler suspends once", suspend_once, False, budget.events // 4,
                         budget, None)),
    ]


async def _rates(
    title: str,
    handler: AsyncHandler,
    inline: bool,
    events: int,
    budget: Budget,
    target: Target | None,
) -> ScenarioResult:
    async def bus() -> float:
        return await bus_rate(handler, inline, events)

    async def queue() -> float:
        return await queue_rate(handler, events)

    samples = await interleaved({"cxlang": bus, QUEUE: queue}, budget.slow_rounds)
    return ScenarioResult(
        "bus",
        title,
        Quantity.median_of(samples["cxlang"], Unit.RATE),
        (Comparison(QUEUE, Quantity.median_of(samples[QUEUE], Unit.RATE), target=target),),
        extra={"events": events},
    )


async def bus_rate(handler: AsyncHandler, inline: bool, events: int) -> float:
    """Events/s of one burst of *events* through a fresh runtime's bus to *handler*."""
    rt = Runtime(max_queue=events)  # the whole burst is queued before dispatch starts
    rt.on(EVENT, handler, inline=inline)
    emit = rt.emit
    try:
        start = perf_counter()
        for _ in range(events):
            emit(EVENT, PAYLOAD)
        await rt.run_until_idle()
        elapsed = perf_counter() - start
    finally:
        await rt.aclose()
    if rt.bus.handled != events:
        raise RuntimeError(f"the bus handled {rt.bus.handled} of {events} events")
    return events / elapsed


async def queue_rate(handler: AsyncHandler, events: int) -> float:
    """Events/s of the same burst through a bare ``asyncio.Queue`` and one consumer task."""
    queue: asyncio.Queue[dict[str, int] | None] = asyncio.Queue()

    async def consume() -> None:
        get = queue.get
        while (item := await get()) is not None:
            await handler(item)

    start = perf_counter()
    consumer = asyncio.create_task(consume())
    put = queue.put_nowait
    for _ in range(events):
        put(PAYLOAD)
    put(None)  # tells the consumer to stop
    await consumer
    return events / (perf_counter() - start)
