"""Counts and sizes on the command line: ``1000000``, ``1_000_000``, ``10MB``, ``2GiB``."""

from __future__ import annotations

import argparse
import re

__all__ = ["count", "size"]

_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
               "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([a-z]*)\s*$")


def count(text: str) -> int:
    """A whole number of at least 0, for argparse (``type=count``); 0 means no limit."""
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; write it like 1000000 "
                                         "(0: no limit)")
    return value


def size(text: str) -> int:
    """A size in bytes (``10MB``, ``512MiB``, ``2G``, or a bare number of bytes); 0: no limit."""
    match = _SIZE.match(text.lower())
    unit = _SIZE_UNITS.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; write it like 10MB, 512MiB "
                                         "or 2GB (0: no limit)")
    return int(float(match.group(1)) * unit)
