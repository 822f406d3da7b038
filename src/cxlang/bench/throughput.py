"""Scenario 4: events per second through the bus, against a bare ``asyncio.Queue`` loop.

Both sides take N events and run one handler on each; the bus also gives every event an id, a
causal parent, FIFO dispatch and failure reporting, which the bare loop does not. The target is
300,000 events/s for a handler that does not suspend, on one core.

A plain ``def`` handler runs on the pool's threads, so that a slow one never blocks the loop;
its bare loop calls the same function on the loop. What that row measures is the price of the
thread lane (:mod:`cxlang.runtime.threads`), whose target is a quarter of the bare loop's rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any

from ..runtime import Runtime
from .measure import Budget, interleaved, run_async
from .model import (
    Comparison,
    Quantity,
    ScenarioResult,
    Target,
    Unit,
    ratio_at_least,
    value_at_least,
)
from .workloads import AsyncHandler, return_at_once, suspend_once

__all__ = ["bus_rate", "plain_queue_rate", "queue_rate", "return_at_once_plain", "throughput"]

EVENT = "bench.tick"
PAYLOAD = {"n": 1}
QUEUE = "asyncio.Queue loop"

PlainHandler = Callable[[object], int]
Queue = asyncio.Queue[dict[str, int] | None]


def return_at_once_plain(_: object) -> int:
    """:func:`~.workloads.return_at_once` as a plain function: a thread handler on the bus."""
    return 1


def throughput(budget: Budget) -> list[ScenarioResult]:
    target = value_at_least(300_000, ">= 300,000/s")
    # A handler in a task of its own, or one that suspends, costs a task per event; a plain
    # function, a trip to a thread and back: fewer events keep those runs short.
    few = budget.events // 4
    return [
        run_async(_rates("bus, inline handler returns at once", budget, budget.events, target,
                         lambda: bus_rate(return_at_once, True, budget.events),
                         lambda: queue_rate(return_at_once, budget.events))),
        run_async(_rates("bus, handler returns at once", budget, few, None,
                         lambda: bus_rate(return_at_once, False, few),
                         lambda: queue_rate(return_at_once, few))),
        run_async(_rates("bus, handler suspends once", budget, few, None,
                         lambda: bus_rate(suspend_once, False, few),
                         lambda: queue_rate(suspend_once, few))),
        run_async(_rates("bus, plain def handler", budget, few,
                         ratio_at_least(0.25, ">= 25% of the loop"),
                         lambda: bus_rate(return_at_once_plain, False, few),
                         lambda: plain_queue_rate(return_at_once_plain, few))),
    ]


async def _rates(
    title: str,
    budget: Budget,
    events: int,
    target: Target | None,
    bus: Callable[[], Awaitable[float]],
    queue: Callable[[], Awaitable[float]],
) -> ScenarioResult:
    """The bus against its bare loop, each measured by a rate of *events* events."""
    samples = await interleaved({"cxlang": bus, QUEUE: queue}, budget.slow_rounds)
    return ScenarioResult(
        "bus",
        title,
        Quantity.median_of(samples["cxlang"], Unit.RATE),
        (Comparison(QUEUE, Quantity.median_of(samples[QUEUE], Unit.RATE), target=target),),
        extra={"events": events},
    )


async def bus_rate(handler: Callable[[Any], Any], inline: bool, events: int) -> float:
    """Events/s of one burst of *events* through a fresh runtime's bus to *handler* (an
    ``async def``, or a plain function, which runs on the pool's threads unless *inline*)."""
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

    async def consume(queue: Queue) -> None:
        get = queue.get
        while (item := await get()) is not None:
            await handler(item)

    return await _queue_burst(consume, events)


async def plain_queue_rate(handler: PlainHandler, events: int) -> float:
    """:func:`queue_rate` for a plain function, which the consumer calls on the loop."""

    async def consume(queue: Queue) -> None:
        get = queue.get
        while (item := await get()) is not None:
            handler(item)

    return await _queue_burst(consume, events)


async def _queue_burst(
    consume: Callable[[Queue], Coroutine[Any, Any, None]], events: int
) -> float:
    """Events/s of *events* put on a queue at once and taken off by *consume* in a task."""
    queue: Queue = asyncio.Queue()
    start = perf_counter()
    consumer = asyncio.create_task(consume(queue))
    put = queue.put_nowait
    for _ in range(events):
        put(PAYLOAD)
    put(None)  # tells the consumer to stop
    await consumer
    return events / (perf_counter() - start)
