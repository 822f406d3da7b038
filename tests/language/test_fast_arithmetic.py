"""The inlined whole-number fast path gives exactly what the prelude's operators give."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cxlang.compiler import prelude
from cxlang.program import RunOptions, run_source

OPERATORS = {
    "+": prelude.add, "-": prelude.sub, "*": prelude.mul, "%": prelude.mod,
    "<": prelude.lt, "<=": prelude.le, ">": prelude.gt, ">=": prelude.ge,
    "==": prelude.eq, "!=": lambda a, b: not prelude.eq(a, b),
}
values = st.one_of(st.integers(-50, 50), st.floats(-5, 5, allow_nan=False), st.booleans(),
                   st.none(), st.sampled_from(["", "ab"]))


def literal(value: Any) -> str:
    return "null" if value is None else json.dumps(value)


def expected(op: str, left: Any, right: Any) -> str:
    try:
        return prelude.display(OPERATORS[op](left, right))
    except prelude.CxRuntimeError as exc:
        return f"error: {exc}"


def run(program: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    run_source(program, "fast.cx", RunOptions(out=out, err=err))
    if err.getvalue():
        return "error: " + err.getvalue().split("runtime error at the top level: ")[1].split(
            "\n")[0]
    return out.getvalue().strip()


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(OPERATORS)), values, values)
def test_names_and_constants_agree_with_the_prelude(op: str, left: Any, right: Any) -> None:
    want = expected(op, left, right)
    through_names = f"var a = {literal(left)}; var b = {literal(right)}; print(a {op} b);"
    with_constant = f"var a = {literal(left)}; print(a {op} {literal(right)});"
    compound = f"var a = {literal(left)}; a {op}= {literal(right)}; print(a);"
    assert run(through_names) == want
    assert run(with_constant) == want
    if op in "+-*%":
        assert run(compound) == want
