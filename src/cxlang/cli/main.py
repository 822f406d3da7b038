"""``cx``: run CX programs, check them, benchmark the runtime.

Exit codes: 0 a clean run; 1 a run-time error in the program (reported with its position);
2 a bad program or bad command line; 3 the run's time limit was hit; 4 a run limit was hit
(--max-events, --max-depth, --max-payload, --max-memory, --max-calls, --token-budget; see
docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
from pathlib import Path

from .._version import __version__
from ..program import ExitCode, RunOptions, run_source
from ..program.checks import compile_checked
from ..program.event_loop import LOOPS
from ..program.run import (
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENTS,
    DEFAULT_MAX_PAYLOAD,
)
from ..services import BackendSettings, ConfigError, backend_names, load_settings
from ..services.availability import backend_statuses, render_statuses
from ..services.execute import ALLOW_FLAG
from ..syntax import CxError
from . import cache_command, golden, graph_command, lsp_command, trace_command
from .bus_config import BusConfig, load_bus_config
from .durations import duration, time_limit
from .observing import add_observation_arguments, apply_observation
from .quantities import count, size

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx", description="The CX language: parallel handler parameters on an event bus."
    )
    parser.add_argument("--version", action="version", version=f"cx {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a CX program")
    run.add_argument("file", help="the program, or - to read it from standard input")
    run.add_argument("--backend", choices=backend_names(),
                     help="the model backend behind the AI services (default: CX_BACKEND, "
                          "else cx.toml, else local; see cx backends)")
    run.add_argument("--model", help="the model: a name for openai (default: CX_MODEL), "
                                     "a .gguf path for llama")
    _threads_argument(run)
    run.add_argument("--latency", type=duration, default=0.0, metavar="DURATION",
                     help="make every call of the local backend take this long, e.g. 30ms")
    run.add_argument("--timeout", type=time_limit, default=math.inf, metavar="SECONDS",
                     help="stop the run after this long (exit code 3)")

    _execute_argument(run)
    run.add_argument("--sequential", action="store_true",
                     help="run parallel handler parameters one at a time (for comparison)")
    run.add_argument("--stats", action="store_true",
                     help="print how long the run took, and each model's calls, tokens and "
                          "cost ([prices] in cx.toml), to standard error")
    run.add_argument("--stats-json", metavar="FILE",
                     help="write the run's statistics, models' usage included, to FILE "
                          "as JSON")
    _model_call_arguments(run)
    _loop_argument(run)
    _bus_arguments(run)
    run.add_argument("--serve", action="store_true",
                     help="with --bus: keep serving the program's handlers after it goes idle, "
                          "until system.shutdown, SIGINT/SIGTERM or --timeout")
    run.add_argument("--group", help="with --bus: the queue group this process serves calls "
                                     "and events in (default: a group of its own); NATS "
                                     "permissions name it (docs/security.md)")
    add_observation_arguments(run)
    _limit_arguments(run)

    worker = commands.add_parser("worker", help="serve a program's handlers to the other "
                                 "processes on a NATS bus, sharing the work with its group")
    worker.add_argument("file", help="the program whose handlers to serve (its top level runs "
                                     "first, without system.start)")
    worker.add_argument("--backend", choices=backend_names(),
                        help="the model backend behind the AI services, as for cx run")
    worker.add_argument("--model", help="the model, as for cx run")
    _threads_argument(worker)
    worker.add_argument("--latency", type=duration, default=0.0, metavar="DURATION",
                        help="make every call of the local backend take this long")
    worker.add_argument("--timeout", type=time_limit, default=math.inf, metavar="SECONDS",
                        help="stop serving after this long (exit code 3); else SIGINT/SIGTERM")
    _execute_argument(worker)
    _model_call_arguments(worker)
    worker.add_argument("--group", help="the queue group to share events and calls with "
                                        "(default: cx-worker-<program name>)")
    _loop_argument(worker)
    _bus_arguments(worker)
    _limit_arguments(worker)
    add_observation_arguments(worker)
    worker.set_defaults(sequential=False, stats=False, stats_json=None, serve=True)
    trace_command.add_parser(commands)
    golden.add_parser(commands)
    graph_command.add_parser(commands)
    lsp_command.add_parser(commands)
    cache_command.add_parser(commands)

    check = commands.add_parser("check", help="parse and compile programs, print diagnostics")
    check.add_argument("files", nargs="+", help="programs to check")
    check.add_argument("--strict", action="store_true",
                       help="warnings are errors too (exit code 2)")

    backends = commands.add_parser("backends", help="list the model backends and which of "
                                   "them can run here (and why not)")
    backends.add_argument("--model", help="the model to check for (default: CX_MODEL)")

    commands.add_parser("bench", add_help=False,
                        help="measure the runtime against asyncio and LangChain baselines")
    return parser


def _read(path: str) -> tuple[str, str] | str:
    """The program's text and name, or an error message."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as exc:
        return f"cx: cannot read {path}: {exc}"


def _run(args: argparse.Namespace) -> int:
    source = _read(args.file)
    if isinstance(source, str):
        print(source, file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    text, name = source
    settings = _settings(args)
    if settings is None:
        return ExitCode.BAD_PROGRAM
    options = RunOptions(backend=settings.backend, latency=args.latency, timeout=args.timeout,
                         sequential=args.sequential, stats=args.stats, settings=settings,
                         loop=args.loop, allow_execute=args.allow_execute,
                         stats_json=args.stats_json, token_budget=args.token_budget,
                         record=args.record, replay=args.replay,
                         # a replay asks no model: cx.toml's cache has nothing to do
                         cache=args.cache or (None if args.replay else settings.cache))
    worker = args.command == "worker"
    bus = _bus(args, worker)
    if isinstance(bus, int):
        return bus
    options.bus, options.bus_credentials = bus.url, bus.credentials
    options.durable, options.ack_wait = args.durable, args.ack_wait
    options.serve, options.worker = args.serve, worker
    # A one-shot run stopped by a limit leaves at once; one that serves ends on its time limit
    # as a matter of course, and leaves the bus properly (its goodbye, what it still sends).
    options.exit_when_stopped = not (worker or args.serve)
    apply_observation(args, options, worker=worker)
    _apply_limits(args, options, serving=worker or args.serve)
    if worker:
        options.group = args.group or "cx-worker-" + re.sub(r"[^A-Za-z0-9_-]", "-",
                                                            Path(name).stem or "stdin")
    else:
        options.group = args.group
    return run_source(text, name, options)


def _bus(args: argparse.Namespace, worker: bool) -> BusConfig | ExitCode:
    """The bus of a run and cx.toml's credentials for it (no url: in process); an exit code
    after an error. cx.toml's url serves the commands that need a bus and were given none."""
    needs_bus = worker or args.durable or args.serve or args.group
    if args.bus is None and not needs_bus:
        return BusConfig()
    try:
        config = load_bus_config()
    except ConfigError as exc:
        print(f"cx: {exc}", file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    url = args.bus or config.url
    if url is None:
        needs = "cx worker needs" if worker else "--durable, --serve and --group need"
        print(f"cx: {needs} --bus nats://HOST:PORT (or url in cx.toml's [bus] table)",
              file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    return BusConfig(url, config.credentials)


def _model_call_arguments(command: argparse.ArgumentParser) -> None:
    calls = command.add_argument_group(
        "model calls", "record them, answer them from a recording or keep their answers")
    calls.add_argument("--record", metavar="FILE",
                       help="write every model call and its answer to FILE (JSON lines)")
    calls.add_argument("--replay", metavar="FILE",
                       help="answer every model call from FILE (written by --record), never "
                            "asking the backend; a call that is not in it fails")
    calls.add_argument("--cache", metavar="DIR",
                       help="answer identical model calls from DIR across runs (default: "
                            "cache in cx.toml; cx cache clear empties it)")


def _execute_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(ALLOW_FLAG, action="store_true",
                         help="let the program's execute calls run commands on this machine "
                              "(without it, every execute call fails with execute.error)")


def _threads_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--threads", type=_thread_count, metavar="N",
                         help="llama: the CPU threads the model computes on (default: threads "
                              "in cx.toml, else one per core; fewer on a busy machine)")


def _thread_count(text: str) -> int:
    """A number of threads for argparse: 0 would leave the model nothing to run on."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of threads; write a whole "
                                         "number of at least 1, e.g. 2")
    return value


def _loop_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--loop", choices=LOOPS, default="auto",
                         help="the event loop: uvloop when installed (auto, the default; "
                              "pip install 'cxlang[fast]'), or asyncio's own")


def _bus_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--bus", metavar="URL",
                         help="share the event bus with other processes on this NATS server, "
                              "e.g. nats://127.0.0.1:4222 (needs cxlang[nats]; default for "
                              "cx worker, --serve, --group and --durable: url in cx.toml's "
                              "[bus] table, which also gives credentials: docs/security.md)")
    command.add_argument("--durable", action="store_true",
                         help="with --bus: keep events in JetStream until handled, so none is "
                              "lost when a process dies mid-handler")
    command.add_argument("--ack-wait", type=duration, default=30.0, metavar="SECONDS",
                         help="with --durable: hand an event to another process when its "
                              "handling has not finished after this long (default 30s)")


def _limit_arguments(command: argparse.ArgumentParser) -> None:
    limits = command.add_argument_group(
        "run limits", "a run that reaches one stops with exit code 4; 0 means no limit")
    limits.add_argument("--max-events", type=count, metavar="N",
                        help=f"events dispatched in the run (default {DEFAULT_MAX_EVENTS:,}; "
                             "none with --serve and for cx worker)")
    limits.add_argument("--max-depth", type=count, metavar="N",
                        help="causal hops from the first event to any event it leads to "
                             f"(default {DEFAULT_MAX_DEPTH:,}; none with --serve and for "
                             "cx worker)")
    limits.add_argument("--max-payload", type=size, metavar="SIZE",
                        help="the largest string, array or event payload, e.g. 10MB "
                             f"(default {DEFAULT_MAX_PAYLOAD // 10**6}MB)")
    limits.add_argument("--max-memory", type=size, metavar="SIZE",
                        help="the process's resident memory, e.g. 2GB (default: half the "
                             "machine's memory)")
    limits.add_argument("--max-calls", type=count, metavar="N",
                        help="service calls in flight at once (default "
                             f"{DEFAULT_MAX_CALLS:,})")
    limits.add_argument("--token-budget", type=count, metavar="N",
                        help="tokens the run's models may use, input and output together; "
                             "no model call starts after that (default: token_budget in "
                             "cx.toml, else none)")


def _apply_limits(args: argparse.Namespace, options: RunOptions, *, serving: bool) -> None:
    """The flags over the defaults; a program that serves runs for as long as it is asked to,
    so it has no event or depth limit unless one is given."""
    if serving:
        options.max_events = options.max_depth = None
    for name in ("max_events", "max_depth", "max_payload", "max_memory", "max_calls"):
        value = getattr(args, name)
        if value is not None:
            setattr(options, name, value or None)


def _settings(args: argparse.Namespace) -> BackendSettings | None:
    """Backend settings from the flags, the environment and cx.toml; None after an error."""
    try:
        return load_settings(backend=getattr(args, "backend", None), model=args.model,
                             threads=getattr(args, "threads", None))
    except ConfigError as exc:
        print(f"cx: {exc}", file=sys.stderr)
        return None


def _backends(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return ExitCode.BAD_PROGRAM
    print(render_statuses(asyncio.run(backend_statuses(settings)), settings))
    return ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    status = ExitCode.OK
    for path in args.files:
        source = _read(path)
        if isinstance(source, str):
            print(source, file=sys.stderr)
            status = ExitCode.BAD_PROGRAM
            continue
        try:
            _, warnings = compile_checked(*source)
        except CxError as exc:
            print(exc.render(), file=sys.stderr)
            status = ExitCode.BAD_PROGRAM
            continue
        for warning in warnings:
            print(warning.render(), file=sys.stderr)
        if warnings and args.strict:
            status = ExitCode.BAD_PROGRAM
    return status


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["bench"]:
        from ..bench import main as bench_main  # noqa: PLC0415 - only cx bench pays for it

        return bench_main(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command in ("run", "worker"):
        return _run(args)
    if args.command == "check":
        return _check(args)
    if args.command == "trace":
        return trace_command.run(args)
    if args.command == "test":
        return golden.run(args)
    if args.command == "graph":
        return graph_command.run(args)
    if args.command == "lsp":
        return lsp_command.run(args)
    if args.command == "cache":
        return cache_command.run(args)
    if args.command == "backends":
        return _backends(args)
    parser.print_help()
    return ExitCode.BAD_PROGRAM


if __name__ == "__main__":
    sys.exit(main())
