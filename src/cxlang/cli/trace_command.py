"""``cx trace run.json -o timeline.png``: draw a trace ``cx run --trace`` wrote."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    trace = commands.add_parser(
        "trace", help="draw a run's trace (cx run --trace FILE) as a timeline picture")
    trace.add_argument("file", help="the trace file")
    trace.add_argument("-o", "--output", metavar="PICTURE",
                       help="the picture: .png, .svg or .html (default: FILE with .png)")


def run(args: argparse.Namespace) -> int:
    from ..observe.timeline import ESTIMATE, TraceError, load, render  # noqa: PLC0415

    output = args.output or str(Path(args.file).with_suffix(".png"))
    try:
        timeline = load(args.file)
        render(timeline, output)
    except TraceError as exc:
        print(f"cx trace: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"cx trace: drawing needs matplotlib ({exc.name} is missing): "
              "pip install 'cxlang[viz]'", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cx trace: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    lanes = len(timeline.lanes)
    print(f"{output}: {len(timeline.bars)} spans in {lanes} lane{'s' if lanes > 1 else ''}; "
          f"ran in {timeline.elapsed:.1f} ms; {ESTIMATE} {timeline.sequential:.1f} ms; "
          f"{len(timeline.failures)} failures")
    return 0
