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
        return "error: " + err.getvalue().split("): " if "handler" in err.getvalue() else
                                                "at the top level: ")[1].split("\n")[0]
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


whole = st.integers(-50, 50)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(OPERATORS)), whole, whole, whole)
def test_whole_number_locals_agree_with_the_prelude(op: str, a: int, b: int, c: int) -> None:
    """Inside a handler, locals that only hold whole numbers take Python's operators bare."""
    def inside(body: str) -> str:
        return f"on system.start {{ {body} }}"

    expression = expected(op, prelude.add(a, prelude.mul(b, 2)), c)
    assert run(inside(f"var a = {a}; var b = {b}; var c = {c}; print((a + b * 2) {op} c);")) \
        == expression
    if op in "+-*%":
        loop = f"var t = {a}; var i = 0; while (i < 3) {{ t {op}= {c}; i += 1; }} print(t);"
        want = a
        for _ in range(3):
            step = expected(op, want, c)
            if step.startswith("error"):
                want = step
                break
            want = int(step)
        assert run(inside(loop)) == (want if isinstance(want, str) else str(want))


def test_a_var_in_a_branch_not_taken_is_null_not_a_python_error() -> None:
    program = "on system.start { if (false) { var x = 1; } print(x); var y = 2; print(y + 1); }"
    assert run(program) == "null\n3"
