"""Scenario 5: memory per in-flight branch, and the process's peak, parallel vs sequential.

What is fair: only what a call allocates counts. Before each run the garbage is collected, the
traced memory at that moment is the base and tracemalloc's peak is reset; the run's cost is its
peak over that base. The runtime, its subscriptions and one-time caches are set up (and warmed
by one untimed run) before, so they are not charged to any branch.

All K handlers wait on one gate, so all K branches are in flight at once when the peak is taken;
the sequential baseline runs the same handlers with the gate open, one after the other.

The brief's second goal, "peak memory within 10% of the sequential run", is about the process:
its resident memory plus what each run adds at its peak. The resident part is taken from a fresh
interpreter that has only imported cxlang, not from this process: here it depends on whatever
ran before (LangChain, a burst of 100,000 events), and the smallest cxlang process is the
hardest fair reference.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

from ..runtime import Runtime
from .baselines import GATHER, SEQUENTIAL, Branches, gather_dict, sequential_dict
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, ScenarioResult, Unit, ratio_at_most, value_below

__all__ = ["PER_BRANCH_TARGET", "in_flight_bytes", "memory"]

K = 1000
PER_BRANCH_TARGET = value_below(2048, "<= 2 KB")  # issue 19, at every K from 10 to 100,000
PAYLOAD = {"prompt": "Analyse the Q3 numbers"}

# Resident memory of a fresh interpreter that imports cxlang: the current size where /proc tells
# it, else the peak so far (ru_maxrss: KiB on Linux, bytes on macOS).
_PROBE = """
import os, sys, cxlang
try:
    with open("/proc/self/statm") as statm:
        print(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
except OSError:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak if sys.platform == "darwin" else peak * 1024)
"""

Run = Callable[[], Coroutine[Any, Any, object]]


class _Gated:
    """A handler that counts itself in and waits at the gate until every branch is in flight."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0

    def reset(self, *, open_gate: bool) -> None:
        self.gate = asyncio.Event()
        if open_gate:
            self.gate.set()
        self.started = 0

    async def __call__(self, _: object) -> int:
        self.started += 1
        await self.gate.wait()
        return 1


def memory(budget: Budget) -> list[ScenarioResult]:
    resident = _fresh_process_resident_bytes()
    samples = run_async(in_flight_bytes(K, budget.slow_rounds, sequential=True))

    def per_branch(name: str) -> Quantity:
        return Quantity.median_of([s / K for s in samples[name]], Unit.BYTES)

    results = [
        ScenarioResult(
            "memory",
            f"K={K} in flight: memory per branch",
            per_branch("cxlang"),
            (Comparison(GATHER, per_branch(GATHER), target=PER_BRANCH_TARGET),),
        )
    ]
    if resident is not None:
        results.append(_process_peak(resident, samples))
    return results


async def in_flight_bytes(k: int, rounds: int, *, sequential: bool) -> dict[str, list[float]]:
    """Bytes each run allocates at its peak with *k* branches in flight, by contender.

    cxlang and gather always; the sequential run (gate open, one branch at a time) on request.
    Every parameter names an event of its own, whose one subscriber is the gated handler.
    """
    handler = _Gated()
    rt = Runtime()
    branches: Branches = [(f"p{i}", handler) for i in range(k)]
    parameters = {name: f"bench.memory.{name}" for name, _ in branches}
    for event in parameters.values():
        rt.on(event, handler)
    payload = dict(PAYLOAD)

    def increment(run: Run, *, gated: bool) -> Callable[[], Coroutine[Any, Any, float]]:
        async def measure() -> float:
            return float(await _peak_increment(run, handler, k, gated=gated))

        return measure

    measures = {
        "cxlang": increment(lambda: rt.parallel(parameters, payload), gated=True),
        GATHER: increment(lambda: gather_dict(branches, payload), gated=True),
    }
    if sequential:
        measures[SEQUENTIAL] = increment(lambda: sequential_dict(branches, payload),
                                         gated=False)
    tracemalloc.start()
    try:
        await interleaved(measures, 1)  # warm-up: caches filled now are not any branch's cost
        return await interleaved(measures, rounds)
    finally:
        tracemalloc.stop()
        await rt.aclose()


def _process_peak(resident: int, samples: dict[str, list[float]]) -> ScenarioResult:
    def peak(name: str) -> Quantity:
        return Quantity.median_of([resident + s for s in samples[name]], Unit.BYTES)

    return ScenarioResult(
        "memory",
        f"K={K} in flight: process peak",
        peak("cxlang"),
        (Comparison(SEQUENTIAL, peak(SEQUENTIAL),
                    target=ratio_at_most(1.10, "<= 1.10x sequential")),),
        extra={
            "fresh_process_resident_bytes": resident,
            "parallel_increment_bytes": statistics.median(samples["cxlang"]),
            "sequential_increment_bytes": statistics.median(samples[SEQUENTIAL]),
        },
    )


async def _peak_increment(run: Run, handler: _Gated, k: int, *, gated: bool) -> int:
    """Bytes the run allocates at its peak, over what was allocated just before it."""
    handler.reset(open_gate=not gated)
    gc.collect()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    task = asyncio.create_task(run())
    while handler.started < k and not task.done():
        await asyncio.sleep(0)
    handler.gate.set()
    await task
    _, peak = tracemalloc.get_traced_memory()
    return peak - base


def _fresh_process_resident_bytes() -> int | None:
    """See :data:`_PROBE`; ``None`` where neither /proc nor ``resource`` is available."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          check=False)
    return int(done.stdout) if done.returncode == 0 else None
