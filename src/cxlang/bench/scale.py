"""``cx bench --scale``: how the cost of one branch, and of one event, grows with the size.

The fan-out runs at K = 10 to 100,000 branches (default handlers that return at once, then that
suspend once), beside ``asyncio.gather`` at each K; memory per in-flight branch is taken at the
same K, as :mod:`.memory` takes it; the bus carries bursts of 10^3 to 10^6 events, beside a bare
``asyncio.Queue`` loop. Every row is a cost per branch or per event, so a flat column is the
goal: what grows faster than the work shows as a rising number.

Rounds shrink as K grows so that the whole run takes a few minutes at most (one call of 100,000
branches takes about half a second). Every parameter names an event of its own, with one
subscriber, as in the fan-out scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime import Runtime
from .baselines import GATHER, Branches, gather_dict
from .measure import interleaved, per_call_samples, run_async
from .memory import PER_BRANCH_TARGET, in_flight_bytes
from .model import Comparison, Quantity, ScenarioResult, Unit
from .throughput import bus_rate, queue_rate
from .workloads import AsyncHandler, return_at_once, suspend_once

__all__ = ["BUS", "FAN_OUT", "FAN_OUT_SUSPEND", "MEMORY", "SIZES", "Sizes", "scale"]

FAN_OUT = "scale-fanout"
FAN_OUT_SUSPEND = "scale-fanout-suspend"
MEMORY = "scale-memory"
BUS = "scale-bus"

QUEUE = "asyncio.Queue loop"
PAYLOAD = {"prompt": "Analyse the Q3 numbers", "quarter": 3}
MIN_BATCH = 0.02  # seconds a timed batch of fan-out calls lasts at least


@dataclass(frozen=True, slots=True)
class Sizes:
    """The sizes measured: branches per call, and events per burst through the bus."""

    branches: tuple[int, ...] = (10, 100, 1_000, 10_000, 100_000)
    events: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)


SIZES = Sizes()


def scale(sizes: Sizes = SIZES) -> list[ScenarioResult]:
    """Every row of ``--scale``, each with its size in ``extra["size"]``."""
    rows = [run_async(_fan_out(FAN_OUT, "fan-out,", k, return_at_once))
            for k in sizes.branches]
    rows += [run_async(_fan_out(FAN_OUT_SUSPEND, "fan-out, suspend once,", k, suspend_once))
             for k in sizes.branches]
    rows += [_memory(k) for k in sizes.branches]
    rows += [run_async(_bus(events)) for events in sizes.events]
    return rows


def _rounds(size: int, work: int, fewest: int) -> int:
    """Rounds of a measurement whose run costs *size* units: at most 9, fewer as it grows."""
    return max(fewest, min(9, work // size))


async def _fan_out(scenario: str, title: str, k: int, handler: AsyncHandler) -> ScenarioResult:
    rt = Runtime()
    branches: Branches = [(f"p{i}", handler) for i in range(k)]
    parameters = {name: f"bench.scale.{name}" for name, _ in branches}
    for event in parameters.values():
        rt.on(event, handler)
    payload = dict(PAYLOAD)
    try:
        result = await rt.parallel(parameters, payload)
        if result.payload != await gather_dict(branches, payload):
            raise RuntimeError(f"cxlang and gather disagree at K={k}: {result!r}")
        samples = await per_call_samples(
            {"cxlang": lambda: rt.parallel(parameters, payload),
             GATHER: lambda: gather_dict(branches, payload)},
            _rounds(k, 30_000, fewest=3), MIN_BATCH,
        )
    finally:
        await rt.aclose()

    def per_branch(name: str) -> Quantity:
        return Quantity.median_of([s / k for s in samples[name]], Unit.SECONDS)

    return ScenarioResult(scenario, f"{title} K={k:,}: time per branch", per_branch("cxlang"),
                          (Comparison(GATHER, per_branch(GATHER)),), extra={"size": k})


def _memory(k: int) -> ScenarioResult:
    samples = run_async(in_flight_bytes(k, _rounds(k, 10_000, fewest=1), sequential=False))

    def per_branch(name: str) -> Quantity:
        return Quantity.median_of([s / k for s in samples[name]], Unit.BYTES)

    return ScenarioResult(MEMORY, f"memory, K={k:,}: bytes per in-flight branch",
                          per_branch("cxlang"),
                          (Comparison(GATHER, per_branch(GATHER), target=PER_BRANCH_TARGET),),
                          extra={"size": k})


async def _bus(events: int) -> ScenarioResult:
    async def bus() -> float:
        return 1 / await bus_rate(return_at_once, True, events)

    async def queue() -> float:
        return 1 / await queue_rate(return_at_once, events)

    samples = await interleaved({"cxlang": bus, QUEUE: queue},
                                _rounds(events, 500_000, fewest=1))
    return ScenarioResult(BUS, f"bus, inline handler, {events:,} events: time per event",
                          Quantity.median_of(samples["cxlang"], Unit.SECONDS),
                          (Comparison(QUEUE, Quantity.median_of(samples[QUEUE], Unit.SECONDS)),),
                          extra={"size": events})
