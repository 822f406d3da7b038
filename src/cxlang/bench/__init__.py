"""``cx bench``: cxlang measured against asyncio and the frameworks people pick, in one run.

Every scenario is timed together with its baselines in the same process and run, and reported
as medians and ratios, because absolute times on a small shared machine say little. See
:mod:`.registry` for the scenarios and the BRIEF's "Where it must stand" for the targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from time import perf_counter

from ..program.event_loop import LoopUnavailableError, loop_factory
from . import environment, measure, registry, report, scale, scale_chart
from .measure import FULL, QUICK
from .model import ScenarioResult

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run the selected scenarios (or ``--scale``), print the table, write what was asked for.

    Returns 0, or 2 when ``-o`` cannot be honoured (no matplotlib, or the file cannot be written).
    """
    started = perf_counter()  # the wall time printed at the end covers everything
    parser = _parser()
    args = parser.parse_args(argv)
    if args.output is not None and not args.scale:
        parser.error("-o draws the curves of --scale: use it with --scale")
    if args.scale and (args.quick or args.only):
        parser.error("--scale runs its own sizes: use it without --quick and --only")
    if args.output is not None and importlib.util.find_spec("matplotlib") is None:
        print("cx bench: -o needs matplotlib, which is missing: pip install 'cxlang[viz]'",
              file=sys.stderr)
        return 2
    try:
        measure.LOOP_FACTORY = loop_factory(args.loop)
    except LoopUnavailableError as exc:
        parser.error(str(exc))
    env = environment.describe(quick=args.quick, scale=args.scale)
    print(report.header(env), flush=True)
    if args.scale:
        results = _timed("scale", "fan-out, memory and bus at growing sizes",
                         lambda: scale.scale(scale.SIZES))
    else:
        budget = QUICK if args.quick else FULL
        results = [row for s in registry.select(args.only)
                   for row in _timed(s.name, s.summary, partial(s.run, budget))]
    print()
    print(report.table(results))
    print()
    print(report.summary(results))
    if args.json is not None:
        document = report.document(env, results)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.output is not None:
        try:
            scale_chart.draw(results, args.output)
        except OSError as exc:
            print(f"cx bench: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"curves drawn to {args.output}")
    print(f"bench took {perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


def _timed(name: str, summary: str,
           run: Callable[[], list[ScenarioResult]]) -> list[ScenarioResult]:
    """*run*, announced and then timed on stderr, so stdout stays a clean, pasteable report."""
    print(f"running {name}: {summary}", file=sys.stderr, flush=True)
    started = perf_counter()
    rows = run()
    print(f"{name} took {perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx bench",
        description="Benchmark cxlang against asyncio and the frameworks people pick "
                    "(LangChain, LangGraph, LlamaIndex Workflows), in one run.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (well under a minute)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write every number to FILE as JSON")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop every scenario runs on (default: asyncio's)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=registry.names(),
                        help=f"run only these scenarios: {', '.join(registry.names())}")
    parser.add_argument("--scale", action="store_true",
                        help="cost per branch and per event as K grows to 100,000 branches "
                             "and bursts to 10^6 events (a few minutes)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE.png",
                        help="with --scale: draw the curves to FILE.png (needs matplotlib)")
    return parser
