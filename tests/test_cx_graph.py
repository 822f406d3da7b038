"""``cx graph``: the event graph read from a program, checked on the examples for the edges it
must contain, and drawn by Graphviz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxlang.program.graph import EventGraph, event_graph
from cxlang.syntax import CxError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NEEDS_DOT = pytest.mark.skipif(
    shutil.which("dot") is None and not os.environ.get("CX_REQUIRE_GRAPHVIZ"),
    reason="Graphviz's dot is not installed (CI installs it)")


def edges(graph: EventGraph) -> set[tuple[str, str, str]]:
    """(source label, kind, target label) of every edge."""
    label = {v.id: v.label for v in graph.vertices.values()}
    return {(label[e.source], e.kind if not e.label else f"{e.kind}:{e.label}", label[e.target])
            for e in graph.edges}


def example(name: str) -> EventGraph:
    return event_graph((EXAMPLES / f"{name}.cx").read_text(), name)


def test_a_call_fans_out_to_its_parameters_and_joins_in_its_completion() -> None:
    found = edges(example("parallel_models"))
    call = "think 26:1"
    for name in ("summary", "risks", "headline", "questions"):
        assert (call, f"parallel:{name}", f"{name}.requested") in found
    assert (call, "joins", "report.assembled") in found
    assert (call, "fails", "thinking.error") in found
    assert ("top level", "calls", call) in found
    assert ("summary.requested", "delivers", "on summary.requested") in found
    assert ("on summary.requested", "calls", "think 7:19") in found
    assert ("report.assembled", "delivers", "on report.assembled") in found


def test_wildcard_handlers_receive_every_event_they_match() -> None:
    found = edges(example("events_and_wildcards"))
    assert ("top level", "emits", "order.created") in found
    assert ("on order.created", "emits", "order.paid") in found
    assert {("order.paid", "delivers", "on order.any"),
            ("order.created", "delivers", "on order.any"),
            ("order.paid", "delivers", "on any.paid")} <= found
    assert ("order.created", "delivers", "on any.paid") not in found


def test_entities_realize_and_their_handlers() -> None:
    found = edges(example("multi_agent"))
    assert ("top level", "creates", "Agent: realize") in found
    assert ("Agent: realize", "calls", "learn 6:9") in found
    assert ("panel.question", "delivers", "Agent: on panel.question") in found


def test_handlers_lists_tools_and_emitted_service_events() -> None:
    found = edges(event_graph(
        'on ask (e) {\n'
        '    var r = think { prompt: "p", a: x.go, handlers: [ done.one, done.two { k: 1 } ],\n'
        '                    tools: [ weather.lookup { description: "d" }, clock.now ] };\n'
        '}\n'
        'emit ai.generate { prompt: "q" };\n'
        'is { condition: true, handlers: [ yes.then ] };\n'))
    assert {("on ask", "calls", "think 2:13"), ("think 2:13", "parallel:a", "x.go"),
            ("think 2:13", "joins", "done.one"), ("think 2:13", "joins", "done.two"),
            ("think 2:13", "tool", "weather.lookup"), ("think 2:13", "tool", "clock.now"),
            ("top level", "calls", "generate 5:1"), ("generate 5:1", "joins", "ai.generated"),
            ("top level", "calls", "is 6:1"), ("is 6:1", "joins", "yes.then")} <= found
    assert ("think 2:13", "joins", "thinking.complete") not in found  # it lists its own


def test_a_program_that_does_not_compile_is_a_diagnostic() -> None:
    with pytest.raises(CxError):
        event_graph("print(missing);")


def cx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cxlang.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_mermaid_on_stdout_and_in_a_file(tmp_path: Path) -> None:
    done = cx("graph", str(EXAMPLES / "parallel_models.cx"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart LR\n")
    assert '==>|parallel: summary|' in done.stdout
    assert cx("graph", str(EXAMPLES / "parallel_models.cx"), "-o", "g.mmd",
              cwd=tmp_path).returncode == 0
    assert (tmp_path / "g.mmd").read_text() == done.stdout


def test_a_bad_program_or_output_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.cx").write_text("print(missing);\n")
    done = cx("graph", "bad.cx", cwd=tmp_path)
    assert done.returncode == 2
    assert "bad.cx:1:7: unknown variable 'missing'" in done.stderr
    done = cx("graph", str(EXAMPLES / "entities.cx"), "-o", "g.txt", cwd=tmp_path)
    assert done.returncode == 2 and "use .mmd, .dot, .svg, .png or .pdf" in done.stderr


@NEEDS_DOT
@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_graphviz_draws_the_picture(tmp_path: Path, suffix: str) -> None:
    done = cx("graph", str(EXAMPLES / "parallel_models.cx"), "-o", f"g{suffix}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"g{suffix}: 24 nodes, 24 edges")
    data = (tmp_path / f"g{suffix}").read_bytes()
    assert data.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in data


def test_without_graphviz_the_message_says_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no dot on it
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "graph",
                           str(EXAMPLES / "entities.cx"), "-o", "g.svg"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "needs Graphviz's dot (apt-get install graphviz" in done.stderr
