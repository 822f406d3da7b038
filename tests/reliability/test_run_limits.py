"""``cx run`` at its limits: a run stopped by ``--timeout`` or a run limit ends cleanly.

Exit code 3 (4 for a run limit), one line on stderr that names what was running in the
program's own terms, and nothing of Python's: no traceback, no "Exception in callback", no
"Task was destroyed but it is pending!", no "coroutine ... was never awaited". These failures
came at random (where the time limit's signal happened to land), so each program runs several
times, in subprocesses (signals and the interpreter's exit are part of what is tested), on
each event loop.
"""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxlang.program import ExitCode, RunOptions, run_source
from cxlang.program.event_loop import LoopChoice
from cxlang.services import ServiceRequest
from cxlang.services.local import LocalBackend

from ..language._helpers import leaks

RUNS = 5  # each program's runs, at once: the failures came at random
LOOPS: list[LoopChoice] = ["asyncio", "uvloop"] if importlib.util.find_spec("uvloop") \
    else ["asyncio"]
PYTHON_MARKERS = ("Traceback", "Exception in callback", "Task was destroyed", "never awaited",
                  "_TimeLimit", "Error", "Exception", "Interrupted", "QueueFull", "emit_async")
PYTHON_NAME = re.compile(r"\b_\w+|\b[A-Z][a-z0-9]+[A-Z]\w*")  # _private, CamelCase
TIME_LIMIT = re.compile(r"prog\.cx: time limit of 0\.5 s reached; still running: (.+)")


def start(program: Path, *flags: str, loop: LoopChoice) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cxlang.cli.main", "run", program.name,
                             "--loop", loop, *flags],
                            cwd=program.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run_often(tmp_path: Path, source: str, *flags: str) -> list[tuple[int, str]]:
    """Run *source* as prog.cx :data:`RUNS` times at once, on each loop in turn: exit code and
    stderr of each run."""
    program = tmp_path / "prog.cx"
    program.write_text(source, encoding="utf-8")
    runs = [start(program, *flags, loop=LOOPS[i % len(LOOPS)]) for i in range(RUNS)]
    results = []
    for run in runs:
        _, err = run.communicate(timeout=60)
        results.append((run.returncode, err))
    return results


def assert_clean(err: str) -> None:
    found = [marker for marker in PYTHON_MARKERS if marker in err]
    found += PYTHON_NAME.findall(err) + leaks(err)
    assert not found, f"Python on stderr ({found}):\n{err}"


BUSY_LOOP = "computing at line {line} without a pause (a loop that never waits?)"

BUSY = {
    "top level": ("print(1);\nwhile (true) {}\n", "the top level, " + BUSY_LOOP.format(line=2)),
    "handler": ("on tick.go (e) { while (true) {} }\nemit tick.go;\n",
                "handler at prog.cx:1 (on tick.go), " + BUSY_LOOP.format(line=1)),
    "realize": ("conscious Spinner {\n  realize() {\n    while (true) {}\n  }\n}\n"
                "var s = new Spinner({});\n",
                "realize of Spinner#1 at prog.cx:2, " + BUSY_LOOP.format(line=3)),
    "entity handler": ("object Counter {\n  on tick.go (e) { var n = 0; while (true) { n += 1; } }"
                       "\n}\nvar c = new Counter({});\nemit tick.go;\n",
                       "handler at prog.cx:2 (on tick.go) of Counter#1, " +
                       BUSY_LOOP.format(line=2)),
    "inline handler counting": ("on go (e) { var i = 0; while (true) { i = i + 1; } }\nemit go;\n",
                                "handler at prog.cx:1 (on go), " + BUSY_LOOP.format(line=1)),
    "c-style for": ("print(1);\nfor (var i = 0; ; i++) {}\n",
                    "the top level, " + BUSY_LOOP.format(line=2)),
    "c-style for that continues": ("on go (e) {\n  for (var i = 0; i < 1; i *= 1) { continue; }"
                                   "\n}\nemit go;\n",
                                   "handler at prog.cx:1 (on go), " + BUSY_LOOP.format(line=2)),
    "empty c-style for counting a property": (
        "object Counter {\n  var count = 0;\n  on tick.go (e) {\n    for (;;) { self.count++; }\n"
        "  }\n}\nvar c = new Counter({});\nemit tick.go;\n",
        "handler at prog.cx:3 (on tick.go) of Counter#1, " + BUSY_LOOP.format(line=4)),
    "parallel parameter": ("on a.req (e) { var i = 0; while (true) { i = i + 1; } }\n"
                           'var r = think { prompt: "x", r: a.req };\n',
                           "handler at prog.cx:1 (on a.req), " + BUSY_LOOP.format(line=1)),
    "after an await": ("on tick.go (e) {\n  await { durationMs: 10 };\n  while (true) {}\n}\n"
                       "emit tick.go;\n",
                       "handler at prog.cx:1 (on tick.go), " + BUSY_LOOP.format(line=3)),
    "after a service call": ('on tick.go (e) {\n  var r = think { prompt: "x" };\n'
                             "  while (true) {}\n}\nemit tick.go;\n",
                             "handler at prog.cx:1 (on tick.go), " + BUSY_LOOP.format(line=3)),
}


@pytest.mark.parametrize("where", list(BUSY))
def test_a_loop_that_never_waits_ends_at_the_time_limit(tmp_path: Path, where: str) -> None:
    source, running = BUSY[where]
    for code, err in run_often(tmp_path, source, "--timeout", "0.5"):
        assert_clean(err)
        assert (code, err.splitlines()) == \
            (3, [f"prog.cx: time limit of 0.5 s reached; still running: {running}"])


def test_a_program_that_floods_the_bus_ends_at_the_time_limit(tmp_path: Path) -> None:
    source = "on tick.go (e) { emit tick.go; emit tick.go; }\nemit tick.go;\n"
    for code, err in run_often(tmp_path, source, "--timeout", "0.5", "--max-events", "0",
                               "--max-depth", "0"):
        assert_clean(err)
        assert code == 3, err
        (line,) = err.splitlines()
        running = TIME_LIMIT.fullmatch(line)
        assert running is not None, line
        # Handlers waiting for room in the queue, or, if none waits, the events queued.
        assert re.fullmatch(r"handler at prog\.cx:1 \(on tick\.go\)( x [\d,]+)?|"
                            r"events still queued \([\d,]+ handled so far\)", running[1]), line


@pytest.mark.parametrize("loop", LOOPS)
def test_a_loop_kept_busy_outside_the_program_is_stopped_after_its_turn(
        monkeypatch: pytest.MonkeyPatch, loop: LoopChoice) -> None:
    # No line of the program runs while the backend holds the loop: the run cannot be stopped
    # in the program's code, so the loop is stopped once the backend lets go.
    async def busy(self: LocalBackend, request: ServiceRequest) -> str:
        until = time.monotonic() + 4.0  # past the limit, and the patience after it (2.25 s)
        while time.monotonic() < until:
            pass
        return "done"

    monkeypatch.setattr(LocalBackend, "complete", busy)
    err = io.StringIO()
    code = run_source('think { prompt: "x" };\n', "prog.cx",
                      RunOptions(timeout=0.5, loop=loop, out=io.StringIO(), err=err))
    assert_clean(err.getvalue())
    assert (code, err.getvalue().splitlines()) == (ExitCode.TIME_LIMIT, [
        "prog.cx: time limit of 0.5 s reached; still running: 1 service call(s), events still "
        "queued (0 handled so far)"])


def test_a_stop_leaves_the_trace_function_it_found() -> None:
    # The stop traces the program's lines for a moment: a debugger's or coverage's tracing
    # must be there again afterwards.
    def tracer(frame: object, event: str, arg: object) -> None:
        return None

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        err = io.StringIO()
        code = run_source("while (true) {}\n", "prog.cx",
                          RunOptions(timeout=0.3, out=io.StringIO(), err=err))
        after = sys.gettrace()
    finally:
        sys.settrace(before)
    assert (code, after) == (ExitCode.TIME_LIMIT, tracer), err.getvalue()


def test_a_full_queue_is_a_cx_error_at_its_position(tmp_path: Path) -> None:
    # Each call's completion is queued at once, and the loop never lets them be handled.
    source = 'while (true) { var r = think { prompt: "x", handlers: [ tick.done ] }; }\n'
    for code, err in run_often(tmp_path, source, "--timeout", "30"):
        assert_clean(err)
        assert (code, err.splitlines()) == (1, [
            "prog.cx:1:24: runtime error at the top level: event queue full (100,000 events "
            "waiting): the program emits faster than its handlers finish",
            '    while (true) { var r = think { prompt: "x", handlers: [ tick.done ] }; }',
            "                           ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"])


def test_a_run_limit_ends_the_run_with_exit_4(tmp_path: Path) -> None:
    source = "on tick.go (e) { emit tick.go; }\nemit tick.go;\n"
    for code, err in run_often(tmp_path, source, "--max-events", "100", "--timeout", "30"):
        assert_clean(err)
        assert (code, err.splitlines()) == (4, [
            "prog.cx: event limit reached: 100 events handled (the next was 'tick.go'); raise "
            "it with --max-events (0: no limit)"])


@pytest.mark.parametrize("flag", [["--timeout", "0"], ["--timeout", "-1"], ["--timeout=0ms"],
                                  ["--timeout=-0.5s"]], ids=" ".join)
def test_a_time_limit_of_nothing_is_a_bad_flag(tmp_path: Path, flag: list[str]) -> None:
    program = tmp_path / "prog.cx"
    program.write_text('print("ran");\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "run", program.name, *flag],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    value = flag[-1].removeprefix("--timeout=")
    assert done.stderr.splitlines()[-1] == (
        f"cx run: error: argument --timeout: {value!r} leaves the run no time; give a "
        "duration above 0, like 500ms or 10s, or leave --timeout out for no time limit")
