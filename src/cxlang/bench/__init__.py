"""``cx bench``: cxlang measured against asyncio and LangChain, side by side in one run.

Every scenario is timed together with its baselines in the same process and run, and reported
as medians and ratios, because absolute times on a small shared machine say little. See
:mod:`.registry` for the scenarios and the BRIEF's "Where it must stand" for the targets.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..program.event_loop import LoopUnavailableError, loop_factory
from . import environment, measure, registry, report
from .measure import FULL, QUICK
from .model import ScenarioResult

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """Run the selected scenarios, print the table, optionally write the JSON; returns 0."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        measure.LOOP_FACTORY = loop_factory(args.loop)
    except LoopUnavailableError as exc:
        parser.error(str(exc))
    budget = QUICK if args.quick else FULL
    env = environment.describe(quick=args.quick)
    print(report.header(env), flush=True)
    results: list[ScenarioResult] = []
    for scenario in registry.select(args.only):
        # Progress goes to stderr so that stdout stays a clean, pasteable report.
        print(f"running {scenario.name}: {scenario.summary}", file=sys.stderr, flush=True)
        results.extend(scenario.run(budget))
    print()
    print(report.table(results))
    print()
    print(report.summary(results))
    if args.json is not None:
        document = report.document(env, results)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cx bench",
        description="Benchmark cxlang against asyncio and LangChain baselines, in one run.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (well under a minute)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write every number to FILE as JSON")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop every scenario runs on (default: asyncio's)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=registry.names(),
                        help=f"run only these scenarios: {', '.join(registry.names())}")
    return parser
