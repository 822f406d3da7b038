"""ChromeTrace: spans as a Chrome trace event file, for Perfetto and ``chrome://tracing``.

Each span is a complete event (``"ph": "X"``); its lane (``tid``) is chosen when the file is
written so that spans that ran at the same time sit side by side, one lane per concurrently
running branch or handler, and every lane nests properly (the format requires it). Causal
links are flow events: from the emit in the emitting handler to each handler it started, and
from a parallel call to each of its branches.

Each event's ``args`` hold the span's ``id``, its ``parent`` id, its ``kind``, its attributes
and, when it failed, ``failure`` (``error``, ``timeout``, ``no_handler``, ``cancelled``) and
``message``: enough for ``cx trace`` to draw the run without the runtime.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .span import Span

__all__ = ["ChromeTrace", "assign_lanes", "trace_events"]

_PID = 1


class ChromeTrace:
    """A :class:`~.span.Sink` that keeps every finished span and writes them on close."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 title: str = "cxlang") -> None:
        self.path = None if path is None else Path(path)
        self.title = title
        self.spans: list[Span] = []

    def started(self, span: Span) -> None:
        pass

    def ended(self, span: Span) -> None:
        self.spans.append(span)  # list.append is atomic: threads may end spans too

    def close(self) -> None:
        if self.path is not None:
            self.write(self.path)

    def document(self) -> dict[str, Any]:
        """The trace as the JSON object the format describes."""
        return {"traceEvents": trace_events(self.spans, self.title), "displayTimeUnit": "ms",
                "otherData": {"producer": "cxlang"}}

    def write(self, path: str | os.PathLike[str]) -> None:
        try:
            Path(path).write_text(json.dumps(self.document(), default=str), encoding="utf-8")
        except OSError as exc:
            raise OSError(f"cannot write the trace to {path}: {exc.strerror or exc}; "
                          "choose a writable path") from exc


def assign_lanes(spans: Iterable[Span]) -> dict[int, int]:
    """Span id -> lane. A span shares the lane of its nearest ancestor that is still the
    innermost open span there (so lanes nest); otherwise it takes the lowest empty lane."""
    lanes: list[list[Span]] = []  # per lane, the stack of spans open at the current time
    lane_of: dict[int, int] = {}
    for span in sorted(spans, key=lambda s: (s.start, -s.end, s.id)):
        for stack in lanes:
            while stack and _over_before(stack[-1], span):
                stack.pop()
        chosen = None
        ancestor = span.parent
        while ancestor is not None and chosen is None:
            lane = lane_of.get(ancestor.id)
            if lane is not None and lanes[lane] and lanes[lane][-1] is ancestor \
                    and ancestor.end >= span.end:
                chosen = lane
            ancestor = ancestor.parent
        if chosen is None:
            chosen = next((i for i, stack in enumerate(lanes) if not stack), len(lanes))
            if chosen == len(lanes):
                lanes.append([])
        lanes[chosen].append(span)
        lane_of[span.id] = chosen
    return lane_of


def _over_before(done: Span, span: Span) -> bool:
    """*done* ended before *span* began (a zero-length span at its very end still nests)."""
    return done.end < span.start or (done.end == span.start and span.end > span.start)


def trace_events(spans: list[Span], title: str) -> list[dict[str, Any]]:
    """Metadata, one complete event per span, and the flow events of the causal links."""
    if not spans:
        return []
    origin = min(s.start for s in spans)
    lane_of = assign_lanes(spans)

    def micros(t: float) -> float:
        return round((t - origin) * 1e6, 3)

    events: list[dict[str, Any]] = [
        {"ph": "M", "pid": _PID, "tid": 0, "name": "process_name", "args": {"name": title}}]
    for lane in sorted(set(lane_of.values())):
        events.append({"ph": "M", "pid": _PID, "tid": lane, "name": "thread_name",
                       "args": {"name": "main" if lane == 0 else f"lane {lane}"}})
        events.append({"ph": "M", "pid": _PID, "tid": lane, "name": "thread_sort_index",
                       "args": {"sort_index": lane}})
    for span in sorted(spans, key=lambda s: (s.start, s.id)):
        args: dict[str, Any] = {"id": span.id, "kind": span.kind, **span.attrs}
        if span.parent is not None:
            args["parent"] = span.parent.id
        if span.failure is not None:
            args["failure"] = span.failure.kind
            args["message"] = span.failure.message
        lane = lane_of[span.id]
        events.append({"ph": "X", "pid": _PID, "tid": lane, "name": span.name,
                       "cat": span.kind, "ts": micros(span.start),
                       "dur": micros(span.end) - micros(span.start), "args": args})
        cause = span.cause  # arrows to the handlers an emit started, not to their dispatch
        if cause is not None and cause.id in lane_of and span.kind != "dispatch":
            link = "branch" if span.kind == "branch" else "emit"
            events.append({"ph": "s", "pid": _PID, "tid": lane_of[cause.id], "id": span.id,
                           "name": link, "cat": link, "ts": micros(span.caused_at)})
            events.append({"ph": "f", "bp": "e", "pid": _PID, "tid": lane, "id": span.id,
                           "name": link, "cat": link, "ts": micros(span.start)})
    return events
