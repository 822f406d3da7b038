"""Scenario ``nats``: the bus and parallel calls over a real NATS server on loopback.

Next to the in-process figures, measured in the same run: events per second from one runtime to
another through the server (both in this process, each with its own connection, so every event
is encoded, sent, routed, received and decoded); a K=10 no-op fan-out whose handlers live in a
``cx worker`` process; and a CPU-bound fan-out (8 handlers of a CX loop) served by one worker
process, then by two in one group (the caller hands a group's members its calls in turn).

FastStream (its NATS broker) is measured beside cxlang where it does the same work, written as
its documentation teaches: a subscriber function per subject, ``broker.publish`` for events and
``broker.request`` for a call, JSON bodies, on the same server. Its events go from one broker to
another in this process, as cxlang's; its K=10 fan-out is ten requests gathered, answered by a
FastStream process with a subscriber per subject. FastStream is optional (the ``bench`` extra):
without it its columns say "not installed".

The worker processes boot while the events are measured, so that their start-up costs the run
little. Skipped, with a note, when there is no ``nats-server`` binary or no NATS client
(``cxlang[nats]``).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from ..runtime import Runtime
from .measure import FULL, Budget, Call, interleaved, per_call_samples, run_async
from .model import (
    Comparison,
    Quantity,
    RatioStyle,
    ScenarioResult,
    Unit,
    ratio_at_least,
    value_at_least,
    value_below,
)
from .workloads import return_at_once

__all__ = ["nats_bus"]

K = 10
CPU_HANDLERS = 8
CPU_ROUNDS = 250_000  # iterations of the CX loop below: about 0.1 s on these machines (full run)
READY_TIMEOUT = 30.0
FASTSTREAM = "FastStream NatsBroker"
NOT_INSTALLED = "not installed"

FANOUT_PROGRAM = "\n".join(f"on bench.fanout.p{i} (e) {{ return 1; }}" for i in range(K))
CPU_PROGRAM = """
on bench.cpu.any (e) {
    var i = 0; var x = 1;
    while (i < e.rounds) { x = (x * 1103 + 12345) % 2147483647; i += 1; }
    return x;
}
"""
# FastStream's side of the fan-out: a subscriber per subject that answers each request, in a
# process of its own like the cx worker. Service messages at DEBUG: not one log line a message.
FASTSTREAM_RESPONDER = f"""
import asyncio, logging, sys
from faststream.nats import NatsBroker

broker = NatsBroker(sys.argv[1], log_level=logging.DEBUG)
for i in range({K}):
    @broker.subscriber(f"bench.faststream.p{{i}}")
    async def handler(payload: dict) -> int:
        return 1

async def main() -> None:
    await broker.start()
    print("serving", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def nats_bus(budget: Budget) -> list[ScenarioResult]:
    binary = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")
    if binary is None or importlib.util.find_spec("nats") is None:
        missing = "no nats-server binary" if binary is None else "no NATS client (cxlang[nats])"
        print(f"nats: skipped: {missing}", file=sys.stderr)
        return []
    faststream = importlib.util.find_spec("faststream") is not None
    with tempfile.TemporaryDirectory(prefix="cx-bench-nats-") as folder, \
            _server(binary, Path(folder)) as url, _Processes(Path(folder)) as processes:
        # Booting while the events are measured (those are measured in this process alone).
        processes.start_worker("fanout", FANOUT_PROGRAM, url)
        processes.start_worker("cpu", CPU_PROGRAM, url)
        if faststream:
            processes.start("faststream", ["-c", FASTSTREAM_RESPONDER, url])
        return [run_async(_events(url, budget, faststream)),
                run_async(_fanout(url, processes, budget, faststream)),
                run_async(_cpu(url, processes, budget))]


async def _events(url: str, budget: Budget, faststream: bool) -> ScenarioResult:
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

    measures = {"nats": over_nats, "in process": in_process}
    if faststream:
        measures[FASTSTREAM] = lambda: _faststream_events(url, events)
    samples = await interleaved(measures, budget.slow_rounds)
    return ScenarioResult(
        "nats", "bus over NATS (loopback), handler returns at once",
        Quantity.median_of(samples["nats"], Unit.RATE),
        (Comparison("in-process bus", Quantity.median_of(samples["in process"], Unit.RATE),
                    target=value_at_least(100_000, ">= 100,000/s")),
         Comparison(FASTSTREAM, _median(samples, FASTSTREAM, Unit.RATE),
                    target=ratio_at_least(1.0, ">= FastStream"),
                    note="" if faststream else NOT_INSTALLED)),
        extra={"events": events})


async def _faststream_events(url: str, events: int) -> float:
    """FastStream's events per second from one broker to another, as its docs publish: each
    ``publish`` awaited, a subscriber function taking the decoded JSON body."""
    brokers = importlib.import_module("faststream.nats")
    receiver = brokers.NatsBroker(url, log_level=logging.DEBUG)
    emitter = brokers.NatsBroker(url, log_level=logging.DEBUG)
    received = 0
    done = asyncio.get_running_loop().create_future()

    @receiver.subscriber("bench.faststream.tick")  # type: ignore[untyped-decorator]
    async def tick(payload: dict[str, Any]) -> None:
        nonlocal received
        received += 1
        if received == events:
            done.set_result(None)

    await receiver.start()
    await emitter.start()
    try:
        start = perf_counter()
        for _ in range(events):
            await emitter.publish({"n": 1}, "bench.faststream.tick")
        await done
        return events / (perf_counter() - start)
    finally:
        await emitter.stop()
        await receiver.stop()


async def _fanout(url: str, processes: _Processes, budget: Budget,
                  faststream: bool) -> ScenarioResult:
    parameters = {f"p{i}": f"bench.fanout.p{i}" for i in range(K)}
    local = Runtime()
    for event in parameters.values():
        local.on(event, return_at_once)
    processes.ready("fanout")
    async with Runtime(bus=url) as caller:
        result = await caller.parallel(parameters, {})
        if result.failures or len(result.results) != K:
            raise RuntimeError(f"the worker did not serve every handler: {result!r}")
        calls: dict[str, Call] = {"nats": lambda: caller.parallel(parameters, {}),
                                  "in process": lambda: local.parallel(parameters, {})}
        async with _FastStreamFanout(url, processes, faststream) as gathered:
            if gathered is not None:
                calls[FASTSTREAM] = gathered
            samples = await per_call_samples(calls, budget.rounds, budget.min_batch)
    await local.aclose()
    return ScenarioResult(
        "nats", f"K={K} no-op fan-out, handlers in a worker process",
        Quantity.median_of(samples["nats"], Unit.SECONDS),
        (Comparison("in-process handlers", Quantity.median_of(samples["in process"],
                                                               Unit.SECONDS),
                    target=value_below(0.001, "< 1 ms")),
         Comparison(f"{FASTSTREAM}, {K} requests gathered",
                    _median(samples, FASTSTREAM, Unit.SECONDS), RatioStyle.FASTER,
                    note="" if faststream else NOT_INSTALLED)))


class _FastStreamFanout:
    """A broker of this process that calls the FastStream responder process, K requests at
    once (``broker.request`` each, gathered), once it is ready."""

    def __init__(self, url: str, processes: _Processes, enabled: bool) -> None:
        self.url = url
        self.processes = processes
        self.enabled = enabled
        self.broker: Any = None

    async def __aenter__(self) -> Call | None:
        if not self.enabled:
            return None
        self.processes.ready("faststream")
        self.broker = importlib.import_module("faststream.nats").NatsBroker(
            self.url, log_level=logging.DEBUG)
        await self.broker.start()
        request = self.broker.request
        subjects = [f"bench.faststream.p{i}" for i in range(K)]

        async def gathered() -> list[Any]:
            replies = await asyncio.gather(*(request({}, subject) for subject in subjects))
            return [await reply.decode() for reply in replies]

        if await gathered() != [1] * K:
            raise RuntimeError("the FastStream responder did not answer every request")
        return gathered

    async def __aexit__(self, *exc: object) -> None:
        if self.broker is not None:
            await self.broker.stop()


async def _cpu(url: str, processes: _Processes, budget: Budget) -> ScenarioResult:
    parameters = {f"w{i}": f"bench.cpu.w{i}" for i in range(CPU_HANDLERS)}
    # The quick run's handlers are shorter: the ratio of one worker to two is what is read.
    rounds = CPU_ROUNDS * budget.slow_rounds // FULL.slow_rounds
    payload = {"rounds": rounds}
    timings: dict[str, list[float]] = {}

    async def call(caller: Runtime) -> float:
        start = perf_counter()
        result = await caller.parallel(parameters, payload, timeout=120)
        if result.failures:
            raise RuntimeError(f"CPU-bound handlers failed: {result.failures!r}")
        return perf_counter() - start

    async with Runtime(bus=url) as caller:
        processes.ready("cpu")
        await _until_served(caller, parameters["w0"], 1)
        await call(caller)  # warm: the worker compiles its loop's path once
        timings["1 worker"] = [await call(caller) for _ in range(budget.slow_rounds)]
        processes.start_worker("cpu", CPU_PROGRAM, url)
        processes.ready("cpu")
        await _until_served(caller, parameters["w0"], 2)
        await call(caller)  # warm the second worker too
        timings["2 workers"] = [await call(caller) for _ in range(budget.slow_rounds)]
    return ScenarioResult(
        "nats", f"{CPU_HANDLERS} CPU-bound handlers (CX loop), 2 worker processes",
        Quantity.median_of(timings["2 workers"], Unit.SECONDS),
        (Comparison("1 worker process", Quantity.median_of(timings["1 worker"], Unit.SECONDS),
                    RatioStyle.FASTER),),
        detail=f"~{0.1 * rounds / CPU_ROUNDS:.2g} s each",
        extra={"worst_2_workers": max(timings["2 workers"]),
               "best_2_workers": min(timings["2 workers"]),
               "median_1_worker": statistics.median(timings["1 worker"])})


async def _until_served(caller: Runtime, event: str, members: int) -> None:
    """Wait until *caller* has heard of *members* workers serving *event* (announcements)."""
    transport = caller.transport
    assert transport is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while sum(len(transport.directory.serving(event, group, 0))
              for group, _ in transport.directory.servers(event)) < members:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {members} worker(s) serving {event!r} were heard of")
        await asyncio.sleep(0.01)


def _median(samples: dict[str, list[float]], name: str, unit: Unit) -> Quantity | None:
    return Quantity.median_of(samples[name], unit) if name in samples else None


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


class _Processes:
    """The processes that serve calls (``cx worker``, FastStream's responder): started at
    once, waited for (until each says it is serving) only where they are needed, stopped at
    the end whatever happens."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._started: dict[str, list[tuple[subprocess.Popen[bytes], Path]]] = {}

    def start_worker(self, name: str, source: str, url: str) -> None:
        """A ``cx worker`` of the group ``bench-<name>`` serving the CX program *source*."""
        program = self.folder / f"{name}.cx"
        program.write_text(source, encoding="utf-8")
        self.start(name, ["-m", "cxlang.cli.main", "worker", str(program), "--bus", url,
                          "--group", f"bench-{name}"])

    def start(self, name: str, arguments: list[str]) -> None:
        started = self._started.setdefault(name, [])
        log = self.folder / f"{name}-{len(started)}.log"
        with log.open("w") as out:
            started.append((subprocess.Popen([sys.executable, *arguments], stdout=out,
                                             stderr=subprocess.STDOUT), log))

    def ready(self, name: str) -> None:
        """Wait until every process started as *name* serves (a cx worker writes "cx worker:
        ... serving ..." once its handlers are subscribed)."""
        deadline = time.monotonic() + READY_TIMEOUT
        for process, log in self._started[name]:
            while "serving" not in log.read_text(encoding="utf-8"):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{name} did not start: {log.read_text()!r}")
                time.sleep(0.02)

    def __enter__(self) -> _Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        processes = [process for started in self._started.values() for process, _ in started]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

