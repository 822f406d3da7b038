"""``cx``: run CX programs, check them, benchmark the runtime."""

from __future__ import annotations

import argparse
import sys

from .._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx", description="The CX language: parallel handler parameters on an event bus."
    )
    parser.add_argument("--version", action="version", version=f"cx {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "bench", help="measure the runtime against asyncio and LangChain baselines",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["bench"]:
        from ..bench import main as bench_main  # only the bench pays for its imports

        return bench_main(args[1:])
    parser = _parser()
    parser.parse_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
