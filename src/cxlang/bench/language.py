"""Scenarios of the language: compile time of a large program, and a CX hot loop.

``compile``: a generated 2,000-line program in the dialect's common forms (handlers, entities,
service calls with parallel parameters, loops, conditions), parsed and compiled to a code
object. The grammar is loaded before timing (a one-time cost per process, from its cache);
the target is under 0.3 s.

``hotloop``: the same arithmetic loop as a CX handler and as a plain Python function. CX
values keep their own semantics (``true + 1`` is an error, ``7 / 2`` is ``3.5``), so some cost
over Python is expected; the ratio is the figure.
"""

from __future__ import annotations

import io
import time

from ..compiler import compile_program
from ..program import RunOptions, run_program
from ..syntax.grammar import get_grammar
from .measure import Budget, interleaved, run_async
from .model import Comparison, Quantity, ScenarioResult, Unit, ratio_at_most, value_below

__all__ = ["compile_time", "generated_program", "hot_loop"]

LINES = 2_000
ITERATIONS = 200_000


def generated_program(lines: int = LINES) -> str:
    """A program of about *lines* lines that uses the dialect's common forms."""
    parts: list[str] = []
    count = 0
    i = 0
    while count < lines:
        block = f"""conscious Worker{i} {{
    var done = 0;
    realize(self: conscious) {{ print("worker " + self.name + " ready"); }}
    on job{i}.assigned (event) {{
        self.done += 1;
        emit job{i}.accepted {{ by: self.name, count: self.done }};
    }}
}}
on step{i}.go (event) {{
    var total = 0;
    for (var x in event.items) {{ total += x * 2; }}
    if (total > 10 && event.flag) {{ print("big " + total); }} else {{ print("small"); }}
    var i = 0;
    while (i < 3) {{ i += 1; if (i == 2) {{ continue; }} }}
    var r = think {{
        prompt: "step {i}: " + total,
        summary{i}: summary{i}.requested,
        risks{i}: risks{i}.requested,
        handlers: [ step{i}.finished, audit{i}.log {{ tag: "n{i}" }} ]
    }};
    return r;
}}
var w{i} = new Worker{i}({{ name: "w{i}" }});
"""
        parts.append(block)
        count += block.count("\n")
        i += 1
    return "".join(parts)


def compile_time(budget: Budget) -> list[ScenarioResult]:
    source = generated_program()
    get_grammar()  # the per-process grammar load is not part of compiling a program
    compile_program(source, "generated.cx")  # warm caches
    samples = []
    for _ in range(budget.slow_rounds):
        start = time.perf_counter()
        compile_program(source, "generated.cx")
        samples.append(time.perf_counter() - start)
    result = Quantity.median_of(samples, Unit.SECONDS)
    return [ScenarioResult(
        "compile",
        f"parse + compile {source.count(chr(10)):,} lines",
        result,
        (Comparison("budget", Quantity(0.3, Unit.SECONDS),
                    target=value_below(0.3, "< 0.3 s")),),
    )]


_HOT_LOOP_CX = f"""
on system.start {{
    var total = 0;
    var i = 0;
    while (i < {ITERATIONS}) {{
        if (i % 3 == 0) {{ total += i * 2; }} else {{ total -= 1; }}
        i += 1;
    }}
    print(total);
}}
"""


def _hot_loop_python() -> int:
    total = 0
    i = 0
    while i < ITERATIONS:
        if i % 3 == 0:
            total += i * 2
        else:
            total -= 1
        i += 1
    return total


def hot_loop(budget: Budget) -> list[ScenarioResult]:
    program = compile_program(_HOT_LOOP_CX, "hot_loop.cx")
    expected = f"{_hot_loop_python()}\n"

    async def cx() -> float:
        out = io.StringIO()
        start = time.perf_counter()
        await run_program(program, RunOptions(out=out))
        elapsed = time.perf_counter() - start
        if out.getvalue() != expected:
            raise AssertionError(f"the CX loop printed {out.getvalue()!r}, not {expected!r}")
        return elapsed

    async def python() -> float:
        start = time.perf_counter()
        _hot_loop_python()
        return time.perf_counter() - start

    samples = run_async(interleaved({"cx": cx, "python": python}, budget.slow_rounds))
    return [ScenarioResult(
        "hotloop",
        f"CX loop, {ITERATIONS:,} iterations",
        Quantity.median_of(samples["cx"], Unit.SECONDS),
        (Comparison("plain Python", Quantity.median_of(samples["python"], Unit.SECONDS),
                    target=ratio_at_most(3.0, "aim < 3x Python")),),
    )]
