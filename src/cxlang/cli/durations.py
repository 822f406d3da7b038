"""Durations on the command line: ``30ms``, ``2s``, ``1.5m``; a bare number is seconds."""

from __future__ import annotations

import argparse
import re

__all__ = ["duration"]

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
