"""Scenario 6: CPU-bound handlers through the process pool, against the same work in process.

Eight handlers of ~0.2 s of pure-Python work each (0.05 s in ``--quick``): in one process the
GIL makes that 1.6 s whatever asyncio does; ``cpu_bound=True`` sends each to a worker process.
On two cores the target is a 1.8x speed-up. The pool is started (and this package imported by
its workers) before anything is timed, because a long-running program pays for that once.

A bare ``ProcessPoolExecutor`` running the same work tells the runtime's overhead apart from the
machine's: on a small VM two busy vCPUs often run slower each than one does alone.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from time import perf_counter

from ..runtime import Event, Runtime
from .baselines import SEQUENTIAL
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, RatioStyle, ScenarioResult, Unit, speedup_at_least
from .workloads import crunch, spin

__all__ = ["cpu"]

HANDLERS = 8
PROBE_ROUNDS = 200_000
EXECUTOR = "ProcessPoolExecutor"


def cpu(budget: Budget) -> list[ScenarioResult]:
    return [run_async(_cpu(budget, _rounds_for(budget.cpu_seconds)))]


def _rounds_for(seconds: float) -> int:
    """How many rounds of :func:`spin` take *seconds* of CPU on this machine."""
    spin(PROBE_ROUNDS)  # the first run is slower (3.11 specialises its bytecode as it goes)
    start = time.process_time()
    spin(PROBE_ROUNDS)
    return max(1, round(PROBE_ROUNDS * seconds / (time.process_time() - start)))


async def _cpu(budget: Budget, rounds: int) -> ScenarioResult:
    rt = Runtime()
    parameters = {f"w{i}": f"bench.cpu.w{i}" for i in range(HANDLERS)}
    for event in parameters.values():
        rt.on(event, crunch, cpu_bound=True)
    payload = {"rounds": rounds}
    cores: dict[str, list[float]] = {"cxlang": [], SEQUENTIAL: []}

    async def in_pool() -> float:
        start = perf_counter()
        result = await rt.parallel(parameters, payload)
        wall = perf_counter() - start
        if result.failures:
            raise RuntimeError(f"cpu_bound handlers failed: {result.failures!r}")
        cores["cxlang"].append(sum(result.payload[name]["cpu"] for name in parameters) / wall)
        return wall

    async def in_process() -> float:
        event = Event("bench.cpu", payload)
        start, cpu_start = perf_counter(), time.process_time()
        for _ in range(HANDLERS):
            crunch(event)
        wall = perf_counter() - start
        cores[SEQUENTIAL].append((time.process_time() - cpu_start) / wall)
        return wall

    executor = _executor()

    async def in_executor() -> float:
        loop = asyncio.get_running_loop()
        event = Event("bench.cpu", payload)
        start = perf_counter()
        await asyncio.gather(*[loop.run_in_executor(executor, crunch, event)
                               for _ in range(HANDLERS)])
        return perf_counter() - start

    try:
        rt.pool.warm_up_processes()
        await rt.parallel(parameters, {"rounds": 1})  # workers import this package now
        executor.submit(crunch, Event("bench.cpu", {"rounds": 1})).result()
        samples = await interleaved(
            {"cxlang": in_pool, EXECUTOR: in_executor, SEQUENTIAL: in_process},
            budget.slow_rounds,
        )
    finally:
        executor.shutdown()
        await rt.aclose()
    used = statistics.median(cores["cxlang"])
    return ScenarioResult(
        "cpu",
        f"{HANDLERS} x ~{budget.cpu_seconds:g} s CPU, process pool",
        Quantity.median_of(samples["cxlang"], Unit.SECONDS),
        (Comparison(f"{SEQUENTIAL}, in process",
                    Quantity.median_of(samples[SEQUENTIAL], Unit.SECONDS),
                    RatioStyle.FASTER, speedup_at_least(1.8)),
         Comparison(EXECUTOR, Quantity.median_of(samples[EXECUTOR], Unit.SECONDS))),
        detail=f"{used:.2f} of {os.cpu_count()} cores",
        extra={
            "cores_used": used,
            "sequential_cores_used": statistics.median(cores[SEQUENTIAL]),
            "cpu_count": float(os.cpu_count() or 1),
        },
    )


def _executor() -> ProcessPoolExecutor:
    """A bare pool like the runtime's: one worker per core, forkserver where there is one."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    executor = ProcessPoolExecutor(os.cpu_count(), mp_context=context)
    for future in [executor.submit(os.getpid) for _ in range(2 * (os.cpu_count() or 1))]:
        future.result()
    return executor
