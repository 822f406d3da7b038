"""A program's lifetime: top level, ``system.start``, then run until idle, shutdown or time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ..compiler import CompiledProgram
from ..runtime import Runtime
from ..runtime.distributed import BusUnavailable
from ..runtime.distributed.credentials import FileCredentials
from ..runtime.limits import LimitExceeded
from ..services import BackendSettings, BackendUnavailableError, ServiceInvoker, create_backend
from ..services.metered import MeteredBackend
from ..services.usage import UsageMeter
from ..syntax import CxError
from .checks import compile_checked
from .event_loop import LoopChoice, LoopUnavailableError, loop_factory
from .exit_codes import ExitCode
from .host import START, ProgramHost
from .interrupts import Interrupts, MemoryLimitReached, RunInterrupted, TimeLimitReached
from .observation import ObservationError, RunObservation
from .out_of_memory import OutOfMemory, is_out_of_memory, out_of_memory
from .watchdog import MemoryWatchdog, default_max_memory

__all__ = ["DEFAULT_MAX_CALLS", "DEFAULT_MAX_DEPTH", "DEFAULT_MAX_EVENTS", "DEFAULT_MAX_PAYLOAD",
           "ExitCode",
           "RunOptions", "run_program", "run_source"]

# Limits of a run (None: no limit); docs/reliability.md says how they were chosen.
DEFAULT_MAX_EVENTS = 1_000_000  # a one-shot program that handles more is almost surely a loop
DEFAULT_MAX_DEPTH = 10_000  # causal hops: a pipeline is tens deep, a self-emitting loop endless
DEFAULT_MAX_PAYLOAD = 10_000_000  # bytes in one string, array or event payload
# Service calls in flight at once: a program whose handlers call services whose parameters
# call those handlers again fans out exponentially, each call a task and its payloads.
DEFAULT_MAX_CALLS = 10_000
LIMIT_FLAGS = {"event": "--max-events", "depth": "--max-depth", "payload": "--max-payload",
               "memory": "--max-memory", "calls": "--max-calls", "tokens": "--token-budget"}


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
    bus_credentials: FileCredentials | None = None  # cx.toml's [bus] table
    group: str | None = None
    durable: bool = False
    ack_wait: float = 30.0
    serve: bool = False  # keep serving after the program goes idle, until shutdown or a signal
    worker: bool = False  # cx worker: serve, and no system.start
    max_events: int | None = DEFAULT_MAX_EVENTS
    max_depth: int | None = DEFAULT_MAX_DEPTH
    max_payload: int | None = DEFAULT_MAX_PAYLOAD
    max_calls: int | None = DEFAULT_MAX_CALLS
    max_memory: int | None = field(default_factory=default_max_memory)
    trace: str | None = None  # --trace FILE: a Chrome trace of the run (Perfetto)
    progress: bool = False  # the live status line (cx run on a terminal, not --quiet)
    loop: LoopChoice = "asyncio"  # cx run: auto (uvloop when installed)
    # cx run: a run that a limit stopped ends the process at once, its output flushed and its
    # trace written: cancelling what it left (a fan-out leaves millions of tasks) could take
    # longer than the run, and memory it no longer has.
    exit_when_stopped: bool = False
    allow_execute: bool = False  # cx run --allow-execute: `execute` may run commands
    stats_json: str | None = None  # --stats-json FILE: the statistics, models' usage included
    token_budget: int | None = None  # tokens the run's models may use (None: settings' own)
    record: str | None = None  # --record FILE: every model call and its answer, written down
    replay: str | None = None  # --replay FILE: model calls answered from such a file
    cache: str | None = None  # --cache DIR: identical model calls answered across runs


async def run_program(program: CompiledProgram, options: RunOptions,
                      interrupts: Interrupts | None = None) -> ExitCode:
    """Run *program* on the running loop; *interrupts* (installed by :func:`run_source` on the
    main thread) stop it even if its code never lets the loop run."""
    try:
        observation = RunObservation(program.source.name, options.out, trace=options.trace,
                                     progress=options.progress)
    except ObservationError as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    settings = options.settings or BackendSettings(backend=options.backend)
    budget = settings.token_budget if options.token_budget is None else options.token_budget
    meter = UsageMeter(settings.prices, budget or None)
    try:
        backend = MeteredBackend(
            create_backend(options.backend, latency=options.latency, settings=options.settings,
                           record=options.record, replay=options.replay,
                           cache=options.cache),
            meter, hint="--token-budget")
    except BackendUnavailableError as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    try:
        runtime = Runtime(bus=options.bus, group=options.group, durable=options.durable,
                          ack_wait=options.ack_wait, bus_credentials=options.bus_credentials,
                          max_events=options.max_events, max_depth=options.max_depth,
                          trace=observation.sinks or None)
    except BusUnavailable as exc:
        options.err.write(f"cx: {exc}\n")
        await backend.aclose()
        return ExitCode.BAD_PROGRAM
    meter.spent = lambda total: runtime.bus.trip(LimitExceeded(
        "tokens", f"the models used {total:,} tokens; the budget is {budget:,}",
        budget or 0, "--token-budget"))
    services = ServiceInvoker(runtime, backend, max_concurrency=1 if options.sequential else None,
                              allow_execute=options.allow_execute)
    host = ProgramHost(program, runtime, services, observation.out, options.err,
                       max_payload=options.max_payload, max_calls=options.max_calls)
    memory = OutOfMemory()
    memory.namespace = host.namespace
    loop = asyncio.get_running_loop()
    loop_errors = loop.get_exception_handler()
    loop.set_exception_handler(
        lambda loop, context: _loop_error(loop, context, memory, runtime, loop_errors))
    started = time.perf_counter()
    timed_out = False
    watchdog = _watchdog(options, runtime, interrupts)
    observation.start(runtime)
    armed = interrupts.armed(host, options.timeout) if interrupts is not None \
        else contextlib.nullcontext()
    try:
        with armed:
            async with asyncio.timeout(None if math.isinf(options.timeout) else options.timeout):
                await runtime.connect()
                await host.run_top_level()
                if not host.halted.done():
                    if options.worker:
                        await _report_ready(runtime, program, options)
                    elif not host.started:  # waiting for room: the top level may fill the queue
                        await runtime.emit_async(START, {})
                    serving = options.serve or options.worker
                    idle = asyncio.ensure_future(_signalled() if serving else host.until_idle())
                    await asyncio.wait([idle, host.shutdown, host.halted],
                                       return_when=asyncio.FIRST_COMPLETED)
                    idle.cancel()
    except LimitExceeded:
        pass  # reported below, from the bus, which the first limit reached tripped
    except MemoryError as exc:  # out even of the memory to report it where it struck
        memory.release(exc)
        runtime.bus.trip(out_of_memory())
    except BusUnavailable as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    except TimeoutError:
        timed_out = True
        if interrupts is None or interrupts.stopped is None:  # else run_source reports it
            _report_time_limit(program.source.name, options, host.still_running())
        return ExitCode.TIME_LIMIT
    finally:
        host.over = True  # what fails from here on fails because the run is being torn down
        if watchdog is not None:
            watchdog.stop()
        stop = interrupts.stopped if interrupts is not None else None
        if options.exit_when_stopped and (timed_out or stop or runtime.bus.tripped):
            code = ExitCode.TIME_LIMIT if timed_out else ExitCode.LIMIT
            if stop is not None:  # interrupted in this task: run_source will not hear of it
                code = _report_stop(stop, program.source.name, options)
            elif not timed_out and runtime.bus.tripped is not None:
                _report_limit(runtime.bus.tripped, program.source.name, options)
            host.halt()
            observation.stop()
            if runtime.observer is not None:
                runtime.observer.close()  # the trace file
            _statistics(program, options, runtime, meter, started)
            _exit_now(code, options)
        for call in list(host.calls):
            call.cancel()
        observation.stop()
        await runtime.aclose()
        await backend.aclose()
        if not memory.ran_out:  # else tasks that ran out may still be collected: stay quiet
            loop.set_exception_handler(loop_errors)
        memory.close()
        options.out.flush()
        _statistics(program, options, runtime, meter, started)
    if runtime.bus.tripped is not None:
        _report_limit(runtime.bus.tripped, program.source.name, options)
        return ExitCode.LIMIT
    return ExitCode.RUNTIME_ERROR if host.errors else ExitCode.OK


def _statistics(program: CompiledProgram, options: RunOptions, runtime: Runtime,
                meter: UsageMeter, started: float) -> None:
    """``--stats`` on standard error, ``--stats-json`` to its file."""
    if not (options.stats or options.stats_json):
        return
    mode = "sequential" if options.sequential else "parallel"
    elapsed = (time.perf_counter() - started) * 1000
    kind = type(asyncio.get_running_loop()).__module__.split(".")[0]
    if options.stats:
        options.err.write(f"cx: {program.source.name} ran in {elapsed:.1f} ms ({mode}, "
                          f"{runtime.bus.handled} events, {kind} loop)\n")
        for line in meter.lines():
            options.err.write(f"cx: {line}\n")
    if options.stats_json:
        statistics = {"program": program.source.name, "elapsed_ms": round(elapsed, 3),
                      "mode": mode, "events": runtime.bus.handled, "loop": kind,
                      "tokens": meter.total, "models": meter.as_data()}
        try:
            Path(options.stats_json).write_text(json.dumps(statistics, indent=2) + "\n",
                                                encoding="utf-8")
        except OSError as exc:
            options.err.write(f"cx: cannot write --stats-json {options.stats_json}: "
                              f"{exc.strerror or exc}\n")


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any], memory: OutOfMemory,
                runtime: Runtime, previous: Any) -> None:
    """The event loop's exception handler during a run: a task or callback that ran out of
    memory stops the run on the memory limit (reported once, as any limit), never a log of
    "exception was never retrieved"; anything else is reported as before."""
    exc = context.get("exception")
    if is_out_of_memory(exc):
        memory.release(exc)
        runtime.bus.trip(out_of_memory())
    elif previous is not None:
        previous(loop, context)
    else:
        loop.default_exception_handler(context)


def _exit_now(code: ExitCode, options: RunOptions) -> NoReturn:
    """End the process with *code*, its output flushed, leaving what is still running as it
    is (:attr:`RunOptions.exit_when_stopped`)."""
    for stream in (options.out, options.err, sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _report_stop(stop: RunInterrupted, name: str, options: RunOptions) -> ExitCode:
    """Report a run the interrupts stopped; its exit code."""
    if isinstance(stop, MemoryLimitReached):
        _report_limit(stop.limit, name, options)
        return ExitCode.LIMIT
    assert isinstance(stop, TimeLimitReached)  # the only other way a run is stopped
    _report_time_limit(name, options, stop.running)
    return ExitCode.TIME_LIMIT


def _report_time_limit(name: str, options: RunOptions, running: list[str]) -> None:
    what = ", ".join(running) or "nothing (the program was waiting for events)"
    options.err.write(f"{name}: time limit of {options.timeout:g} s reached; still running: "
                      f"{what}\n")


def _report_limit(exc: LimitExceeded, name: str, options: RunOptions) -> None:
    # A limit of 0 is no configured one (the stack, the machine): its own hint says what to do.
    flag = LIMIT_FLAGS.get(exc.kind)
    hint = f"{flag} (0: no limit)" if exc.limit and flag else None
    if exc.kind == "queue":  # no flag: the bound that helps is a fan-out that ends
        exc = LimitExceeded("queue", exc.detail, 0, "bound the program's fan-out")
    options.err.write(f"{name}: {exc.again(hint)}\n")


def _watchdog(options: RunOptions, runtime: Runtime,
              interrupts: Interrupts | None) -> MemoryWatchdog | None:
    """The memory watchdog of this run, started; None without a memory limit."""
    if not options.max_memory:
        return None
    interrupt = interrupts.memory if interrupts is not None and interrupts.installed else None
    watchdog = MemoryWatchdog(options.max_memory, asyncio.get_running_loop(), runtime.bus.trip,
                              interrupt, hint="--max-memory")
    watchdog.start()
    return watchdog


async def _report_ready(runtime: Runtime, program: CompiledProgram, options: RunOptions) -> None:
    """Say on stderr that the worker is serving (scripts and tests wait for this line)."""
    transport = runtime.transport
    if transport is None:
        return
    await transport.settle()
    patterns = ", ".join(dict.fromkeys(s.pattern.text for s in runtime.bus.subscriptions
                                       if not s.pattern.text.startswith("system."))) or "nothing"
    options.err.write(f"cx worker: {program.source.name} serving {patterns} as group "
                      f"{transport.group} on {transport.shown_url}\n")
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
        program, warnings = compile_checked(text, filename)
    except CxError as exc:
        options.err.write(exc.render() + "\n")
        return ExitCode.BAD_PROGRAM
    for warning in warnings:
        options.err.write(warning.render() + "\n")
    try:
        factory = loop_factory(options.loop)
    except LoopUnavailableError as exc:
        options.err.write(f"cx: {exc}\n")
        return ExitCode.BAD_PROGRAM
    interrupts = Interrupts()
    try:
        with interrupts.install(), asyncio.Runner(loop_factory=factory) as runner:
            try:
                code = runner.run(run_program(program, options, interrupts))
            except (RunInterrupted, RuntimeError, asyncio.CancelledError):
                # Interrupted; or, the loop stopped after a turn, "stopped before the future
                # completed" (or, on uvloop, after the cancelled main task ended): same report.
                if interrupts.stopped is None:
                    raise
            else:
                if interrupts.stopped is None:
                    return code
            code = _report_stop(interrupts.stopped, filename, options)
            if options.exit_when_stopped:
                _exit_now(code, options)
            _wind_down(runner.get_loop())
            return code
    except MemoryError as exc:  # out of memory while ending the run: what it held is gone now
        traceback.clear_frames(exc.__traceback__)
        _report_limit(out_of_memory(), filename, options)
        return ExitCode.LIMIT


_WIND_DOWN = 5.0  # seconds for a stopped run's cancelled tasks to end (they take milliseconds)


def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Let the tasks of a run that was stopped end (the stop cancelled them all), so that the
    program's own teardown runs: output flushed, trace written, connections closed. One that
    does not end in time has its coroutine closed, so that closing the loop cannot hang on it
    (and no coroutine is left unawaited)."""
    tasks = asyncio.all_tasks(loop)
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=_WIND_DOWN))
    for task in asyncio.all_tasks(loop):
        coro = task.get_coro()
        if coro is not None:
            with contextlib.suppress(RuntimeError):  # one that awaits as it is closed
                coro.close()
