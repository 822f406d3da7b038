"""Hypothesis strategies that write CX programs from the grammar's own forms.

The programs are meant to be plausible, not correct: names may be undeclared, types may clash,
properties may be missing. Whatever comes out, the front end and the runtime must answer with a
clean run or a CX diagnostic, never a Python exception.
"""

from __future__ import annotations

import functools
import json

from hypothesis import strategies as st

NAMES = ["a", "b", "total", "xs", "o", "event", "self", "missing"]
EVENTS = ["job.start", "job.done", "analytics.complete", "report.ready", "any.thing"]
SERVICES = ["think", "learn", "infer", "generate", "chat", "adapt", "is", "not"]
BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "??"]
METHODS = ["push", "pop", "join", "includes", "indexOf", "slice", "toUpperCase", "trim",
           "split", "keys", "values", "has", "nope"]

literals = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-100, 100, allow_nan=False).map(lambda f: repr(round(f, 3))),
    st.text(alphabet="abc xyz\\n\"'", max_size=6).map(json.dumps),
    st.sampled_from(["true", "false", "null", "[]", "{}"]),
)
names = st.sampled_from(NAMES)
events = st.sampled_from(EVENTS)


@functools.cache
def expressions(depth: int = 3) -> st.SearchStrategy[str]:
    if depth <= 0:
        return st.one_of(literals, names)
    sub = expressions(depth - 1)
    return st.one_of(
        literals,
        names,
        st.tuples(sub, st.sampled_from(BINARY), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), sub).map(lambda t: f"{t[0]}{t[1]}"),
        st.tuples(names, st.sampled_from(["x", "length", "name", "__class__", "y"])).map(
            lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(sub, sub).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(names, st.sampled_from(["?.x", "?.length", "?.[0]", "?.y.z", "?.trim()"])).map(
            "".join),
        st.tuples(st.sampled_from(["++", "--"]), names, st.booleans()).map(
            lambda t: f"({t[0]}{t[1]})" if t[2] else f"({t[1]}{t[0]})"),
        st.lists(sub, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(["k", "n", "tag"]), sub), max_size=3).map(
            lambda ps: "{ " + ", ".join(f"{k}: {v}" for k, v in ps) + " }"),
        st.tuples(names, st.sampled_from(METHODS), st.lists(sub, max_size=2)).map(
            lambda t: f"{t[0]}.{t[1]}({', '.join(t[2])})"),
        st.tuples(st.sampled_from(SERVICES), sub).map(
            lambda t: f"{t[0]} {{ prompt: {t[1]}, condition: {t[1]} }}"),
    )


@functools.cache
def statements(depth: int = 2) -> st.SearchStrategy[str]:
    expr = expressions(2)
    simple = st.one_of(
        st.tuples(names, expr).map(lambda t: f"var {t[0]} = {t[1]};"),
        st.tuples(names, st.sampled_from(["=", "+=", "-=", "*=", "/=", "%="]), expr).map(
            lambda t: f"{t[0]} {t[1]} {t[2]};"),
        st.tuples(names, expr).map(lambda t: f"{t[0]}.x = {t[1]};"),
        expr.map(lambda e: f"print({e});"),
        st.tuples(events, expr).map(lambda t: f"emit {t[0]} {{ value: {t[1]} }};"),
        st.tuples(st.sampled_from(SERVICES), expr, events, events).map(
            lambda t: f"{t[0]} {{ prompt: {t[1]}, first: {t[2]}, timeout: 200, "
                      f"handlers: [ {t[3]} ] }};"),
        st.just("await { durationMs: 1 };"),
        st.just("return 1;"),
        st.tuples(names, st.sampled_from(["++", "--"])).map(lambda t: f"{t[0]}{t[1]};"),
        st.just("break;"),
        st.just("continue;"),
    )
    if depth <= 0:
        return simple
    block = st.lists(statements(depth - 1), max_size=3).map(" ".join)
    return st.one_of(
        simple,
        st.tuples(expr, block, block).map(lambda t: f"if ({t[0]}) {{ {t[1]} }} else {{ {t[2]} }}"),
        # Loops are bounded by construction so a run ends: a counter, then the body.
        st.tuples(st.integers(0, 10**9), st.integers(0, 5), block).map(
            lambda t: f"var i{t[0]} = 0; while (i{t[0]} < {t[1]}) {{ i{t[0]} += 1; {t[2]} }}"),
        st.tuples(expr, block).map(lambda t: f"for (var item in {t[0]}) {{ {t[1]} }}"),
        st.tuples(names, expr, block).map(lambda t: f"for ({t[0]} in {t[1]}) {{ {t[2]} }}"),
        st.tuples(st.integers(0, 10**9), st.integers(0, 5), block).map(
            lambda t: f"for (var j{t[0]} = 0; j{t[0]} < {t[1]}; j{t[0]}++) {{ {t[2]} }}"),
    )


def declarations() -> st.SearchStrategy[str]:
    body = st.lists(statements(1), max_size=4).map(" ".join)
    return st.one_of(
        statements(2),
        st.tuples(events, body).map(lambda t: f"on {t[0]} (event) {{ {t[1]} }}"),
        st.tuples(body, events, body).map(
            lambda t: f"conscious Agent {{ realize(self: conscious) {{ {t[0]} }} "
                      f"on {t[1]} (event) {{ {t[2]} }} }} "
                      "var agent = new Agent({ name: \"a\" });"),
    )


programs = st.lists(declarations(), min_size=1, max_size=6).map("\n".join)
"""Whole programs (built once: a strategy tree made per draw would be rebuilt every time)."""


def mutated(program: str, data: st.DataObject) -> str:
    """Delete, duplicate or swap a slice of a valid program: the shapes users mistype."""
    if not program:
        return program
    start = data.draw(st.integers(0, len(program) - 1))
    end = data.draw(st.integers(start, min(len(program), start + 12)))
    how = data.draw(st.sampled_from(["delete", "duplicate", "insert"]))
    if how == "delete":
        return program[:start] + program[end:]
    if how == "duplicate":
        return program[:end] + program[start:end] + program[end:]
    junk = data.draw(st.sampled_from(["{", "}", ";", "(", ")", ".", ",", "@", "\"", "/*", "//"]))
    return program[:start] + junk + program[start:]
