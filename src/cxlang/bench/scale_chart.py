"""The picture of ``cx bench --scale -o FILE.png``: cost per branch and per event against size.

Three panels on a log-x axis: time per branch of the fan-out (cxlang and gather, handlers that
return at once and that suspend once), bytes per in-flight branch (with the 2 KB target), and
time per event through the bus (with the bare queue loop). Flat lines are the goal. matplotlib
comes with the ``viz`` extra; it is imported here only, so the rest of the bench runs without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .model import ScenarioResult
from .scale import BUS, FAN_OUT, FAN_OUT_SUSPEND, MEMORY

__all__ = ["draw"]

MICROSECONDS = 1e6
TARGET_BYTES = 2048


def draw(rows: Sequence[ScenarioResult], output: Path) -> None:
    """Write the PNG to *output*; raises ``ImportError`` without matplotlib."""
    from matplotlib.figure import Figure  # noqa: PLC0415 - the viz extra, only here

    figure = Figure(figsize=(15, 4.6), layout="constrained")
    time_ax, memory_ax, bus_ax = figure.subplots(1, 3)
    _curves(time_ax, rows, FAN_OUT, "no-op", MICROSECONDS)
    _curves(time_ax, rows, FAN_OUT_SUSPEND, "suspend once", MICROSECONDS, linestyle="--")
    _style(time_ax, "fan-out: time per branch", "branches per call (K)", "microseconds")
    _curves(memory_ax, rows, MEMORY, "", 1.0)
    memory_ax.axhline(TARGET_BYTES, color="#c0392b", linewidth=0.8, linestyle=":",
                      label="target: 2 KB")
    _style(memory_ax, "memory per in-flight branch", "branches in flight (K)", "bytes")
    _curves(bus_ax, rows, BUS, "", MICROSECONDS)
    _style(bus_ax, "bus: time per event", "events per burst", "microseconds")
    figure.savefig(output, format="png", dpi=120)


def _curves(ax: Any, rows: Sequence[ScenarioResult], scenario: str, kind: str, scale: float,
            linestyle: str = "-") -> None:
    """cxlang's curve and its baseline's, from the rows of one scenario."""
    picked = sorted((r for r in rows if r.scenario == scenario), key=lambda r: r.extra["size"])
    if not picked:
        return
    sizes = [r.extra["size"] for r in picked]
    suffix = f" ({kind})" if kind else ""
    ax.plot(sizes, [r.cxlang.value * scale for r in picked], marker="o", linestyle=linestyle,
            color="#1f6feb", label=f"cxlang{suffix}")
    baseline = picked[0].comparisons[0].baseline
    values = [r.comparisons[0].value for r in picked]
    ax.plot(sizes, [v.value * scale if v else float("nan") for v in values], marker="s",
            linestyle=linestyle, color="#8c8c8c", label=f"{baseline}{suffix}")


def _style(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.legend(fontsize=8, frameon=False)
