"""Hostile programs at the front end: whatever the source, a CX diagnostic (exit 2) and never
Python's text; a huge source echoes a bounded line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cxlang.compiler import compile as compile_module
from cxlang.compiler.codegen import MAX_LOOP_NESTING
from cxlang.syntax.builder import MAX_INT_DIGITS

from ..language._helpers import leaks, run


def nested_loops(depth: int, *, in_handler: bool = False) -> str:
    loops = "".join(f"for (var x{i} in [1]) {{\n" if i % 2 else "while (false) {\n"
                    for i in range(depth))
    body = loops + 'print("in");\n' + "}\n" * depth
    return f"on go (e) {{\n{body}}}\nemit go;\n" if in_handler else body


def assert_bad_program(source: str, first_line: str) -> str:
    result = run(source)
    assert result.code == 2, result.err
    assert result.err.splitlines()[0] == first_line
    assert not leaks(result.err, source), result.err
    return result.err


def test_an_integer_literal_past_pythons_digit_limit_is_refused_at_its_position() -> None:
    digits = "9" * (MAX_INT_DIGITS + 1)
    assert_bad_program(f"print(1);\nvar x = {digits};\n",
                       "prog.cx:2:9: integer literal too long: 4,301 digits, at most 4,300")


def test_the_longest_integer_literal_allowed_runs() -> None:
    result = run(f"print({'7' * MAX_INT_DIGITS});\n")
    assert (result.code, result.out) == (0, "7" * MAX_INT_DIGITS + "\n"), result.err


def test_cx_check_exits_2_on_a_long_integer_literal(tmp_path: Path) -> None:
    program = tmp_path / "prog.cx"
    program.write_text("var x = " + "1" * 5000 + ";\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "check", program.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "integer literal too long: 5,000 digits" in done.stderr
    assert not leaks(done.stderr)


@pytest.mark.parametrize("in_handler", [False, True], ids=["top level", "handler"])
def test_loops_nested_past_pythons_block_limit_are_a_cx_error(in_handler: bool) -> None:
    source = nested_loops(MAX_LOOP_NESTING + 3, in_handler=in_handler)
    line = MAX_LOOP_NESTING + 1 + in_handler  # the first loop past the limit, reported once
    err = assert_bad_program(source, f"prog.cx:{line}:1: loops nested too deeply: at most 20 "
                             "inside one another in a handler or the top level; move the inner "
                             "ones into a handler of their own")
    assert err.count("prog.cx:") == 1


@pytest.mark.parametrize("in_handler", [False, True], ids=["top level", "handler"])
def test_loops_nested_up_to_the_limit_run(in_handler: bool) -> None:
    result = run(nested_loops(MAX_LOOP_NESTING, in_handler=in_handler).replace(
        "while (false)", "for (var w in [1])"))
    assert (result.code, result.out) == (0, "in\n"), result.err


def test_ifs_nest_deeper_than_loops() -> None:
    # An if is no block for Python's limit: only loops are counted.
    depth = MAX_LOOP_NESTING * 3
    result = run("if (true) {\n" * depth + 'print("in");\n' + "}\n" * depth)
    assert (result.code, result.out) == (0, "in\n"), result.err


def test_any_other_python_compile_limit_is_a_positioned_cx_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A limit the code generator does not check for still ends as a diagnostic at its line.
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise SyntaxError("too many statically nested blocks", ("prog.cx", 2, 1, "", 2, 2))

    monkeypatch.setattr(compile_module, "compile", refuse, raising=False)
    assert_bad_program("print(1);\nprint(2);\n", "prog.cx:2:1: this is past a limit of the "
                       "compiler (nested or repeated too many times); split it up")


def test_a_long_line_is_echoed_as_a_window_around_the_caret() -> None:
    name = "n" * 1_000_000
    err = assert_bad_program(f"var {name} = ;\n",
                             "prog.cx:1:1000008: unexpected ';', expected an expression")
    echoed, caret = err.splitlines()[1:3]
    assert len(echoed) < 200 and echoed.startswith("    ...") and echoed.endswith(";")
    assert caret.index("^") == echoed.index(";")


def test_a_byte_order_mark_is_skipped() -> None:
    result = run("\ufeffprint(1);\n")
    assert (result.code, result.out) == (0, "1\n"), result.err
    assert_bad_program("\ufeffvar x = ;\n", "prog.cx:1:9: unexpected ';', expected an expression")


def test_separators_and_control_characters_are_echoed_escaped() -> None:
    err = assert_bad_program('var s = "\u2028";\u2029 var\x1b[2J x = ;\n',
                             "prog.cx:1:18: unknown character U+001B")
    echoed, caret = err.splitlines()[1:3]
    assert echoed == '    var s = "\\u2028";\\u2029 var\\x1b[2J x = ;'
    assert caret == " " * echoed.index("\\x1b") + "^~~~"
