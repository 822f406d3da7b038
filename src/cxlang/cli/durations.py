"""Durations on the command line: ``30ms``, ``2s``, ``1.5m``; a bare number is seconds."""

from __future__ import annotations

import argparse
import re

__all__ = ["duration", "time_limit"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$")


def duration(text: str) -> float:
    """Parse a duration in seconds, for argparse (``type=duration``)."""
    match = _PATTERN.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write it like 30ms, 2s or 1.5m"
        )
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


def time_limit(text: str) -> float:
    """A time limit in seconds, for argparse: a duration of more than 0 (a run given no time at
    all would stop before its first line; leave the flag out for no limit)."""
    seconds = duration(text.strip().removeprefix("-"))  # "-1" is read, to say why it is wrong
    if seconds <= 0 or text.strip().startswith("-"):
        raise argparse.ArgumentTypeError(
            f"{text!r} leaves the run no time; give a duration above 0, like 500ms or 10s, "
            "or leave --timeout out for no time limit")
    return seconds
