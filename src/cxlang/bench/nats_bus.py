"""Scenario ``nats``: the bus and parallel calls over a real NATS server on loopback.

Next to the in-process figures, measured in the same run: events per second from one runtime to
another through the server (both in this process, each with its own connection, so every event
is encoded, sent, routed, received and decoded); a K=10 no-op fan-out whose handlers live in a
``cx worker`` process; and a CPU-bound fan-out (8 handlers of a CX loop) served by two worker
processes in one group (the caller hands a group's members its calls in turn), then, once one
has left, by the other alone.

FastStream (its NATS broker) is measured beside cxlang where it does the same work, written as
its documentation teaches: a subscriber function per subject, ``broker.publish`` for events and
``broker.request`` for a call, JSON bodies, on the same server. Its events go from one broker to
another in this process, as cxlang's; its K=10 fan-out is ten requests gathered, answered by a
FastStream process with a subscriber per subject. FastStream is optional (the ``bench`` extra):
without it its columns say "not installed".

Every worker process boots at the start, while the events are measured, so that start-ups
cost the run little. Skipped, with a note, when there is no ``nats-server`` binary or no NATS client
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from types import ModuleType
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
    with tempfile.TemporaryDirectory(prefix="cx-bench-nats-") as folder, \
            _server(binary, Path(folder)) as url, _Processes(Path(folder)) as processes:
        # Every process boots at once, before anything is measured. Two workers of one group
        # serve the CPU-bound handlers; the first also serves the fan-out's, so those go to it
        # alone (a caller calls the members that serve a handler).
        processes.start_worker(FANOUT_PROGRAM + CPU_PROGRAM, url)
        second = processes.start_worker(CPU_PROGRAM, url)
        # FastStream's NATS module, imported while they boot; None without FastStream.
        faststream = _import("faststream.nats")
        if faststream is not None:
            processes.start(["-c", FASTSTREAM_RESPONDER, url])
        processes.ready()
        return [run_async(_events(url, budget, faststream)),
                run_async(_fanout(url, budget, faststream)),
                run_async(_cpu(url, lambda: processes.stop(second), budget))]


async def _events(url: str, budget: Budget, faststream: ModuleType | None) -> ScenarioResult:
    events = budget.events // 10  # a network hop per event: fewer keep the run short
    receiver = Runtime(bus=url, max_queue=events)
    emitter = Runtime(bus=url, max_queue=events)
    local = Runtime(max_queue=events)
    for rt in (receiver, local):
        # Inline, as compiled CX handlers are (and as the in-process bus's target row runs).
        rt.on("bench.tick", return_at_once, inline=True)

    async def over_nats() -> float:
        handled = receiver.bus.handled + events
        start = perf_counter()
        for _ in range(events):
            emitter.emit("bench.tick", {"n": 1})
        while receiver.bus.handled < handled:
            await asyncio.sleep(0.001)
        return events / (perf_counter() - start)

    async def in_process() -> float:
        start = perf_counter()
        for _ in range(events):
            local.emit("bench.tick", {"n": 1})
        await local.run_until_idle()
        return events / (perf_counter() - start)

    async with receiver, emitter, local, _FastStreamEvents(url, faststream) as burst:
        measures: dict[str, Callable[[], Awaitable[float]]] = {"nats": over_nats,
                                                                "in process": in_process}
        if burst is not None:  # fewer: it takes ten times as long an event
            measures[FASTSTREAM] = lambda: burst(events // 5)
        samples = await interleaved(measures, budget.slow_rounds)
    return ScenarioResult(
        "nats", "bus over NATS (loopback), inline handler returns at once",
        Quantity.median_of(samples["nats"], Unit.RATE),
        (Comparison("in-process bus", Quantity.median_of(samples["in process"], Unit.RATE),
                    target=value_at_least(100_000, ">= 100,000/s")),
         Comparison(FASTSTREAM, _median(samples, FASTSTREAM, Unit.RATE),
                    target=ratio_at_least(1.0, ">= FastStream"),
                    note="" if faststream is not None else NOT_INSTALLED)),
        extra={"events": events})


class _FastStreamEvents:
    """FastStream's events from one broker to another of this process, as its docs publish
    them: each ``publish`` awaited, a subscriber function taking the decoded JSON body. Gives
    a function that times a burst of *n* events (their rate)."""

    def __init__(self, url: str, faststream: ModuleType | None) -> None:
        self.faststream = faststream
        self.brokers: list[Any] = []
        self.url = url
        self.received = 0
        self.wanted = 0
        self.done: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Callable[[int], Awaitable[float]] | None:
        if self.faststream is None:
            return None
        receiver = self.faststream.NatsBroker(self.url, log_level=logging.DEBUG)
        emitter = self.faststream.NatsBroker(self.url, log_level=logging.DEBUG)
        self.brokers = [receiver, emitter]

        @receiver.subscriber("bench.faststream.tick")  # type: ignore[untyped-decorator]
        async def tick(payload: dict[str, Any]) -> None:
            self.received += 1
            if self.received == self.wanted and self.done is not None:
                self.done.set_result(None)

        for broker in self.brokers:
            await broker.start()
        publish = emitter.publish

        async def burst(n: int) -> float:
            self.received, self.wanted = 0, n
            self.done = asyncio.get_running_loop().create_future()
            start = perf_counter()
            for _ in range(n):
                await publish({"n": 1}, "bench.faststream.tick")
            await self.done
            return n / (perf_counter() - start)

        return burst

    async def __aexit__(self, *exc: object) -> None:
        for broker in self.brokers:
            await broker.stop()


async def _fanout(url: str, budget: Budget, faststream: ModuleType | None) -> ScenarioResult:
    parameters = {f"p{i}": f"bench.fanout.p{i}" for i in range(K)}
    local = Runtime()
    for event in parameters.values():
        local.on(event, return_at_once)
    async with Runtime(bus=url) as caller:
        result = await caller.parallel(parameters, {})
        if result.failures or len(result.results) != K:
            raise RuntimeError(f"the worker did not serve every handler: {result!r}")
        calls: dict[str, Call] = {"nats": lambda: caller.parallel(parameters, {}),
                                  "in process": lambda: local.parallel(parameters, {})}
        async with _FastStreamFanout(url, faststream) as gathered:
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
                    note="" if faststream is not None else NOT_INSTALLED)))


class _FastStreamFanout:
    """A broker of this process that calls the FastStream responder process, K requests at
    once (``broker.request`` each, gathered), once it is ready."""

    def __init__(self, url: str, faststream: ModuleType | None) -> None:
        self.url = url
        self.faststream = faststream
        self.broker: Any = None

    async def __aenter__(self) -> Call | None:
        if self.faststream is None:
            return None
        self.broker = self.faststream.NatsBroker(self.url, log_level=logging.DEBUG)
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


async def _cpu(url: str, stop_second: Callable[[], None], budget: Budget) -> ScenarioResult:
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
        await _until_served(caller, parameters["w0"], 2)
        await call(caller)  # warm: each worker compiles its loop's path once
        timings["2 workers"] = [await call(caller) for _ in range(budget.slow_rounds)]
        stop_second()  # it says it leaves: the caller calls the first alone
        await _until_served(caller, parameters["w0"], 1)
        timings["1 worker"] = [await call(caller) for _ in range(budget.slow_rounds)]
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
    """Wait until *caller* knows of *members* workers serving *event*, no more, no fewer (they
    announce themselves, and that they leave)."""
    transport = caller.transport
    assert transport is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while sum(len(transport.directory.serving(event, group, 0))
              for group, _ in transport.directory.servers(event)) != members:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {members} worker(s) serving {event!r} were heard of")
        await asyncio.sleep(0.01)


def _import(name: str) -> ModuleType | None:
    """An optional module, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


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
    once, waited for until each says it is serving, stopped at the end whatever happens."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start_worker(self, source: str, url: str) -> subprocess.Popen[bytes]:
        """A ``cx worker`` of the group ``bench`` serving the CX program *source*."""
        program = self.folder / f"worker-{len(self._started)}.cx"
        program.write_text(source, encoding="utf-8")
        return self.start(["-m", "cxlang.cli.main", "worker", str(program), "--bus", url,
                           "--group", "bench"])

    def start(self, arguments: list[str]) -> subprocess.Popen[bytes]:
        """A Python process, with *arguments*."""
        log = self.folder / f"process-{len(self._started)}.log"
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, *arguments], stdout=out,
                                       stderr=subprocess.STDOUT)
        self._started.append((process, log))
        return process

    def ready(self) -> None:
        """Wait until every process serves (a cx worker writes "cx worker: ... serving ..."
        once its handlers are subscribed)."""
        deadline = time.monotonic() + READY_TIMEOUT
        for process, log in self._started:
            while "serving" not in log.read_text(encoding="utf-8"):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{process.args!r} did not start: {log.read_text()!r}")
                time.sleep(0.02)

    @staticmethod
    def stop(process: subprocess.Popen[bytes]) -> None:
        """Stop *process* now (SIGTERM: a cx worker leaves the bus)."""
        process.terminate()
        process.wait(timeout=10)

    def __enter__(self) -> _Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for process, _ in self._started:
            process.terminate()
        for process, _ in self._started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
