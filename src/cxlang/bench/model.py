"""What a scenario hands to the report: a measured value, its baselines and the targets.

Scenarios stay declarative: they say what was measured and which goal applies; ratios and
whether a goal was met are computed here, once, so the table and the JSON cannot disagree.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Comparison",
    "Quantity",
    "RatioStyle",
    "ScenarioResult",
    "Target",
    "Unit",
    "ratio_at_least",
    "ratio_at_most",
    "speedup_at_least",
    "value_at_least",
    "value_below",
]


class Unit(enum.Enum):
    SECONDS = "s"
    RATE = "1/s"
    BYTES = "B"


@dataclass(frozen=True, slots=True)
class Quantity:
    """A median, with the samples it was taken from (empty for a fixed reference)."""

    value: float
    unit: Unit
    samples: tuple[float, ...] = ()

    @classmethod
    def median_of(cls, samples: Sequence[float], unit: Unit) -> Quantity:
        return cls(statistics.median(samples), unit, tuple(samples))


class RatioStyle(enum.Enum):
    """How a ratio reads best: ``0.67x``, ``50x faster`` or ``+2.1%``."""

    TIMES = "times"
    FASTER = "faster"
    PERCENT = "percent"


class Goal(enum.Enum):
    RATIO_AT_MOST = "ratio_at_most"
    RATIO_AT_LEAST = "ratio_at_least"
    SPEEDUP_AT_LEAST = "speedup_at_least"
    VALUE_AT_LEAST = "value_at_least"
    VALUE_BELOW = "value_below"


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the brief, on the ratio to a baseline or on cxlang's own value."""

    goal: Goal
    threshold: float
    text: str

    def met(self, value: float, ratio: float | None) -> bool | None:
        """Whether the goal holds; ``None`` when it is about a ratio that could not be taken."""
        if self.goal is Goal.VALUE_AT_LEAST:
            return value >= self.threshold
        if self.goal is Goal.VALUE_BELOW:
            return value < self.threshold
        if ratio is None:
            return None
        if self.goal is Goal.RATIO_AT_MOST:
            return ratio <= self.threshold
        if self.goal is Goal.RATIO_AT_LEAST:
            return ratio >= self.threshold
        return 1 / ratio >= self.threshold


def ratio_at_most(threshold: float, text: str) -> Target:
    return Target(Goal.RATIO_AT_MOST, threshold, text)


def ratio_at_least(threshold: float, text: str) -> Target:
    """For rates, where more is better: cxlang's rate at least *threshold* times the baseline's."""
    return Target(Goal.RATIO_AT_LEAST, threshold, text)


def speedup_at_least(threshold: float) -> Target:
    return Target(Goal.SPEEDUP_AT_LEAST, threshold, f">= {threshold:g}x faster")


def value_at_least(threshold: float, text: str) -> Target:
    return Target(Goal.VALUE_AT_LEAST, threshold, text)


def value_below(threshold: float, text: str) -> Target:
    return Target(Goal.VALUE_BELOW, threshold, text)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One baseline: ``value`` is ``None`` when it could not run (``note`` says why)."""

    baseline: str
    value: Quantity | None
    style: RatioStyle = RatioStyle.TIMES
    target: Target | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One row group of the table: cxlang's value and the baselines measured beside it.

    ``detail`` is shown next to cxlang's value (e.g. cores used); ``extra`` holds further
    numbers for the JSON only.
    """

    scenario: str
    title: str
    cxlang: Quantity
    comparisons: tuple[Comparison, ...]
    detail: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)

    def ratio(self, comparison: Comparison) -> float | None:
        """cxlang / baseline (below 1: cxlang is cheaper, or slower for a rate)."""
        if comparison.value is None:
            return None
        return self.cxlang.value / comparison.value.value

    def met(self, comparison: Comparison) -> bool | None:
        if comparison.target is None:
            return None
        return comparison.target.met(self.cxlang.value, self.ratio(comparison))
