"""The report: a markdown table to read (and paste into the README), a JSON document for tools.

Sizes are binary (1 KB = 1024 bytes); times pick us, ms or s. A ratio is cxlang / baseline,
shown as ``0.67x``, as a speed-up (``50x faster``) or as a percentage over a limit, whichever
the comparison reads best as; the JSON always has the plain ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .baselines import NOT_INSTALLED
from .environment import Environment
from .model import Comparison, Quantity, RatioStyle, ScenarioResult, Unit

__all__ = ["document", "header", "summary", "table"]

COLUMNS = ("scenario", "cxlang", "baseline", "ratio", "target", "met")


def header(env: Environment) -> str:
    run = "scale run" if env.scale else "quick run" if env.quick else "full run"
    peers = ", ".join(f"{name} {version or NOT_INSTALLED}" for name, version in env.peers.items())
    return (
        f"cxlang {env.cxlang} benchmarks ({run})\n"
        f"Python {env.python} ({env.implementation}) on {env.platform}, {env.cpu_count} CPUs\n"
        f"event loop: {env.event_loop} (uvloop: {'yes' if env.uvloop else 'no'})\n"
        f"peers: {peers}"
    )


def table(results: Sequence[ScenarioResult]) -> str:
    rows = [list(COLUMNS)]
    for result in results:
        for i, comparison in enumerate(result.comparisons):
            first = i == 0
            rows.append([
                result.title if first else "",
                _cxlang_cell(result) if first else "",
                _baseline_cell(comparison),
                _ratio_cell(result, comparison),
                comparison.target.text if comparison.target else "",
                _met_cell(result.met(comparison), comparison),
            ])
    widths = [max(len(row[col]) for row in rows) for col in range(len(COLUMNS))]
    lines = [_line(row, widths) for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def summary(results: Sequence[ScenarioResult]) -> str:
    met = [result.met(c) for result in results for c in result.comparisons]
    judged = [m for m in met if m is not None]
    return f"targets met: {sum(judged)} of {len(judged)}"


def document(env: Environment, results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """Every number of the run, for tools: medians, samples, ratios, targets and verdicts."""
    scenarios = [_result_json(result) for result in results]
    verdicts = [b["target_met"] for s in scenarios for b in s["baselines"]
                if b["target_met"] is not None]
    return {
        **env.as_dict(),
        "scenarios": scenarios,
        "targets": {"met": sum(verdicts), "total": len(verdicts)},
    }


def _result_json(result: ScenarioResult) -> dict[str, Any]:
    return {
        "scenario": result.scenario,
        "title": result.title,
        "unit": result.cxlang.unit.value,
        "cxlang": _quantity_json(result.cxlang),
        "detail": result.detail,
        "extra": dict(result.extra),
        "baselines": [_comparison_json(result, c) for c in result.comparisons],
    }


def _comparison_json(result: ScenarioResult, comparison: Comparison) -> dict[str, Any]:
    ratio = result.ratio(comparison)
    target = comparison.target
    return {
        "name": comparison.baseline,
        "available": comparison.value is not None,
        "note": comparison.note,
        **_quantity_json(comparison.value),
        "ratio": ratio,
        "speedup": None if ratio is None else 1 / ratio,
        "ratio_style": comparison.style.value,
        "target": None if target is None else {
            "text": target.text, "goal": target.goal.value, "threshold": target.threshold,
        },
        "target_met": result.met(comparison),
    }


def _quantity_json(quantity: Quantity | None) -> dict[str, Any]:
    if quantity is None:
        return {"median": None, "samples": []}
    return {"median": quantity.value, "samples": list(quantity.samples)}


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def _cxlang_cell(result: ScenarioResult) -> str:
    value = _format_quantity(result.cxlang)
    return f"{value} ({result.detail})" if result.detail else value


def _baseline_cell(comparison: Comparison) -> str:
    if comparison.value is None:
        return f"{comparison.baseline}: {comparison.note}"
    return f"{comparison.baseline} {_format_quantity(comparison.value)}"


def _ratio_cell(result: ScenarioResult, comparison: Comparison) -> str:
    ratio = result.ratio(comparison)
    if ratio is None:
        return "-"
    if comparison.style is RatioStyle.PERCENT:
        return f"{(ratio - 1) * 100:+.1f}%"
    if comparison.style is RatioStyle.FASTER:
        speedup = 1 / ratio
        if speedup < 1:
            return f"{ratio:.2f}x slower"
        return f"{speedup:.0f}x faster" if speedup >= 10 else f"{speedup:.2f}x faster"
    return f"{ratio:.2f}x"


def _met_cell(met: bool | None, comparison: Comparison) -> str:
    if comparison.target is None:
        return ""
    if met is None:
        return "n/a"
    return "yes" if met else "NO"


def _format_quantity(quantity: Quantity) -> str:
    value = quantity.value
    if quantity.unit is Unit.RATE:
        return f"{value:,.0f}/s"
    if quantity.unit is Unit.BYTES:
        if value < 1024:
            return f"{value:.0f} B"
        if value < 1024**2:
            return f"{value / 1024:.2f} KB"
        return f"{value / 1024**2:.1f} MB"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"
