"""Whatever the program, the pipeline answers with a run or a diagnostic, never a traceback.

``make test`` runs a short pass; ``make fuzz`` (CX_FUZZ_EXAMPLES=5000) a long one.
"""

from __future__ import annotations

import io
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxlang.program import ExitCode, RunOptions, run_source

from .strategies import mutated, programs

# The strategies are deep; Hypothesis warns that printing them is long, which is harmless.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
EXAMPLES = int(os.environ.get("CX_FUZZ_EXAMPLES", "60"))
POSITIONED = re.compile(r"^fuzz\.cx:\d+:\d+: ", re.MULTILINE)
PYTHON_LEAKS = ("Traceback", "object at 0x", "<class ", "<function ", "NameError",
                "UnboundLocalError", "AttributeError", "TypeError:")


def check(program: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = run_source(program, "fuzz.cx", RunOptions(out=out, err=err, timeout=2.0))
    text = err.getvalue()
    # A generated program may also loop forever on its own terms: the time limit is then a
    # clean answer too, with its own message.
    assert code in set(ExitCode), (code, text)
    if code == ExitCode.TIME_LIMIT:
        assert "time limit of" in text, text
    for leak in PYTHON_LEAKS:
        assert leak not in text and leak not in out.getvalue(), (leak, program, text)
    if code == ExitCode.BAD_PROGRAM:
        assert POSITIONED.search(text), text
    if code == ExitCode.RUNTIME_ERROR:  # a run-time error, or a failure nothing handles
        assert POSITIONED.search(text), text


fuzz_settings = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])


@fuzz_settings
@given(programs)
def test_generated_programs(program: str) -> None:
    check(program)


@fuzz_settings
@given(programs, st.data())
def test_mutated_programs(program: str, data: st.DataObject) -> None:
    check(mutated(program, data))
