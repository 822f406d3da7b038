"""Run limits against hostile programs: each family a red-team pass found getting past a limit.

Each runs ``cx run`` in a subprocess (the limits' signals and the interpreter's exit are part
of what is tested) with generous bounds, and checks the exit code and the one line that names
the limit; a run that got past its limit would hang until the subprocess timeout, or exit 0.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxlang.compiler.prelude import eq
from cxlang.program import ExitCode, RunOptions, run_source
from cxlang.program.run import DEFAULT_MAX_CALLS

HANG = 60  # seconds: far past every run below, which stops within a few


def cx_run(tmp_path: Path, source: str, *flags: str) -> tuple[int, str, str]:
    program = tmp_path / "prog.cx"
    program.write_text(source, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "run", program.name, *flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=HANG,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def assert_no_python(err: str) -> None:
    for marker in ("Traceback", "Error", "Exception", "RecursionError", "recursion"):
        assert marker not in err, err


DOUBLING = 'var s = "x"; while (true) { s = s + s; }'
PAYLOAD_LINE = "prog.cx: payload limit reached:"


@pytest.mark.parametrize("source", [
    f"on go (e) {{ {DOUBLING} }}\nemit go;",  # in a handler: the limit was silently dropped
    f"on x.go (e) {{ {DOUBLING} }}\non main.go (e) {{ var r = think {{ prompt: \"p\", a: x.go }};"
    " print(r._errors); }\nemit main.go;",  # in a parallel branch whose errors are read
])
def test_the_payload_limit_holds_inside_handlers(tmp_path: Path, source: str) -> None:
    code, _, err = cx_run(tmp_path, source, "--max-payload", "1MB", "--timeout", "30")
    assert code == 4, err
    assert err.startswith(PAYLOAD_LINE) and "--max-payload" in err, err
    assert_no_python(err)


LONG = 'var s = "xxxxxxxxxxxxxxxx"; var i = 0; while (i < 16) { s = s + s; i = i + 1; }\n'


@pytest.mark.parametrize("grow", [
    # Each would allocate gigabytes in one step before the result's size was checked.
    'var a = []; i = 0; while (i < 100000) { a.push(1); i = i + 1; } print(a.join(s).length);',
    'print(s.replace("", s).length);',
    'var c = ","; i = 0; while (i < 22) { c = c + c; i = i + 1; } print(c.split(",").length);',
])
def test_one_step_growth_is_refused_before_it_is_built(tmp_path: Path, grow: str) -> None:
    code, _, err = cx_run(tmp_path, LONG + grow, "--max-memory", "400MB", "--timeout", "30")
    assert code == 4, err
    assert err.startswith(PAYLOAD_LINE) and "--max-payload" in err, err


SHARED = "var {0} = []; var i{0} = 0; while (i{0} < 40) {{ {0} = [{0}, {0}]; i{0} = i{0} + 1; }}\n"


def test_shared_structures_compare_without_walking_every_path(tmp_path: Path) -> None:
    # 2^40 paths each: Python's == walked them all, in one C call the time limit never stopped.
    source = SHARED.format("a") + SHARED.format("b") + "print(a == b); print(a == [a, 1]);"
    code, out, err = cx_run(tmp_path, source, "--timeout", "20")
    assert (code, out) == (0, "true\nfalse\n"), err


def test_writing_a_huge_shared_structure_stops_at_the_time_limit(tmp_path: Path) -> None:
    code, _, err = cx_run(tmp_path, SHARED.format("a") + "print(a);", "--timeout", "2")
    assert code == 3, err
    assert "time limit of 2 s reached" in err and "line 2" in err, err
    assert_no_python(err)


DEEP = "var {0} = []; var j{0} = 0; while (j{0} < 20000) {{ {0} = [{0}]; j{0} = j{0} + 1; }}\n"


@pytest.mark.parametrize(("compare", "expected"), [
    ("print(a == b);", "true"),  # was the "service calls nested" depth limit
    ("a.push(1); print(a == b);", "false"),
    ("print([1, a].includes(b));", "true"),
    ("var o = {}; o.self = o; var p = {}; p.self = p; print(o == p);", "true"),
])
def test_deep_and_self_containing_values_compare(tmp_path: Path, compare: str,
                                                 expected: str) -> None:
    code, out, err = cx_run(tmp_path, DEEP.format("a") + DEEP.format("b") + compare)
    assert (code, out, err) == (0, expected + "\n", "")


def test_a_nested_object_that_grows_without_end_stops_at_the_memory_limit(
        tmp_path: Path) -> None:
    code, _, err = cx_run(tmp_path, "var a = {}; while (true) { a = { x: a }; }",
                          "--max-memory", "300MB", "--timeout", "30")
    assert code == 4, err
    assert err.startswith("prog.cx: memory limit reached:"), err
    assert_no_python(err)


def test_equality_keeps_cx_rules_at_every_depth() -> None:
    assert not eq([1, {"x": True}], [1, {"x": 1}])  # Python's == says True == 1
    assert eq({"a": [1.0, "s"]}, {"a": [1, "s"]})
    assert not eq([[]], [{}])
    assert not eq([float("nan")], [float("nan")])
    assert not eq({"a": 1}, {"b": 1})


@pytest.mark.parametrize("flags", [["--max-calls", "300"], []], ids=["--max-calls 300",
                                                                      "the default"])
def test_a_fan_out_through_parallel_parameters_stops_at_the_calls_limit(
    flags: list[str],
) -> None:
    """Each handler starts a call whose two parameters run that handler again: the calls in
    flight double at every step, with no event count or depth to stop them."""
    source = 'on x.go (e) { think { prompt: "p", a: x.go, b: x.go }; }\nemit x.go;\n'
    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(out=out, err=err, timeout=60)
    if flags:
        options.max_calls = int(flags[1])
    code = run_source(source, "prog.cx", options)
    limit = "300" if flags else f"{DEFAULT_MAX_CALLS:,}"
    assert code == ExitCode.LIMIT, err.getvalue()
    assert err.getvalue() == (
        f"prog.cx: calls limit reached: {limit} service calls were in flight when a service "
        "statement began (a fan-out through handlers that call services which call them "
        "again); raise it with --max-calls (0: no limit)\n")


# Memory that runs out, and fan-outs at a limit: the end of the run itself must hold ------------

def cx_run_limited(tmp_path: Path, source: str, address_space: int,
                   *flags: str) -> tuple[int, str]:
    """``cx run`` under ``ulimit -v``: *address_space* bytes."""
    program = tmp_path / "prog.cx"
    program.write_text(source, encoding="utf-8")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "run", program.name, *flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=HANG,
                          check=False, preexec_fn=limit)
    return done.returncode, done.stderr


GROWING = {
    "a global object": "var a = {x: 1}; while (true) { a = { x: a, y: a }; }",
    "a handler's local": "on go (e) { var a = {x: 1}; while (true) { a = { x: a, y: a }; } }\n"
                         "emit go;",
    "a global array": "var a = [1]; while (true) { a = a + a; }",
    "a global string": 'var s = "x"; while (true) { s = s + s; }',
}


@pytest.mark.parametrize("source", GROWING.values(), ids=GROWING.keys())
def test_running_out_of_memory_is_the_memory_limit(tmp_path: Path, source: str) -> None:
    # Nothing watches (--max-memory 0): the MemoryError strikes wherever the next allocation
    # is, with what filled memory still held, and used to end in a traceback or a crash.
    code, err = cx_run_limited(tmp_path, source, 1_000_000_000, "--max-memory", "0",
                               "--max-payload", "0")
    assert code == 4, err
    assert err == ("prog.cx: memory limit reached: the process ran out of memory; set a lower "
                   "--max-memory, so that the watchdog stops the run first\n"), err


def test_an_address_space_limit_stops_the_run_before_it_runs_out(tmp_path: Path) -> None:
    # Service calls piling up in a loop that never waits: under ulimit -v, CPython crashed
    # (exit 139) or aborted once the limit was reached; the watchdog now stops it short of it.
    code, err = cx_run_limited(tmp_path, 'while (true) { think { prompt: "x" }; }',
                               400_000_000, "--max-calls", "0")
    assert code == 4, err
    assert err.startswith("prog.cx: memory limit reached: the process's address space "
                          "reached "), err
    assert "(ulimit -v); raise that limit, or make the program hold less\n" in err, err


FAN_OUT = 'on x.go (e) { var r = think { prompt: "p", a: x.go, b: x.go }; }\nemit x.go {};\n'


@pytest.mark.parametrize("flags", [[], ["--max-calls", "0"]], ids=["default", "no calls limit"])
def test_a_fan_out_ends_soon_after_the_time_limit(tmp_path: Path, flags: list[str]) -> None:
    # Depth first, never waiting, it kept running (and its teardown too) 13 s past --timeout 5.
    started = time.monotonic()
    code, _, err = cx_run(tmp_path, FAN_OUT, "--timeout", "5", *flags)
    took = time.monotonic() - started
    assert code == 3, err
    # What is named as still running depends on the instant the limit struck (a handler, or
    # nothing between two of them on a loaded machine); that it ends, and soon, does not.
    assert err.startswith("prog.cx: time limit of 5 s reached; still running: "), err
    assert_no_python(err)
    assert took < 5 + 10, took  # it ends within seconds; 10 s is for a busy machine


@pytest.mark.parametrize("flags", [["--latency", "1ms"], ["--max-memory", "300MB",
                                                          "--max-calls", "0"]],
                         ids=["calls", "memory"])
def test_a_fan_out_that_waits_ends_at_its_limit(tmp_path: Path, flags: list[str]) -> None:
    # At the calls limit, tearing down the calls in flight never ended (still running at 100 s).
    code, _, err = cx_run(tmp_path, FAN_OUT, "--timeout", "30", *flags)
    assert code == 4, err
    limit = "calls" if "--latency" in flags else "memory"
    assert err.startswith(f"prog.cx: {limit} limit reached: "), err
    assert_no_python(err)


def test_a_fan_out_at_the_calls_limit_ends_in_the_library_too(tmp_path: Path) -> None:
    # cx run leaves the process at a limit; run_source closes the runtime, whose teardown of
    # the calls in flight never ended. A subprocess, so that a hang is bounded.
    script = ("import sys\n"
              "from cxlang.program import RunOptions, run_source\n"
              f"code = run_source({FAN_OUT!r}, 'prog.cx', RunOptions(latency=0.001, "
              "max_calls=300, err=sys.stdout))\n"
              "print('exit', int(code))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=HANG, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "prog.cx: calls limit reached: 300 service calls were in flight when the think call "
        "at prog.cx:1:23 began (a fan-out through handlers that call services which call them "
        "again); raise it with --max-calls (0: no limit)\nexit 4\n"), done.stdout
    assert done.stderr == ""
