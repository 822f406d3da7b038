"""Scenario ``nats``: the bus and parallel calls over a real NATS server on loopback.

Next to the in-process figures, measured in the same run: events per second from one runtime to
another through the server (both in this process, each with its own connection, so every event
is encoded, sent, routed, received and decoded); a K=10 no-op fan-out whose handlers live in a
``cx worker`` process; and a CPU-bound fan-out (8 handlers of a CX loop) served by one worker
process, then by two in one group (the caller hands a group's members its calls in turn).

Skipped, with a note, when there is no ``nats-server`` binary or no NATS client (``cxlang[nats]``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

from ..runtime import Runtime
from .measure import Budget, interleaved, per_call_samples, run_async
from .model import Comparison, Quantity, RatioStyle, ScenarioResult, Unit
from .workloads import return_at_once

__all__ = ["nats_bus"]

K = 10
CPU_HANDLERS = 8
CPU_ROUNDS = 250_000  # iterations of the CX loop below: about 0.1 s each on these machines
READY_TIMEOUT = 30.0

FANOUT_PROGRAM = "\n".join(f"on bench.fanout.p{i} (e) {{ return 1; }}" for i in range(K))
CPU_PROGRAM = """
on bench.cpu.any (e) {
    var i = 0; var x = 1;
    while (i < e.rounds) { x = (x * 1103 + 12345) % 2147483647; i += 1; }
    return x;
}
"""


def nats_bus(budget: Budget) -> list[ScenarioResult]:
    binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    if binary is None or importlib.util.find_spec("nats") is None:
        missing = "no nats-server binary" if binary is None else "no NATS client (cxlang[nats])"
        print(f"nats: skipped: {missing}", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="cx-bench-nats-") as folder, \
            _server(binary, Path(folder)) as url:
        return [run_async(_events(url, budget)),
                run_async(_fanout(url, Path(folder), budget)),
                run_async(_cpu(url, Path(folder), budget))]


async def _events(url: str, budget: Budget) -> ScenarioResult:
    events = budget.events // 10  # a network hop per event: fewer keep the run short

    async def over_nats() -> float:
        receiver = Runtime(bus=url, max_queue=events)
        emitter = Runtime(bus=url, max_queue=events)
        receiver.on("bench.tick", return_at_once)
        try:
            await receiver.connect()
            await emitter.connect()
            start = perf_counter()
            for _ in range(events):
                emitter.emit("bench.tick", {"n": 1})
            while receiver.bus.handled < events:
                await asyncio.sleep(0.001)
            return events / (perf_counter() - start)
        finally:
            await emitter.aclose()
            await receiver.aclose()

    async def in_process() -> float:
        rt = Runtime(max_queue=events)
        rt.on("bench.tick", return_at_once)
        try:
            start = perf_counter()
            for _ in range(events):
                rt.emit("bench.tick", {"n": 1})
            await rt.run_until_idle()
            return events / (perf_counter() - start)
        finally:
            await rt.aclose()

    samples = await interleaved({"nats": over_nats, "in process": in_process},
                                budget.slow_rounds)
    return ScenarioResult(
        "nats", "bus over NATS (loopback), handler returns at once",
        Quantity.median_of(samples["nats"], Unit.RATE),
        (Comparison("in-process bus", Quantity.median_of(samples["in process"], Unit.RATE)),),
        extra={"events": events})


async def _fanout(url: str, folder: Path, budget: Budget) -> ScenarioResult:
    parameters = {f"p{i}": f"bench.fanout.p{i}" for i in range(K)}
    local = Runtime()
    for event in parameters.values():
        local.on(event, return_at_once)
    with _workers(folder, "fanout", FANOUT_PROGRAM, url, 1):
        async with Runtime(bus=url) as caller:
            result = await caller.parallel(parameters, {})
            if result.failures or len(result.results) != K:
                raise RuntimeError(f"the worker did not serve every handler: {result!r}")
            samples = await per_call_samples(
                {"nats": lambda: caller.parallel(parameters, {}),
                 "in process": lambda: local.parallel(parameters, {})},
                budget.rounds, budget.min_batch)
    await local.aclose()
    return ScenarioResult(
        "nats", f"K={K} no-op fan-out, handlers in a worker process",
        Quantity.median_of(samples["nats"], Unit.SECONDS),
        (Comparison("in-process handlers", Quantity.median_of(samples["in process"],
                                                               Unit.SECONDS)),))


async def _cpu(url: str, folder: Path, budget: Budget) -> ScenarioResult:
    parameters = {f"w{i}": f"bench.cpu.w{i}" for i in range(CPU_HANDLERS)}
    payload = {"rounds": CPU_ROUNDS}
    timings: dict[str, list[float]] = {}

    async def call(caller: Runtime) -> float:
        start = perf_counter()
        result = await caller.parallel(parameters, payload, timeout=120)
        if result.failures:
            raise RuntimeError(f"CPU-bound handlers failed: {result.failures!r}")
        return perf_counter() - start

    async with Runtime(bus=url) as caller:
        with _workers(folder, "cpu", CPU_PROGRAM, url, 1) as start_more:
            await asyncio.sleep(0.2)  # the worker's announcement reaches the caller
            await call(caller)  # warm: the worker compiles its loop's path once
            timings["1 worker"] = [await call(caller) for _ in range(budget.slow_rounds)]
            start_more(1)
            await asyncio.sleep(0.2)  # its subscriptions reach the server
            timings["2 workers"] = [await call(caller) for _ in range(budget.slow_rounds)]
    return ScenarioResult(
        "nats", f"{CPU_HANDLERS} x ~0.1 s CPU (CX loop), 2 worker processes",
        Quantity.median_of(timings["2 workers"], Unit.SECONDS),
        (Comparison("1 worker process", Quantity.median_of(timings["1 worker"], Unit.SECONDS),
                    RatioStyle.FASTER),),
        extra={"worst_2_workers": max(timings["2 workers"]),
               "best_2_workers": min(timings["2 workers"]),
               "median_1_worker": statistics.median(timings["1 worker"])})


@contextmanager
def _server(binary: str, folder: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                               str(folder / "jetstream")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def _workers(
    folder: Path, name: str, source: str, url: str, count: int
) -> Iterator[Callable[[int], None]]:
    """``cx worker`` processes of one group, each ready (serving) before this yields."""
    program = folder / f"{name}.cx"
    program.write_text(source, encoding="utf-8")
    started: list[subprocess.Popen[bytes]] = []

    def start(more: int) -> None:
        for _ in range(more):
            log = folder / f"{name}-worker-{len(started)}.log"
            with log.open("w") as err:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "cxlang.cli.main", "worker", str(program), "--bus",
                     url, "--group", f"bench-{name}"],
                    stdout=subprocess.DEVNULL, stderr=err)
            started.append(worker)
            deadline = time.monotonic() + READY_TIMEOUT
            # It writes "cx worker: ... serving ..." once its handlers are subscribed.
            while "serving" not in log.read_text(encoding="utf-8"):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"cx worker did not start: {log.read_text()!r}")
                time.sleep(0.02)

    try:
        start(count)
        yield start
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)

