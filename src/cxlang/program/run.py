"""A program's lifetime: top level, ``system.start``, then run until idle, shutdown or time."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from ..compiler import CompiledProgram, compile_program
from ..runtime import Runtime
from ..runtime.distributed import BusUnavailable
from ..services import BackendSettings, BackendUnavailableError, ServiceInvoker, create_backend
from ..syntax import CxError
from .host import START, ProgramHost

__all__ = ["ExitCode", "RunOptions", "run_program", "run_source"]


class ExitCode(enum.IntEnum):
    OK = 0
    RUNTIME_ERROR = 1
    BAD_PROGRAM = 2
    TIME_LIMIT = 3


@dataclass
class RunOptions:
    backend: str = "local"
    latency: float = 0.0
    timeout: float = math.inf
    sequential: bool = False  # one parallel branch at a time: the baseline for --stats
    stats: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    settings: BackendSettings | None = None  # model, server, limits (cx run: flags, env, cx.toml)
    # A bus shared with other processes (cx run --bus, cx worker): see runtime.distributed.
    bus: str | None = None
    group: str | None = None
    durable: bool = False
    ack_wait: float = 30.0
    serve: bool = False  # keep serving after the program goes idle, until shutdown or a signal
    worker: bool = False  # cx worker: serve, and no system.start


async def run_program(program: CompiledProgram, options: RunOptions) -> ExitCode:
    try:
        backend = create_backend(options.backend, latency=options.latency,
                                 settings=options.settings)
    except BackendUnavailableError as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    try:
        runtime = Runtime(bus=options.bus, group=options.group, durable=options.durable,
                          ack_wait=options.ack_wait)
    except BusUnavailable as exc:
        options.err.write(f"cx: {exc}\n")
        await backend.aclose()
        return ExitCode.BAD_PROGRAM
    services = ServiceInvoker(runtime, backend, max_concurrency=1 if options.sequential else None)
    host = ProgramHost(program, runtime, services, options.out, options.err)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(None if math.isinf(options.timeout) else options.timeout):
            await runtime.connect()
            await host.run_top_level()
            if options.worker:
                await _report_ready(runtime, program, options)
            elif not host.started:
                runtime.emit(START, {})
            serving = options.serve or options.worker
            idle = asyncio.ensure_future(_signalled() if serving else host.until_idle())
            await asyncio.wait([idle, host.shutdown], return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()
    except BusUnavailable as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    except TimeoutError:
        running = ", ".join(host.still_running()) or "nothing (the queue was still full)"
        options.err.write(f"{program.source.name}: time limit of {options.timeout:g} s reached; "
                          f"still running: {running}\n")
        return ExitCode.TIME_LIMIT
    finally:
        for call in list(host.calls):
            call.cancel()
        await runtime.aclose()
        await backend.aclose()
        options.out.flush()
        if options.stats:
            mode = "sequential" if options.sequential else "parallel"
            elapsed = (time.perf_counter() - started) * 1000
            options.err.write(f"cx: {program.source.name} ran in {elapsed:.1f} ms ({mode}, "
                              f"{runtime.bus.handled} events)\n")
    return ExitCode.RUNTIME_ERROR if host.errors else ExitCode.OK


async def _report_ready(runtime: Runtime, program: CompiledProgram, options: RunOptions) -> None:
    """Say on stderr that the worker is serving (scripts and tests wait for this line)."""
    transport = runtime.transport
    if transport is None:
        return
    await transport.settle()
    patterns = ", ".join(dict.fromkeys(s.pattern.text for s in runtime.bus.subscriptions
                                       if not s.pattern.text.startswith("system."))) or "nothing"
    options.err.write(f"cx worker: {program.source.name} serving {patterns} as group "
                      f"{transport.group} on {options.bus}\n")
    options.err.flush()


async def _signalled() -> None:
    """Serve until SIGINT or SIGTERM (a worker, or cx run --serve); either ends it cleanly."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stop_now() -> None:
        if not stop.done():
            stop.set_result(None)

    # Only the main thread gets signals; elsewhere system.shutdown or the time limit ends it.
    signals = (signal.SIGINT, signal.SIGTERM) \
        if threading.current_thread() is threading.main_thread() else ()
    for number in signals:
        loop.add_signal_handler(number, stop_now)
    try:
        await stop
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def run_source(text: str, filename: str, options: RunOptions) -> ExitCode:
    """Compile and run; a bad program prints its diagnostics and gives exit code 2."""
    try:
        program = compile_program(text, filename)
    except CxError as exc:
        options.err.write(exc.render() + "\n")
        return ExitCode.BAD_PROGRAM
    try:
        with _hard_deadline(options.timeout + _GRACE):
            return asyncio.run(run_program(program, options))
    except _TimeLimit:
        options.err.write(f"{filename}: time limit of {options.timeout:g} s reached while the "
                          "program was computing without pause (a loop that never waits?)\n")
        return ExitCode.TIME_LIMIT


_GRACE = 0.25  # the event loop's own timeout gets the first chance to end a run cleanly


class _TimeLimit(BaseException):
    """Raised by the alarm into code that never gives the event loop a chance to time out."""


@contextlib.contextmanager
def _hard_deadline(seconds: float) -> Iterator[None]:
    """A busy loop (``while (true) {}``) never yields to asyncio, so its timeout cannot fire;
    a real-time alarm interrupts it instead. Only the main thread can receive signals."""
    usable = (math.isfinite(seconds) and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def alarm(signum: int, frame: object) -> None:
        raise _TimeLimit

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
