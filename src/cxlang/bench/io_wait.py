"""Scenario 3, the design's own: ten handlers of 30 ms I/O each.

Sequentially that is 300 ms; the design hoped for ~100 ms in parallel; no scheduler can beat the
30 ms of the slowest branch. The target is to land within 5% of that limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter

from ..runtime import Runtime
from .baselines import GATHER, SEQUENTIAL, Branches, gather_dict, sequential_dict
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, RatioStyle, ScenarioResult, Unit, ratio_at_most
from .workloads import IO_SECONDS, wait_for_io

__all__ = ["io_wait"]

BRANCHES = 10
PAYLOAD = {"prompt": "Analyse the Q3 numbers"}


def io_wait(budget: Budget) -> list[ScenarioResult]:
    return [run_async(_io_wait(budget))]


async def _io_wait(budget: Budget) -> ScenarioResult:
    rt = Runtime()
    branches: Branches = [(f"p{i}", wait_for_io) for i in range(BRANCHES)]
    parameters = {name: f"bench.io.{name}" for name, _ in branches}
    for event in parameters.values():
        rt.on(event, wait_for_io)
    payload = dict(PAYLOAD)
    try:
        samples = await interleaved(
            {
                "cxlang": _timed(lambda: rt.parallel(parameters, payload)),
                GATHER: _timed(lambda: gather_dict(branches, payload)),
                SEQUENTIAL: _timed(lambda: sequential_dict(branches, payload)),
            },
            budget.slow_rounds,
        )
    finally:
        await rt.aclose()
    cxlang = Quantity.median_of(samples["cxlang"], Unit.SECONDS)
    return ScenarioResult(
        "io",
        f"{BRANCHES} x {IO_SECONDS * 1000:g} ms I/O",
        cxlang,
        (
            Comparison(SEQUENTIAL, Quantity.median_of(samples[SEQUENTIAL], Unit.SECONDS),
                       RatioStyle.FASTER),
            Comparison(GATHER, Quantity.median_of(samples[GATHER], Unit.SECONDS)),
            Comparison("limit (slowest branch)", Quantity(IO_SECONDS, Unit.SECONDS),
                       RatioStyle.PERCENT, ratio_at_most(1.05, "<= +5% over the limit")),
        ),
        extra={"overhead_percent": (cxlang.value / IO_SECONDS - 1) * 100},
    )


def _timed(call: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        start = perf_counter()
        await call()
        return perf_counter() - start

    return measure
