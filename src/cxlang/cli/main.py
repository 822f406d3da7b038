"""``cx``: run CX programs, check them, benchmark the runtime.

Exit codes: 0 a clean run; 1 a run-time error in the program (reported with its position);
2 a bad program or bad command line; 3 the run's time limit was hit.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .._version import __version__
from ..compiler import compile_program
from ..program import ExitCode, RunOptions, run_source
from ..services import backend_names
from ..syntax import CxError
from .durations import duration

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx", description="The CX language: parallel handler parameters on an event bus."
    )
    parser.add_argument("--version", action="version", version=f"cx {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run a CX program")
    run.add_argument("file", help="the program, or - to read it from standard input")
    run.add_argument("--backend", default="local", choices=backend_names(),
                     help="the model backend behind the AI services (default: local)")
    run.add_argument("--latency", type=duration, default=0.0, metavar="DURATION",
                     help="make every call of the local backend take this long, e.g. 30ms")
    run.add_argument("--timeout", type=duration, default=math.inf, metavar="SECONDS",
                     help="stop the run after this long (exit code 3)")

    run.add_argument("--sequential", action="store_true",
                     help="run parallel handler parameters one at a time (for comparison)")
    run.add_argument("--stats", action="store_true",
                     help="print how long the run took to standard error")

    check = commands.add_parser("check", help="parse and compile programs, print diagnostics")
    check.add_argument("files", nargs="+", help="programs to check")

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
    options = RunOptions(backend=args.backend, latency=args.latency, timeout=args.timeout,
                         sequential=args.sequential, stats=args.stats)
    return run_source(text, name, options)


def _check(args: argparse.Namespace) -> int:
    status = ExitCode.OK
    for path in args.files:
        source = _read(path)
        if isinstance(source, str):
            print(source, file=sys.stderr)
            status = ExitCode.BAD_PROGRAM
            continue
        try:
            compile_program(*source)
        except CxError as exc:
            print(exc.render(), file=sys.stderr)
            status = ExitCode.BAD_PROGRAM
    return status


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["bench"]:
        from ..bench import main as bench_main  # noqa: PLC0415 - only cx bench pays for it

        return bench_main(args_list[1:])
    parser = _parser()
    args = parser.parse_args(args_list)
    if args.command == "run":
        return _run(args)
    if args.command == "check":
        return _check(args)
    parser.print_help()
    return ExitCode.BAD_PROGRAM


if __name__ == "__main__":
    sys.exit(main())
