"""Scenario 3, the design's own: ten handlers of 30 ms I/O each.

Sequentially that is 300 ms; the design hoped for ~100 ms in parallel; no scheduler can beat the
30 ms of the slowest branch. The target is to land within 5% of that limit. The frameworks of
:mod:`.peers` run the same handlers beside it: what they add above the limit is what counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from ..runtime import Runtime
from .baselines import (
    GATHER,
    NOT_INSTALLED,
    SEQUENTIAL,
    Branches,
    FanOut,
    check_same_result,
    gather_dict,
    payload_of,
    sequential_dict,
)
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, RatioStyle, ScenarioResult, Unit, ratio_at_most
from .peers import PEERS
from .workloads import IO_SECONDS, wait_for_io

__all__ = ["io_wait"]

BRANCHES = 10
PAYLOAD = {"prompt": "Analyse the Q3 numbers"}


def io_wait(budget: Budget) -> list[ScenarioResult]:
    return run_async(_io_wait(budget))


async def _io_wait(budget: Budget) -> list[ScenarioResult]:
    rt = Runtime()
    branches: Branches = [(f"p{i}", wait_for_io) for i in range(BRANCHES)]
    parameters = {name: f"bench.io.{name}" for name, _ in branches}
    for event in parameters.values():
        rt.on(event, wait_for_io)
    payload: dict[str, Any] = dict(PAYLOAD)
    measures = {
        "cxlang": _timed(lambda: rt.parallel(parameters, payload)),
        GATHER: _timed(lambda: gather_dict(branches, payload)),
        SEQUENTIAL: _timed(lambda: sequential_dict(branches, payload)),
    }
    results = {"cxlang": payload_of(rt, parameters)}
    for peer in PEERS:
        fan_out = peer.build(branches)
        if fan_out is not None:
            measures[peer.name] = _timed(_bound(fan_out, payload))
            results[peer.name] = fan_out
    try:
        await check_same_result(results, branches, payload)
        samples = await interleaved(measures, budget.slow_rounds)
    finally:
        await rt.aclose()

    def measured(name: str) -> Quantity:
        return Quantity.median_of(samples[name], Unit.SECONDS)

    def above_limit(name: str) -> Quantity:
        return Quantity.median_of([s - IO_SECONDS for s in samples[name]], Unit.SECONDS)

    cxlang = measured("cxlang")
    title = f"{BRANCHES} x {IO_SECONDS * 1000:g} ms I/O"
    return [
        ScenarioResult(
            "io",
            title,
            cxlang,
            (
                Comparison(SEQUENTIAL, measured(SEQUENTIAL), RatioStyle.FASTER),
                Comparison(GATHER, measured(GATHER)),
                Comparison("limit (slowest branch)", Quantity(IO_SECONDS, Unit.SECONDS),
                           RatioStyle.PERCENT, ratio_at_most(1.05, "<= +5% over the limit")),
            ),
            extra={"overhead_percent": (cxlang.value / IO_SECONDS - 1) * 100},
        ),
        # What each adds to the wait it cannot shorten: the frameworks' cost shows only here.
        ScenarioResult(
            "io",
            f"{title}: time above the limit",
            above_limit("cxlang"),
            (
                Comparison(GATHER, above_limit(GATHER)),
                *(Comparison(peer.name, above_limit(peer.name), RatioStyle.FASTER)
                  if peer.name in samples else Comparison(peer.name, None, note=NOT_INSTALLED)
                  for peer in PEERS),
            ),
        ),
    ]


def _bound(fan_out: FanOut, payload: dict[str, Any]) -> Callable[[], Awaitable[object]]:
    return lambda: fan_out(payload)


def _timed(call: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        start = perf_counter()
        await call()
        return perf_counter() - start

    return measure
