"""retry: on a service call: its failed parallel handler parameters run again."""

from __future__ import annotations

import json

import pytest

from cxlang.program.checks import compile_checked
from cxlang.syntax.diagnostics import CxError

from ._helpers import run

FLAKY = ('var runs = 0;\n'
         'on work.flaky (e) { runs = runs + 1; if (runs < 3) { return e.missing.x + 1; }\n'
         '  return "ok after " + runs; }\n'
         'on work.broken (e) { return e.missing.x + 1; }\n')


def test_a_flaky_branch_gets_its_result_and_a_broken_one_says_its_attempts() -> None:
    result = run(FLAKY + 'var r = think { prompt: "p", a: work.flaky, b: work.broken,\n'
                 '  retry: { attempts: 3, delayMs: 1 } };\n'
                 'print(r.a); print(r._errors.b);', timeout=30)
    assert result.code == 0, result.err
    assert result.out_lines[0] == "ok after 3"
    assert json.loads(result.out_lines[1]) == {
        "type": "error", "message": "cannot apply '+' to null and a number", "attempts": 3}


def test_without_retry_a_failure_has_no_attempts() -> None:
    result = run(FLAKY + 'var r = think { prompt: "p", b: work.broken };\n'
                 'print(r._errors.b);', timeout=30)
    assert json.loads(result.out_lines[0]) == {
        "type": "error", "message": "cannot apply '+' to null and a number"}


def test_a_timeout_is_retried_when_listed() -> None:
    source = ('var runs = 0;\n'
              'on work.slow (e) { runs = runs + 1; if (runs < 2) { await { durationMs: 5000 }; }\n'
              '  return "run " + runs; }\n'
              'var r = think { prompt: "p", timeout: 100, a: work.slow,\n'
              '  retry: { attempts: 2, delayMs: 1, on: ["error", "timeout"] } };\n'
              'print(r.a);')
    result = run(source, timeout=30)
    assert result.code == 0, result.err
    assert result.out_lines == ["run 2"]


def test_a_retry_value_made_at_run_time_is_checked_at_the_call() -> None:
    result = run('on work.a (e) { return 1; }\nvar n = 0;\n'
                 'think { prompt: "p", a: work.a, retry: { attempts: n } };', timeout=30)
    assert result.code != 0
    assert "retry's attempts must be a whole number of at least 1" in result.err


@pytest.mark.parametrize(("retry", "says", "column"), [
    ("{ attempts: 0 }", "retry's attempts must be a whole number of at least 1", 52),
    ('{ attempts: 2, on: ["timeout", "cancelled"] }', '"cancelled" cannot be retried', 59),
    ('{ attempts: 2, on: ["eror"] }', '"eror" is no failure kind', 59),
    ("{ attempts: 2, backoff: 0.5 }", "retry's backoff must be a number >= 1", 64),
    ("{ delayMs: 5 }", "retry needs attempts", 40),
    ("{ attempts: 2, tries: 3 }", "retry takes attempts, delayMs, backoff and on, not tries",
     62),
])
def test_a_literal_retry_that_makes_no_sense_is_a_compile_error(
    retry: str, says: str, column: int
) -> None:
    source = f'on work.a (e) {{ return 1; }}\nthink {{ prompt: "x", a: work.a, retry: {retry} }};'
    with pytest.raises(CxError) as caught:
        compile_checked(source, "prog.cx")
    (diagnostic,) = caught.value.diagnostics
    assert says in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (2, column)
