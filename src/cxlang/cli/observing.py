"""The flags of ``cx run`` and ``cx worker`` that make a run visible: ``--trace``, ``--quiet``,
``--log-level``, ``--log-format``."""

from __future__ import annotations

import argparse

from ..observe.logs import LEVELS, configure_logging
from ..program import RunOptions

__all__ = ["add_observation_arguments", "apply_observation"]


def add_observation_arguments(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("seeing the run")
    group.add_argument("--trace", metavar="FILE",
                       help="write a trace of the run to FILE (Chrome trace format: open it in "
                            "ui.perfetto.dev or chrome://tracing, or draw it with cx trace)")
    group.add_argument("--quiet", action="store_true",
                       help="no live status line (it shows only on a terminal, after 1 s)")
    group.add_argument("--log-level", choices=LEVELS, default="warning",
                       help="log messages at this level and above to standard error "
                            "(default warning)")
    group.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="json: one object per line, for log collectors")


def apply_observation(args: argparse.Namespace, options: RunOptions, *, worker: bool) -> None:
    """Set up logging, and the trace and status line of *options*, from the flags."""
    configure_logging(args.log_level, args.log_format)
    options.trace = args.trace
    # The status line is for a person watching a terminal; a worker serves, nobody watches.
    options.progress = not (args.quiet or worker) and options.out.isatty()
