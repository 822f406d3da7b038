"""No failure passes in silence: what nothing in the program handles is reported at its CX
position and makes the run exit 1; what the program handles stays quiet.

A parallel parameter's failure is handled by a handler of the service's error event, or by
reading ``_errors`` of the call's result (in the function around the call, or in a handler of
its completion events); a failed service call by a handler of its error event. Control values
are checked (literals when compiling), and a property spelt like a service word is a warning.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from cxlang.cli.main import main
from cxlang.program import RunOptions, run_source
from cxlang.services import BackendSettings

from ._helpers import FILENAME, leaks, run

SLOW = "on w.slow (e) { await { durationMs: 2000 }; return 1; }\n"
FINE = "on w.fine (e) { return 2; }\n"
BAD = "on w.bad (e) {\n    var rules = null;\n    return rules.count + 1;\n}\n"


def call(extra: str = "", handlers: str = "") -> str:
    """A think call with a slow, a fine and a missing parameter (line 6 of the programs)."""
    listed = f", handlers: [ {handlers} ]" if handlers else ""
    return (f'think {{ prompt: "p", timeout: 50, slow: w.slow, fine: w.fine, '
            f"missing: nobody.here{extra}{listed} }};\n")


# Unhandled: reported, exit 1 ------------------------------------------------------------------


def test_unhandled_timeout_and_missing_handler_are_reported_at_their_parameters() -> None:
    source = SLOW + FINE + BAD + call() + 'on thinking.complete (e) { print(e.fine); }\n'
    result = run(source, timeout=30)
    assert result.code == 1
    assert result.out_lines == ["2"]  # the program still ran to its end
    reports = [line for line in result.err.splitlines() if line.startswith("prog.cx:")]
    assert len(reports) == 2
    slow, missing = reports
    line = call()
    assert slow.startswith(f"prog.cx:7:{line.index('slow:') + 1}: the think call's parameter "
                           "'slow' failed (timed out)")
    assert "did not finish within 0.05 s" in slow
    assert missing.startswith(f"prog.cx:7:{line.index('missing:') + 1}: the think call's "
                              "parameter 'missing' failed (no handler)")
    # Each says how to handle it instead.
    for report in reports:
        assert "nothing handles it: add on thinking.error, or read _errors of the call's " \
               "result in on thinking.complete" in report
    assert "    ^~~~\n" in result.err  # a caret under `slow`
    assert leaks(result.err, source) == []


def test_an_unhandled_error_is_reported_where_the_handler_raised() -> None:
    source = BAD + 'think { prompt: "p", bad: w.bad, handlers: [ done ] };\n' \
        'on done (e) { print(e.bad); }\n'
    result = run(source)
    assert result.code == 1
    assert result.out_lines == ["null"]
    assert result.err.startswith("prog.cx:3:12: runtime error in the think call's parameter "
                                 "'bad' at prog.cx:5:1 (nothing handles it: add on "
                                 "thinking.error, or read _errors of the call's result in on "
                                 "done): cannot apply '+' to null and a number")
    assert "return rules.count + 1;" in result.err
    assert leaks(result.err, source) == []


def test_a_run_whose_branches_all_time_out_exits_1() -> None:
    source = SLOW + 'var r = think { prompt: "p", timeout: 20, a: w.slow, b: w.slow };\n' \
        'print(r.a);\n'
    result = run(source, timeout=30)
    assert result.out_lines == ["null"]
    assert result.code == 1
    assert result.err.count("failed (timed out)") == 2


def test_reading_errors_somewhere_unrelated_does_not_handle_a_call() -> None:
    source = SLOW + call(handlers="done") + 'on done (e) { print(e.fine); }\n' \
        'on other.thing (e) { print(e._errors); }\n'
    assert run(source, timeout=30).code == 1


def test_fail_fast_reports_the_failure_not_the_siblings_it_cancelled() -> None:
    source = SLOW + BAD + 'think { prompt: "p", failFast: true, slow: w.slow, bad: w.bad };\n'
    result = run(source, timeout=30)
    assert result.code == 1
    assert "parameter 'bad'" in result.err
    assert "parameter 'slow'" not in result.err


def test_many_failed_parameters_are_reported_five_and_counted() -> None:
    names = ", ".join(f"p{i}: none.p{i}" for i in range(8))
    result = run(f'think {{ prompt: "p", {names} }};\n')
    assert result.code == 1
    assert result.err.count("failed (no handler)") == 5
    assert "and 3 more of the think call's parameters failed" in result.err


def test_generate_names_its_own_events_in_the_advice() -> None:
    result = run('generate { prompt: "p", a: none.here };\n')
    assert result.code == 1
    assert "add on ai.generate.error, or read _errors of the call's result in on " \
           "ai.generated" in result.err


# Handled: quiet, exit 0 -----------------------------------------------------------------------


@pytest.mark.parametrize("handling", [
    pytest.param('on thinking.error (e) { print(e.failedHandlers); }\n', id="error event"),
    pytest.param('on any.error (e) { print(e.failedHandlers); }\n', id="wildcard error event"),
    pytest.param('on thinking.complete (e) { print(e._errors.slow.type); }\n',
                 id="_errors in the default completion"),
    pytest.param('on thinking.complete (e) { print(e["_errors"]); }\n', id="_errors by index"),
])
def test_handled_failures_stay_quiet(handling: str) -> None:
    result = run(SLOW + FINE + "\n\n" + call() + handling, timeout=30)
    assert (result.code, result.err) == (0, "")
    assert len(result.out_lines) == 1


def test_reading_errors_in_a_listed_completion_handler_handles_the_call() -> None:
    source = SLOW + FINE + call(handlers="review.done") + \
        'on review.done (e) { print(e._errors.missing.type); }\n'
    result = run(source, timeout=30)
    assert (result.code, result.err, result.out_lines) == (0, "", ["no_handler"])


def test_reading_errors_of_the_result_where_the_call_is_handles_it() -> None:
    source = SLOW + 'on go (e) {\n    var r = think { prompt: "p", timeout: 20, a: w.slow };\n' \
        '    if (r._errors) { print("handled: " + r._errors.a.type); }\n}\nemit go;\n'
    result = run(source, timeout=30)
    assert (result.code, result.err, result.out_lines) == (0, "", ["handled: timeout"])


def test_an_entity_handler_reading_errors_handles_the_call() -> None:
    source = SLOW + 'conscious Auditor {\n    on audit.done (e) { print(e._errors.a.type); }\n}\n' \
        'var auditor = new Auditor({});\n' \
        'think { prompt: "p", timeout: 20, a: w.slow, handlers: [ audit.done ] };\n'
    result = run(source, timeout=30)
    assert (result.code, result.err, result.out_lines) == (0, "", ["timeout"])


def test_every_failed_branch_is_logged_at_info_even_when_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = SLOW + FINE + call() + 'on thinking.error (e) { }\n'
    with caplog.at_level(logging.INFO, logger="cxlang.program"):
        result = run(source, timeout=30)
    assert result.code == 0
    logged = [r.getMessage() for r in caplog.records if r.name == "cxlang.program"]
    assert any("think at prog.cx:3:1: parameter 'slow' failed (timeout)" in m for m in logged)
    assert any("parameter 'missing' failed (no_handler)" in m for m in logged)


# A failed service call ------------------------------------------------------------------------


def run_on_a_dead_server(source: str) -> tuple[int, str, str]:
    """Run *source* on the openai backend aimed at a loopback port nothing listens on."""
    settings = BackendSettings(backend="openai", model="m", base_url="http://127.0.0.1:9/v1",
                               connect_timeout=2.0, max_retries=0)
    out, err = io.StringIO(), io.StringIO()
    code = run_source(source, FILENAME, RunOptions(backend="openai", settings=settings,
                                                    out=out, err=err, timeout=30))
    return int(code), out.getvalue(), err.getvalue()


def test_an_unhandled_service_failure_is_reported_at_the_call() -> None:
    code, out, err = run_on_a_dead_server('print("before");\nthink { prompt: "p" };\n')
    assert code == 1
    assert out == "before\n"
    assert err.startswith("prog.cx:2:1: think failed: openai backend at http://127.0.0.1:9/v1: ")
    assert "(nothing handles it: add on thinking.error)" in err
    assert "    ^~~~~\n" in err
    assert leaks(err) == []


def test_a_handled_service_failure_emits_its_error_event_quietly() -> None:
    code, out, err = run_on_a_dead_server(
        'think { prompt: "p" };\non thinking.error (e) { print(e.service); }\n'
        'on thinking.complete (e) { print("not complete"); }\n')
    assert (code, out, err) == (0, "think\n", "")


# Control values -------------------------------------------------------------------------------


@pytest.mark.parametrize(("prop", "expected"), [
    ('timeout: "soon"', "timeout must be a positive number of milliseconds"),
    ("timeout: -1", "timeout must be a positive number of milliseconds"),
    ("maxConcurrency: 0", "maxConcurrency must be a whole number of at least 1"),
    ("maxConcurrency: 1.5", "maxConcurrency must be a whole number of at least 1"),
    ('failFast: "yes"', "failFast must be true or false"),
    ("stream: 1", "stream must be true or false"),
    ("recall: -2", "recall must be a whole number >= 0"),
    ("temperature: -0.5", "temperature must be a number >= 0"),
    ("maxTokens: 0", "maxTokens must be a whole number of at least 1"),
])
def test_a_literal_control_value_a_call_does_not_take_is_a_compile_error(
    prop: str, expected: str,
) -> None:
    result = run(f'print("never");\nthink {{ prompt: "p", {prop} }};\n')
    assert result.code == 2
    assert result.out == ""
    column = len('think { prompt: "p", ') + len(prop.split(": ", maxsplit=1)[0]) + 3
    assert result.err.startswith(f"prog.cx:2:{column}: {expected}")


def test_an_await_with_a_bad_duration_is_a_compile_error() -> None:
    result = run('await { durationMs: "long" };\n')
    assert result.code == 2
    assert "durationMs must be a number of milliseconds >= 0, got \"long\"" in result.err


def test_a_computed_control_value_is_checked_when_the_call_runs() -> None:
    result = run('var t = "soon";\nvar r = think { prompt: "p", timeout: t };\nprint(r);\n')
    assert result.code == 1
    assert result.out_lines == ["null"]  # the call's value, as a failed call's
    assert result.err.startswith("prog.cx:2:9: runtime error in the think call: timeout must "
                                 "be a positive number of milliseconds")


def test_good_control_values_pass() -> None:
    result = run('print(think { prompt: "p", timeout: 500, maxConcurrency: 2, failFast: false, '
                 'stream: false, recall: 0, temperature: 0, maxTokens: 5 });\n')
    assert (result.code, result.err) == (0, "")


# Misspelt properties --------------------------------------------------------------------------


def test_a_property_spelt_like_a_service_word_is_a_warning() -> None:
    result = run('print(think { promt: "p", userId: 7 });\n')
    assert result.code == 0
    assert result.out_lines == ["Thought about: "]
    assert result.err.startswith("prog.cx:1:15: warning: think does not read 'promt', so it "
                                 "reaches the handlers as data; did you mean 'prompt'?")
    assert result.err.count("warning") == 1  # userId is data, and looks like no service word


@pytest.mark.parametrize(("flags", "code"), [([], 0), (["--strict"], 2)])
def test_cx_check_prints_warnings_and_strict_makes_them_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str],
    code: int,
) -> None:
    program = tmp_path / "prog.cx"
    program.write_text('think { prompt: "p", maxtokens: 5 };\n')
    assert main(["check", *flags, str(program)]) == code
    err = capsys.readouterr().err
    assert "warning: think does not read 'maxtokens'" in err
    assert "did you mean 'maxTokens'?" in err


def test_timeouts_say_how_long_the_branch_waited_for_the_model() -> None:
    # The parameters hang off a timer (await), whose own wait the call's timeout does not cut.
    source = ('on w.a (e) { return think { prompt: "a" }; }\n'
              'await { durationMs: 1, timeout: 100, a: w.a };\n')
    result = run(source, latency=0.5, timeout=30)
    assert result.code == 1
    assert "s waiting for the local backend's model, which counts against its time" \
        in result.err


def test_a_calls_timeout_bounds_its_model_call_even_in_a_handlers_first_step() -> None:
    """A compiled handler's first step runs in no task (where asyncio.timeout cannot be used):
    the call's timeout still cuts the model call, with a CX message."""
    source = 'on go (e) { var r = think { prompt: "p", timeout: 20 }; print(r); }\nemit go;\n'
    result = run(source, latency=0.5, timeout=30)
    assert result.code == 1
    assert result.out_lines == ["null"]
    assert result.err.startswith("prog.cx:1:21: think failed: local backend: the model did not "
                                 "answer within the call's timeout: of 20 ms; give the call a "
                                 "longer timeout:")
    assert leaks(result.err, source) == []
