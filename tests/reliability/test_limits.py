"""Runaway programs end at a run limit: exit code 4, a message naming the limit and its flag.

Each program here would otherwise run until killed (or until memory runs out). The limits are
set low so the tests stay quick; docs/reliability.md has the same programs at the defaults.
"""

from __future__ import annotations

import asyncio
import io
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from cxlang import LimitExceeded, Runtime
from cxlang.program import ExitCode, RunOptions, run_source
from cxlang.program.watchdog import resident_bytes

from ..language._helpers import FILENAME, Result, leaks

SELF_EMITTING = "on loop.tick (e) { emit loop.tick; }\nemit loop.tick;\n"
FAN_OUT = "on boom (e) { emit boom; emit boom; }\nemit boom;\n"
NESTED_SERVICES = """
on deep.call (e) { var r = think { prompt: "x", inner: deep.call }; return r; }
var r = think { prompt: "x", inner: deep.call };
"""
LIMITS = RunOptions(max_events=20_000, max_depth=1_000, max_payload=1_000_000,
                    max_memory=None)


def run(source: str, options: RunOptions = LIMITS, *, timeout: float = 30.0) -> Result:
    """Run *source* under *options* (low limits); the time limit keeps a failure finite."""
    out, err = io.StringIO(), io.StringIO()
    code = run_source(source, FILENAME, replace(options, out=out, err=err, timeout=timeout))
    return Result(int(code), out.getvalue(), err.getvalue())


def assert_limit(result: Result, kind: str, flag: str | None) -> None:
    assert result.code == ExitCode.LIMIT, result.err
    assert f"{kind} limit reached" in result.err
    if flag is not None:
        assert f"raise it with {flag}" in result.err
    assert result.err.count("limit reached") == 1, "reported once, not by every handler"
    assert not leaks(result.err)


def test_an_event_that_emits_itself_stops_at_the_depth_limit() -> None:
    result = run(SELF_EMITTING)
    assert_limit(result, "depth", "--max-depth")
    assert "1,001 causal hops" in result.err


def test_without_a_depth_limit_it_stops_at_the_event_limit() -> None:
    result = run(SELF_EMITTING, replace(LIMITS, max_depth=None))
    assert_limit(result, "event", "--max-events")
    assert "20,000 events handled" in result.err


def test_exponential_fan_out_stops_at_the_event_limit() -> None:
    assert_limit(run(FAN_OUT), "event", "--max-events")


def test_service_calls_nested_without_waiting_stop_with_advice() -> None:
    result = run(NESTED_SERVICES, replace(LIMITS, max_depth=None))
    assert_limit(result, "depth", None)
    assert "let it wait" in result.err
    assert "RecursionError" not in result.err


def test_the_same_nesting_that_waits_stops_at_the_depth_limit() -> None:
    options = replace(LIMITS, max_depth=50, latency=0.001)
    assert_limit(run(NESTED_SERVICES, options), "depth", "--max-depth")


@pytest.mark.parametrize("growth", [
    'var s = "x"; while (true) { s = s + s; }',
    'var a = []; while (true) { a.push(1); }',
    'var a = []; var i = 0; while (true) { a[i] = i; i += 1; }',
    'var a = [1]; while (true) { a = a + a; }',
    'var s = "xxxxxxxxxx"; while (true) { s = s.replace("x", "xx"); }',
    'var s = "x"; while (s.length < 200000) { s = s + s; } var a = [s, s, s, s, s, s]; '
    'print(a.join("").length);',
], ids=["string doubling", "push", "index past the end", "array doubling", "replace", "join"])
def test_values_that_grow_without_end_stop_at_the_payload_limit(growth: str) -> None:
    result = run(growth)
    assert_limit(result, "payload", "--max-payload")
    assert "(the limit is 1,000,000)" in result.err


def test_an_event_payload_over_the_limit_is_refused() -> None:
    source = ('var s = "x"; while (s.length < 400000) { s = s + s; }\n'
              'emit big { a: s, b: s, c: s };\n')
    result = run(source)
    assert_limit(result, "payload", "--max-payload")
    assert "the payload of 'big'" in result.err


def test_a_self_containing_payload_is_measured_without_end() -> None:
    source = "var o = {}; o.me = o; var i = 0;\nemit big { o: o };\n"
    assert_limit(run(source), "payload", "--max-payload")


def test_memory_past_the_limit_stops_a_loop_that_never_waits() -> None:
    base = resident_bytes()
    if base is None:
        pytest.skip("no /proc/self/statm here")
    # Strings under the payload limit, kept in an array: only the memory limit stops it.
    source = ('var s = "x"; while (s.length < 500000) { s = s + s; }\n'
              'var keep = []; var i = 0;\n'
              'while (true) { keep.push(s + i); i += 1; }\n')
    result = run(source, replace(LIMITS, max_payload=None, max_memory=base + 200 * 2**20))
    assert_limit(result, "memory", "--max-memory")


def test_memory_past_the_limit_stops_handlers_that_wait() -> None:
    base = resident_bytes()
    if base is None:
        pytest.skip("no /proc/self/statm here")
    source = ('var s = "x"; while (s.length < 500000) { s = s + s; }\n'
              'var keep = [];\n'
              'on grow (e) { keep.push(s + e.i); await { durationMs: 1 }; '
              'emit grow { i: e.i + 1 }; }\n'
              'emit grow { i: 0 };\n')
    options = replace(LIMITS, max_payload=None, max_depth=None, max_events=None,
                      max_memory=base + 150 * 2**20)
    assert_limit(run(source, options), "memory", "--max-memory")


def test_programs_under_the_limits_run_as_before() -> None:
    source = ("on step (e) { if (e.n < 999) { emit step { n: e.n + 1 }; } "
              "else { print(e.n); } }\nemit step { n: 0 };\n")
    result = run(source)
    assert (result.code, result.out, result.err) == (0, "999\n", "")
    at_the_bound = run(source, replace(LIMITS, max_depth=999))
    assert at_the_bound.code == 0, at_the_bound.err


async def test_the_library_raises_the_limit_from_run_until_idle_and_later_emits() -> None:
    async with Runtime(max_depth=100) as runtime:
        seen: list[int] = []

        @runtime.on("again")
        async def again(event: object) -> None:
            seen.append(1)
            runtime.emit("again")

        failures: list[object] = []
        runtime.on("system.error", failures.append, inline=True)
        runtime.emit("again")
        with pytest.raises(LimitExceeded, match=r"depth limit .* max_depth=\.\.\."):
            await asyncio.wait_for(runtime.run_until_idle(), 30)
        assert len(seen) == 101
        with pytest.raises(LimitExceeded):
            runtime.emit("anything")
        assert failures == [], "a limit is not a handler failure"


async def test_the_library_event_limit_counts_exactly() -> None:
    async with Runtime(max_events=1_000) as runtime:
        handled = [0]

        def count(event: object) -> None:
            handled[0] += 1

        runtime.on("tick", count, inline=True)
        for _ in range(1_500):
            await runtime.emit_async("tick")
        with pytest.raises(LimitExceeded, match="1,000 events handled"):
            await asyncio.wait_for(runtime.run_until_idle(), 30)
        assert handled[0] == 1_000


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_events must be at least 1"):
        Runtime(max_events=0)


def test_cx_run_flags_set_the_limits_and_exit_4() -> None:
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "run", "-",
                           "--max-depth", "0", "--max-events", "5_000"],
                          input=SELF_EMITTING, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip() == ("<stdin>: event limit reached: 5,000 events handled (the "
                                   "next was 'loop.tick'); raise it with --max-events "
                                   "(0: no limit)")


@pytest.mark.parametrize("flag", ["--max-events=lots", "--max-payload=10XB"])
def test_cx_run_refuses_a_limit_it_cannot_read(flag: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "run", "-", flag],
                          input="print(1);", capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "write it like" in done.stderr


def test_defaults_are_documented_values() -> None:
    options = RunOptions()
    assert (options.max_events, options.max_depth, options.max_payload) == \
        (1_000_000, 10_000, 10_000_000)
    assert options.max_memory is None or options.max_memory > 0
    assert math.isinf(options.timeout)


async def test_a_fan_out_that_outgrows_the_queue_stops_at_the_queue_limit() -> None:
    async with Runtime(max_queue=100) as runtime:

        @runtime.on("boom")
        async def boom(event: object) -> None:
            await runtime.emit_async("boom")
            await runtime.emit_async("boom")

        runtime.emit("boom")
        with pytest.raises(LimitExceeded, match="queue limit reached: 100 events queued"):
            await asyncio.wait_for(runtime.run_until_idle(), 30)
