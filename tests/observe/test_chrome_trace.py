"""The trace file: Chrome trace event format, lanes side by side, causal links."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import cxlang
from cxlang.cli.main import main
from cxlang.runtime.observe import ChromeTrace

EXAMPLES = Path(__file__).parents[2] / "examples"


def _spans(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in document["traceEvents"] if e["ph"] == "X" and e["cat"] == kind]


def _check_format(document: dict[str, Any]) -> None:
    """What Perfetto and chrome://tracing need of every event."""
    assert isinstance(document["traceEvents"], list)
    for event in document["traceEvents"]:
        assert event["ph"] in ("X", "M", "s", "f"), event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert isinstance(event["name"], str)
        if event["ph"] in ("X", "s", "f"):
            assert isinstance(event["ts"], int | float) and event["ts"] >= 0
        if event["ph"] == "X":
            assert event["dur"] >= 0
        if event["ph"] in ("s", "f"):
            assert isinstance(event["id"], int)


def _nests_per_lane(document: dict[str, Any]) -> None:
    """Complete events in one lane nest properly: the format draws them as a stack."""
    lanes: dict[int, list[dict[str, Any]]] = {}
    for event in document["traceEvents"]:
        if event["ph"] == "X":
            lanes.setdefault(event["tid"], []).append(event)
    for events in lanes.values():
        stack: list[tuple[float, float]] = []
        for e in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1][1] <= start and not end <= stack[-1][1]:
                stack.pop()
            assert not stack or end <= stack[-1][1] + 1e-3, (e, stack)
            stack.append((start, end))


@pytest.fixture(scope="module")
def parallel_trace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("trace") / "run.json"
    code = main(["run", str(EXAMPLES / "parallel_models.cx"), "--latency", "30ms",
                 "--trace", str(path), "--quiet"])
    assert code == 0
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_the_parallel_example_writes_a_valid_chrome_trace(
    parallel_trace: dict[str, Any],
) -> None:
    _check_format(parallel_trace)
    _nests_per_lane(parallel_trace)
    kinds = {e["cat"] for e in parallel_trace["traceEvents"] if e["ph"] == "X"}
    assert {"run", "dispatch", "handler", "call", "branch", "service"} <= kinds


def test_its_branches_overlap_in_time_in_lanes_side_by_side(
    parallel_trace: dict[str, Any],
) -> None:
    branches = _spans(parallel_trace, "branch")
    assert sorted(b["name"] for b in branches) == ["headline", "questions", "risks", "summary"]
    latest_start = max(b["ts"] for b in branches)
    earliest_end = min(b["ts"] + b["dur"] for b in branches)
    assert latest_start < earliest_end  # all four were running at one moment
    assert len({b["tid"] for b in branches}) == 4


def test_every_branch_links_to_its_call(parallel_trace: dict[str, Any]) -> None:
    (call,) = _spans(parallel_trace, "call")
    flows = [e for e in parallel_trace["traceEvents"] if e["ph"] in ("s", "f")]
    for branch in _spans(parallel_trace, "branch"):
        assert branch["args"]["parent"] == call["args"]["id"]
        assert branch["args"]["call"] == call["args"]["id"]
        start, end = (next(f for f in flows if f["id"] == branch["args"]["id"] and f["ph"] == p)
                      for p in ("s", "f"))
        assert start["tid"] == call["tid"]
        assert call["ts"] <= start["ts"] <= call["ts"] + call["dur"]
        assert end["tid"] == branch["tid"] and end["ts"] == branch["ts"]


def test_an_emit_links_to_the_handlers_it_started(parallel_trace: dict[str, Any]) -> None:
    by_id = {e["args"]["id"]: e for e in parallel_trace["traceEvents"] if e["ph"] == "X"}
    (done,) = [e for e in _spans(parallel_trace, "dispatch") if e["name"] == "report.assembled"]
    (handler,) = [e for e in _spans(parallel_trace, "handler")
                  if e["args"].get("parent") == done["args"]["id"]]
    start = next(f for f in parallel_trace["traceEvents"]
                 if f["ph"] == "s" and f["id"] == handler["args"]["id"])
    emitter = by_id[done["args"]["parent"]]  # the think call that emitted report.assembled
    assert emitter["cat"] == "service" and emitter["name"] == "think"
    assert start["tid"] == emitter["tid"]
    assert emitter["ts"] <= start["ts"] <= emitter["ts"] + emitter["dur"]


async def test_the_library_writes_the_trace_on_close(tmp_path: Path) -> None:
    path = tmp_path / "lib.json"
    rt = cxlang.Runtime(trace=path)

    @rt.on("slow.x")
    async def slow(event: cxlang.Event) -> None:
        await asyncio.sleep(10)

    @rt.on("fails.x")
    def fails(event: cxlang.Event) -> None:
        raise ValueError("boom")

    result = await rt.parallel({"slow": "slow.x", "fails": "fails.x", "none": "no.one"},
                               timeout=0.05)
    assert set(result.failures) == {"slow", "fails", "none"}
    assert not path.exists() or path.read_text() == ""
    await rt.aclose()
    document = json.loads(path.read_text())
    _check_format(document)
    failures = {b["name"]: b["args"]["failure"] for b in _spans(document, "branch")}
    assert failures == {"slow": "timeout", "fails": "error", "none": "no_handler"}


async def test_a_sink_object_sees_every_span_end() -> None:
    sink = ChromeTrace()
    async with cxlang.Runtime(trace=sink) as rt:
        rt.on("a.b", lambda event: 1, inline=True)
        rt.emit("a.b")
        await rt.run_until_idle()
    assert [s.kind for s in sink.spans] == ["handler", "dispatch"]
    assert sink.spans[0].name.endswith("<lambda>") and sink.spans[1].name == "a.b"


def test_an_unwritable_trace_path_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "p.cx"
    program.write_text('print("ran");\n')
    code = main(["run", str(program), "--trace", str(tmp_path / "missing" / "run.json")])
    assert code == 2
    captured = capsys.readouterr()
    assert "cannot write the trace" in captured.err and "ran" not in captured.out
