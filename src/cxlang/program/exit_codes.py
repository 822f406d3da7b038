"""The exit codes of ``cx run``: what a script or CI job can tell apart without reading stderr."""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    OK = 0
    RUNTIME_ERROR = 1
    BAD_PROGRAM = 2  # a bad program or command line
    TIME_LIMIT = 3
    LIMIT = 4  # a run limit: events, depth, payload size or memory
