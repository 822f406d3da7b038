"""How long ``await`` waits.

``durationMs: N`` waits N milliseconds. ``minDurationMs: A, maxDurationMs: B`` is upstream
CX's "smart await": there a model picks a wait in [A, B], and without a model (or with an
answer that is no number) upstream waits the middle of the range. cxlang always waits that
middle, ``(A + B) / 2``: the same on every backend and every run, and within the range the
program asked for. With only one of the two bounds, the wait is that bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["await_duration"]


def await_duration(properties: Mapping[str, Any]) -> int | float:
    """The wait, in milliseconds, of an ``await`` call with *properties* (checked already:
    numbers >= 0, the maximum not below the minimum); a whole number stays whole."""
    duration = properties.get("durationMs")
    if duration is not None:
        return duration  # type: ignore[no-any-return]
    low = properties.get("minDurationMs")
    high = properties.get("maxDurationMs")
    if low is None or high is None:
        return (low if high is None else high) or 0
    middle = (low + high) / 2
    return int(middle) if middle.is_integer() else middle
