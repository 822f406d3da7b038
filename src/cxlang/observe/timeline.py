"""The timeline picture of a run: a Gantt chart drawn from a Chrome trace file.

Each lane of the trace is a band of rows, one row per nesting level, so a run's parallel
branches sit side by side; bars are coloured by what they are (run, service call, parallel
call, branch, handler, event dispatch), failed ones are hatched and outlined in red with their
failure written after them. The title gives the run's real time and an estimate, from the
branches' times, of the run with one branch at a time. PNG and SVG come from matplotlib
(``cxlang[viz]``); HTML is a page around the SVG.
"""

from __future__ import annotations

import html
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ESTIMATE", "FORMATS", "Timeline", "TraceError", "load", "render"]

FORMATS = (".png", ".svg", ".html")
# Said beside the one-at-a-time figure: it is the branches' times added up, not a measurement.
ESTIMATE = "one branch at a time, estimated from the branches' own times (cx run --sequential " \
    "measures it):"
KINDS = {  # kind -> (colour, legend label), in legend order
    "run": ("#bab0ac", "run"),
    "service": ("#4c78a8", "service call"),
    "call": ("#f58518", "parallel call"),
    "branch": ("#54a24b", "branch (parameter)"),
    "handler": ("#72b7b2", "handler"),
    "dispatch": ("#b279a2", "event dispatch"),
}
FAILED = "#d62728"


class TraceError(Exception):
    """The file is not a trace ``cx run --trace`` wrote."""


@dataclass
class Bar:
    id: int
    parent: int | None
    kind: str
    name: str
    start: float  # ms from the start of the run
    duration: float  # ms
    lane: int
    failure: str | None = None
    depth: int = 0
    children: list[Bar] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class Timeline:
    """The spans of a trace, laid out: ``rows`` is the number of bar rows."""

    bars: list[Bar]
    title: str
    lanes: dict[int, list[int]]  # lane -> its rows, top to bottom
    rows: int

    @property
    def elapsed(self) -> float:
        """Milliseconds from the first span's start to the last one's end."""
        if not self.bars:
            return 0.0
        return max(b.end for b in self.bars) - min(b.start for b in self.bars)

    @property
    def sequential(self) -> float:
        """An estimate of the run with one branch of each call at a time: each call lasting
        as long as its branches together, nested calls likewise. It assumes a branch alone takes
        as long as it did here; branches that queued for a backend serving one call at a time
        took longer here than alone, so against such a backend it says too much (``cx run
        --sequential`` measures the real thing)."""
        roots = [b for b in self.bars if b.parent is None]
        return self.elapsed + sum(_extra_inside(b) for b in roots)

    @property
    def failures(self) -> list[Bar]:
        """Failed branches, service calls and handlers outside a branch: one per failure."""
        kind_of = {b.id: b.kind for b in self.bars}

        def counted(bar: Bar) -> bool:
            if bar.kind == "handler":  # a branch's handler failed with its branch
                return bar.parent is None or kind_of[bar.parent] != "branch"
            # a service call cancelled with its handler is not a failure of its own
            return bar.kind == "branch" or (bar.kind == "service" and bar.failure != "cancelled")

        return [b for b in self.bars if b.failure is not None and counted(b)]

    def lane_label(self, lane: int) -> str:
        branches = [b.name for b in self.bars if b.lane == lane and b.kind == "branch"]
        label = "main" if lane == 0 else f"lane {lane}"
        if branches:
            shown = ", ".join(dict.fromkeys(branches))
            label += f"\n{shown if len(shown) <= 28 else shown[:27] + '...'}"
        return label


def _extra_inside(bar: Bar) -> float:
    if bar.kind == "call":
        branches = [c for c in bar.children if c.kind == "branch"]
        together = sum(c.duration + _extra_inside(c) for c in branches)
        return max(0.0, together - bar.duration)
    return sum(_extra_inside(c) for c in bar.children)


def load(path: str | Path) -> Timeline:
    """Read a trace file and lay its spans out in rows."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TraceError(
            f"{path} is not JSON ({exc}): give the file cx run --trace wrote") from None
    events = document.get("traceEvents") if isinstance(document, dict) else document
    if not isinstance(events, list):
        raise TraceError(f"{path} has no traceEvents: give the file cx run --trace wrote")
    title = "cx run"
    bars: list[Bar] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("ph") == "M" and event.get("name") == "process_name":
            title = str(event.get("args", {}).get("name", title))
        if event.get("ph") != "X":
            continue
        args: dict[str, Any] = event.get("args") or {}
        bars.append(Bar(int(args.get("id", len(bars) + 1)), args.get("parent"),
                        str(event.get("cat", "handler")), str(event.get("name", "")),
                        float(event.get("ts", 0)) / 1000, float(event.get("dur", 0)) / 1000,
                        int(event.get("tid", 0)), args.get("failure")))
    if not bars:
        raise TraceError(f"{path} holds no spans: was the run traced (cx run --trace)?")
    by_id = {b.id: b for b in bars}
    for bar in bars:
        if bar.parent is not None and bar.parent in by_id:
            by_id[bar.parent].children.append(bar)
        elif bar.parent is not None:
            bar.parent = None
    lanes = _rows(bars)
    return Timeline(bars, title, lanes, sum(len(r) for r in lanes.values()))


def _rows(bars: list[Bar]) -> dict[int, list[int]]:
    """Give each bar its nesting depth in its lane; number the rows lane by lane."""
    per_lane: dict[int, list[Bar]] = defaultdict(list)
    for bar in bars:
        per_lane[bar.lane].append(bar)
    rows: dict[int, list[int]] = {}
    next_row = 0
    for lane in sorted(per_lane):
        stack: list[Bar] = []
        deepest = 0
        for bar in sorted(per_lane[lane], key=lambda b: (b.start, -b.duration, b.id)):
            while stack and stack[-1].end <= bar.start and not bar.end <= stack[-1].end:
                stack.pop()
            bar.depth = len(stack)
            deepest = max(deepest, bar.depth)
            stack.append(bar)
        rows[lane] = list(range(next_row, next_row + deepest + 1))
        next_row += deepest + 1
    return rows


def render(timeline: Timeline, output: str | Path) -> None:
    """Draw *timeline* to *output*: ``.png``, ``.svg`` or ``.html`` (by its suffix)."""
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise TraceError(f"cannot draw {output}: the picture is .png, .svg or .html")
    figure = _figure(timeline)
    if suffix == ".html":
        svg = io.StringIO()
        figure.savefig(svg, format="svg", bbox_inches="tight")
        Path(output).write_text(_page(timeline, svg.getvalue()), encoding="utf-8")
    else:
        figure.savefig(output, format=suffix[1:], dpi=150, bbox_inches="tight")


def _figure(timeline: Timeline) -> Any:
    from matplotlib.figure import Figure  # noqa: PLC0415 - the viz extra, only here
    from matplotlib.patches import Patch  # noqa: PLC0415

    rows = timeline.rows
    figure = Figure(figsize=(12, 1.8 + 0.34 * rows))
    ax = figure.add_subplot()
    elapsed = max(timeline.elapsed, 1e-3)
    origin = min(b.start for b in timeline.bars)
    row_of = {lane: r[0] for lane, r in timeline.lanes.items()}
    chars_per_ms = 150 / elapsed  # about 150 characters fit across the plot
    for bar in timeline.bars:
        y = row_of[bar.lane] + bar.depth
        colour = KINDS.get(bar.kind, ("#999999", ""))[0]
        failed = bar.failure is not None
        ax.barh(y, max(bar.duration, elapsed / 2000), left=bar.start - origin, height=0.82,
                color=colour, edgecolor=FAILED if failed else "white",
                linewidth=1.6 if failed else 0.5, hatch="///" if failed else None)
        label = _label(bar)
        room = int(bar.duration * chars_per_ms)
        if room >= 4:
            shown = label if len(label) <= room else label[:max(room - 2, 1)] + ".."
            ax.text(bar.start - origin + elapsed / 400, y, shown, va="center", ha="left",
                    fontsize=7.5, color="black", clip_on=True)
        if failed:
            ax.text(bar.end - origin + elapsed / 300, y, str(bar.failure), va="center",
                    ha="left", fontsize=7.5, color=FAILED, fontweight="bold")
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_yticks([row_of[lane] for lane in sorted(timeline.lanes)])
    ax.set_yticklabels([timeline.lane_label(lane) for lane in sorted(timeline.lanes)],
                       fontsize=8)
    for lane, lane_rows in timeline.lanes.items():  # a faint band per lane
        if lane % 2:
            ax.axhspan(lane_rows[0] - 0.5, lane_rows[-1] + 0.5, color="#f3f3f3", zorder=0)
    ax.set_xlim(0, elapsed * 1.08)
    ax.set_xlabel("milliseconds since the start of the run")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"{timeline.title}\n{_summary(timeline)}", fontsize=10, loc="left")
    kinds = dict.fromkeys(b.kind for b in timeline.bars)
    handles = [Patch(facecolor=colour, label=label)
               for kind, (colour, label) in KINDS.items() if kind in kinds]
    handles.append(Patch(facecolor="white", edgecolor=FAILED, hatch="///",
                         label="failed (error, timeout, ...)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    return figure


def _label(bar: Bar) -> str:
    if bar.kind == "call":
        return f"parallel: {bar.name}"
    if bar.kind == "dispatch":
        return f"emit {bar.name}"
    return bar.name


def _summary(timeline: Timeline) -> str:
    real, one_by_one = timeline.elapsed, timeline.sequential
    text = f"ran in {real:.1f} ms; {ESTIMATE} {one_by_one:.1f} ms"
    if real > 0 and one_by_one > real * 1.05:
        text += f" ({one_by_one / real:.1f}x longer)"
    failures = len(timeline.failures)
    if failures:
        text += f"; {failures} failure{'s' if failures > 1 else ''}"
    return text


def _page(timeline: Timeline, svg: str) -> str:
    failed = "".join(
        f"<tr><td>{html.escape(b.kind)}</td><td>{html.escape(b.name)}</td>"
        f"<td>{html.escape(str(b.failure))}</td><td>{b.duration:.1f} ms</td></tr>"
        for b in timeline.failures)
    table = ("<h2>Failures</h2><table><tr><th>what</th><th>name</th><th>failure</th>"
             f"<th>after</th></tr>{failed}</table>") if failed else ""
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(timeline.title)}</title><style>body{{font-family:sans-serif;"
            "margin:2em}td,th{padding:2px 10px;text-align:left}</style></head><body>"
            f"<h1>{html.escape(timeline.title)}</h1><p>{html.escape(_summary(timeline))}</p>"
            f"{svg}{table}</body></html>\n")
