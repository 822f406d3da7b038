"""Large programs compile in time about linear in their size, and a program whose functions are
spread over several Python modules (to keep CPython's symbol table linear) runs as one."""

from __future__ import annotations

import ast
import time

import pytest

from cxlang.compiler import codegen, compile_program
from cxlang.syntax import parse
from cxlang.syntax.diagnostics import SourceFile

from ..language._helpers import FILENAME, run


def many_globals_and_handlers(size: int) -> str:
    """About *size* characters: a top-level variable per handler, which reads it, and every
    fourth handler assigns it (so the handlers declare globals too)."""
    parts: list[str] = []
    total = 0
    i = 0
    while total < size:
        assigns = f"    v{i} = local + 1;\n" if i % 4 == 0 else ""
        block = (f"var v{i} = {i};\nprint(v{i} + 1);\n"
                 f"on e{i} (e) {{\n    var local = v{i} * 2;\n    print(local);\n{assigns}}}\n")
        parts.append(block)
        total += len(block)
        i += 1
    return "".join(parts)


def symbol_table_copies(module: ast.Module) -> int:
    """The names CPython's symbol table copies for *module*: one copy of the module's names
    declared global for each function defined in it."""
    functions = [s for s in module.body if isinstance(s, ast.AsyncFunctionDef)]
    declared = {name for f in functions for s in f.body if isinstance(s, ast.Global)
                for name in s.names}
    return len(functions) * len(declared)


def test_modules_keep_the_symbol_table_and_the_python_tree_small() -> None:
    source = many_globals_and_handlers(200_000)
    modules: list[ast.Module] = []
    codegen.generate(parse(source, FILENAME), SourceFile(FILENAME, source), modules.append)
    assert len(modules) > 1
    for module in modules:
        functions = sum(isinstance(s, ast.AsyncFunctionDef) for s in module.body)
        assert functions <= codegen.MODULE_FUNCTIONS
        assert functions == 1 or symbol_table_copies(module) <= codegen.MODULE_GLOBAL_COPIES


def test_a_large_program_compiles_without_blowing_up() -> None:
    source = many_globals_and_handlers(1_500_000)
    started = time.monotonic()
    program = compile_program(source, FILENAME)
    # Linear, this takes seconds; the quadratic symbol table took minutes. The bound is loose
    # on purpose: it catches a blow-up, not a slowdown, on a busy machine.
    assert time.monotonic() - started < 60
    assert len(program.handlers) == source.count("\non ")


SPLIT = """var count = 0;
var names = [];
on tick (e) { count += e.n; names = names + [e.name]; }
on report { print(count, names); }
conscious Counter {
    var seen = 0;
    on tick (e) { self.seen += 1; count += 100; }
}
var c = new Counter({});
on fail (e) { print(1 / e.zero); }
emit tick { n: 1, name: "a" };
emit tick { n: 2, name: "b" };
count = count + 1000;
emit report;
emit fail { zero: 0 };
"""


def test_a_program_spread_over_modules_runs_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run(SPLIT)
    assert len(compile_program(SPLIT, FILENAME).codes) == 1
    monkeypatch.setattr(codegen, "MODULE_FUNCTIONS", 1)  # every function a module of its own
    assert len(compile_program(SPLIT, FILENAME).codes) == 6  # the top level and 5 functions
    split = run(SPLIT)
    assert split == whole
    assert split.out_lines == ['1203 ["a", "b"]']
    # A run-time error in a function of a later module still points at its CX source.
    assert split.err.startswith(f"{FILENAME}:10:21: "), split.err


def test_an_error_after_modules_were_compiled_is_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codegen, "MODULE_FUNCTIONS", 1)
    result = run(SPLIT + "on late { print(undeclared); }\n")
    assert result.code == 2
    assert result.err.startswith(f"{FILENAME}:16:17: unknown variable "), result.err


@pytest.mark.parametrize("blanks", [" ", "\t", " \t"])
def test_blanks_at_the_end_of_a_file_cost_what_they_are(blanks: str) -> None:
    """A file ending in blanks with no newline was scanned in time quadratic in them (20,000
    spaces: 50 s). A generous bound, far above what a linear scan takes (milliseconds)."""
    source = "print(1);" + blanks * (20_000 // len(blanks))
    started = time.perf_counter()
    parse(source)
    assert time.perf_counter() - started < 10
