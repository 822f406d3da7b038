"""Timing: medians over interleaved rounds, on one event loop chosen in one place.

The boxes this runs on are small and noisy, so no single number is trusted: every contender is
measured in several rounds and the median is reported. Rounds interleave the contenders (cxlang,
then each baseline, then cxlang again...) so that a slow patch of the machine hits all of them
alike instead of skewing one.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

__all__ = [
    "FULL",
    "LOOP_FACTORY",
    "QUICK",
    "Budget",
    "Call",
    "interleaved",
    "loop_name",
    "per_call_samples",
    "run_async",
]

T = TypeVar("T")

Call = Callable[[], Awaitable[object]]
Measure = Callable[[], Awaitable[float]]

# The event loop of every scenario; None is asyncio's default. Set uvloop.new_event_loop here.
LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None = None


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the loop :data:`LOOP_FACTORY` makes (3.11 has no ``loop_factory=``)."""
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(main)


def loop_name() -> str:
    """The class of the loop the scenarios run on, e.g. ``asyncio.unix_events._UnixSel...``."""

    async def probe() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    cls = run_async(probe())
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True, slots=True)
class Budget:
    """How much measuring a run does; ``--quick`` picks the small one."""

    rounds: int  # rounds of the fast measurements (fan-out calls); the median is reported
    min_batch: float  # seconds a timed batch of fast calls lasts at least
    slow_rounds: int  # rounds of the slow measurements (30 ms I/O, the bus, memory, CPU)
    events: int  # events per burst through the bus (full: the default queue bound)
    # These two default to the full run's, so a budget made for one scenario needs neither.
    peers_up_to: int = 100  # the largest fan-out the peers run (at K=100 a call takes ~0.2 s)
    cpu_seconds: float = 0.2  # CPU work of each handler of the cpu scenario


# --quick stays under 30 s on a busy 2-core machine, every scenario included: each number
# here was sized from the time its scenario took (cx bench prints them on stderr).
QUICK = Budget(rounds=5, min_batch=0.005, slow_rounds=3, events=20_000, peers_up_to=10,
               cpu_seconds=0.05)
FULL = Budget(rounds=21, min_batch=0.02, slow_rounds=9, events=100_000)


async def interleaved(measures: Mapping[str, Measure], rounds: int) -> dict[str, list[float]]:
    """Run every measure once per round, in turn; the samples of each, by name."""
    samples: dict[str, list[float]] = {name: [] for name in measures}
    # Everything alive now (modules, the peers' frameworks, the set-up) goes to the permanent
    # generation, so the collection before each measure scans only what the rounds make: with
    # LangGraph and LlamaIndex imported a full collection takes ~60 ms, 80 of them a quick run.
    gc.collect()
    gc.freeze()
    for _ in range(rounds):
        for name, measure in measures.items():
            gc.collect()  # leave no garbage from the previous contender to this one
            samples[name].append(await measure())
    return samples


async def per_call_samples(
    calls: Mapping[str, Call], rounds: int, min_batch: float
) -> dict[str, list[float]]:
    """Seconds per call of each contender: batches of calls, one batch per round.

    A single call of a few microseconds is below the clock's useful resolution, so each round
    times a batch sized (once, up front) to last at least *min_batch*.
    """
    sizes = {name: await _calls_per_batch(call, min_batch) for name, call in calls.items()}

    def per_call(name: str) -> Measure:
        call, size = calls[name], sizes[name]

        async def measure() -> float:
            return await _time_batch(call, size) / size

        return measure

    return await interleaved({name: per_call(name) for name in calls}, rounds)


async def _calls_per_batch(call: Call, min_batch: float) -> int:
    # Doubling also warms up caches and lazy set-up before anything is recorded.
    size = 1
    while await _time_batch(call, size) < min_batch:
        size *= 2
    return size


async def _time_batch(call: Call, size: int) -> float:
    start = perf_counter()
    for _ in range(size):
        await call()
    return perf_counter() - start
