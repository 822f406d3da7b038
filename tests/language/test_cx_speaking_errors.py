"""Every message a CX program or its user sees speaks CX: values as ``print`` writes them, error
kinds by CX names, and never Python's advice (``sys.set_int_max_str_digits()``), exception names
(``OverflowError``) or reprs (``[None, True]``, ``<T T#1>``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import NoReturn

import pytest

from cxlang.cli.main import main
from cxlang.compiler import prelude
from cxlang.program import RunOptions, run_source
from cxlang.program.host import ProgramHost

from ._helpers import FILENAME, leaks, run

PYTHON_WORDS = ("Error:", "sys.", "ProgramHost", "CxRuntimeError", "None", "True", "inf")

# x is 10^8192, past the 4,300 digits Python converts to text by default.
HUGE = "var x = 1;\nvar i = 0;\nwhile (i < 8192) { x = x * 10; i = i + 1; }\n"


def speaks_cx(text: str, source: str) -> bool:
    return leaks(text, source) == [] and not any(word in text for word in PYTHON_WORDS)


def test_a_number_of_any_size_is_printed_and_concatenated_whole() -> None:
    source = HUGE + 'print(x);\nprint("n=" + (0 - x));\nprint([x + 1]);\n'
    result = run(source)
    assert result.err == ""
    assert result.code == 0
    assert result.out_lines == ["1" + "0" * 8192, "n=-1" + "0" * 8192, f"[1{'0' * 8191}1]"]


def test_arithmetic_mixing_huge_and_infinite_numbers_gives_cx_values() -> None:
    # As fractions overflow to Infinity (printed null, as 1e999 is), so does a whole number too
    # large for one; Infinity % x is NaN, as in JavaScript. Division by zero stays an error.
    source = HUGE + ("print(x + 0.5, 0.5 - x, x * 1.5, x / 0.5, x / 3, (0 - x) / 7);\n"
                     "print(1e999 % 2, x % 0.5, 2 % 1e999, x < 0.5, x % 7);\nprint(1 / 0);\n")
    result = run(source)
    assert result.out_lines == ["null null null null null null", "null null 2.0 false 2"]
    assert result.code == 1
    assert result.err.startswith("prog.cx:6:7: runtime error at the top level: division by zero")
    assert speaks_cx(result.err, source)


def test_print_writes_lone_surrogates_as_replacement_characters() -> None:
    source = 'print("a\\uD800b");\nprint("\\uD83D\\uDE00");\nemit system.console.write ' \
             '{ text: "\\uDC00" };\n'
    # A real output stream refuses a lone surrogate (UnicodeEncodeError): write bytes.
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8", newline="\n")
    err = io.StringIO()
    code = run_source(source, FILENAME, RunOptions(out=out, err=err))
    out.flush()
    assert err.getvalue() == ""
    assert code == 0
    assert buffer.getvalue().decode("utf-8") == "a\ufffdb\n\U0001f600\n\ufffd\n"


def test_system_error_names_the_handler_and_the_error_kind_in_cx_words() -> None:
    source = ('on system.error (e) { print(e.handler + " | " + e.type + " | " + e.error); }\n'
              "on a.b (e) { var n = null; return n.x + 1; }\nemit a.b;\n")
    result = run(source)
    assert result.out_lines == [
        "handler at prog.cx:2 | runtime error | cannot apply '+' to null and a number"]
    assert speaks_cx(result.out, source)


def test_system_error_names_a_built_in_handler_as_cx_knows_it() -> None:
    # Without a payload limit, a self-containing text reaches the console handler, which cannot
    # write it: the failure is the host's handler's, named after its event.
    source = ('on system.error (e) { print(e.handler + " | " + e.type + " | " + e.error); }\n'
              "var a = [];\na.push(a);\nemit system.console.write { text: a };\n")
    out, err = io.StringIO(), io.StringIO()
    run_source(source, FILENAME, RunOptions(out=out, err=err, max_payload=None))
    assert out.getvalue().splitlines() == [
        "the console (the built-in handler of system.console.write) | runtime error | "
        "cannot write an array that contains itself"]
    assert speaks_cx(out.getvalue() + err.getvalue(), source)


def test_parallel_parameters_fail_only_with_cx_errors() -> None:
    # Each of these raised a Python exception before, which _errors reported in Python's words.
    source = HUGE + ("on w.big (e) { return e.n + 0.5; }\n"
                     "on w.mod (e) { return 1e999 % 2; }\n"
                     'on w.text (e) { return "" + e.n; }\n'
                     "on w.bad (e) { return e.n + true; }\n"
                     'var r = think { prompt: "p", n: x, big: w.big, mod: w.mod, text: w.text, '
                     "bad: w.bad };\nprint(r.big, r.mod, r.text.length);\n"
                     "print(r._errors);\n")
    result = run(source)
    assert result.out_lines == [
        "null null 8193",
        '{"bad": {"type": "error", "message": "cannot apply \'+\' to a number and a boolean"}}']
    assert speaks_cx(result.out + result.err, source)


def test_a_control_value_is_shown_as_cx_writes_it() -> None:
    source = 'var t = [null, true];\nthink { prompt: "p", temperature: t };\n'
    result = run(source)
    assert result.code == 1
    assert result.err.startswith("prog.cx:2:1: runtime error in the think call: temperature "
                                 "must be a number >= 0, got [null, true]\n")
    assert speaks_cx(result.err, source)


def test_an_entity_reaches_the_model_as_its_properties_and_handlers_as_itself() -> None:
    source = ("object T { realize(self: object) { self.a = 1; } }\n"
              "var t = new T({ b: 2 });\n"
              "on w.same (e) { return e.prompt == t && e.prompt.a == 1; }\n"
              "var r = think { prompt: t, same: w.same };\n"
              "print(r.result);\nprint(r.same);\nprint(think { data: [t] });\n")
    result = run(source)
    assert result.err == ""
    assert result.out_lines == ['Thought about: {"b": 2, "a": 1}', "true",
                                'Thought about: [{"b": 2, "a": 1}]']


def test_a_value_nested_thousands_deep_is_printed() -> None:
    source = ("var x = [];\nvar i = 0;\nwhile (i < 5000) { x = [x]; i = i + 1; }\n"
              'print(x);\nvar s = "" + { a: x };\nprint(s.length);\n')
    result = run(source)
    assert result.err == ""
    assert result.out_lines == ["[" * 5001 + "]" * 5001, str(5001 * 2 + len('{"a": }'))]


def test_a_value_the_model_cannot_read_fails_the_call_in_cx_words() -> None:
    # json.dumps said "Circular reference detected" (a ValueError) in thinking.error before.
    source = "var a = [];\na.push(a);\nthink { data: a };\n"
    out, err = io.StringIO(), io.StringIO()
    code = run_source(source, FILENAME, RunOptions(out=out, err=err, max_payload=None))
    assert code == 1
    assert err.getvalue().startswith(
        "prog.cx:3:1: think failed: a property of the call cannot be written as text for the "
        "model: it contains itself, is nested too deeply or holds a number too long to write; "
        "pass a simpler value (nothing handles it: add on thinking.error)\n")
    assert speaks_cx(err.getvalue(), source)


def _internal_fault(*args: object) -> NoReturn:
    raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")


INTERNAL_OF = "internal error of cxlang (not a mistake in the program)"
ADVICE = "run again with --log-level debug for the details, and please report it"


@pytest.mark.parametrize("log_level", [[], ["--log-level", "info"]], ids=["default", "info"])
def test_a_fault_inside_cxlang_is_told_at_its_cx_position_without_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    log_level: list[str],
) -> None:
    monkeypatch.setattr(ProgramHost, "print", _internal_fault)
    program = tmp_path / "prog.cx"
    program.write_text("var a = 1;\nprint(a);\n", encoding="utf-8")
    assert main(["run", str(program), *log_level]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{program}:2:1: {INTERNAL_OF} at the top level: {ADVICE}",
        "    print(a);", "    ^~~~~~~~"]
    assert "TypeError" not in captured.err and "NoneType" not in captured.err


def test_the_python_traceback_of_a_fault_inside_cxlang_is_logged_at_debug_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ProgramHost, "print", _internal_fault)
    program = tmp_path / "prog.cx"
    program.write_text("print(1);\n", encoding="utf-8")
    assert main(["run", str(program), "--log-level", "debug"]) == 1
    err = capsys.readouterr().err
    assert "cx: DEBUG cxlang.program: internal error at the top level\nTraceback" in err
    assert "TypeError: unsupported operand type(s)" in err
    assert err.endswith(f"{INTERNAL_OF} at the top level: {ADVICE}\n    print(1);\n"
                        "    ^~~~~~~~\n")


def test_system_error_tells_a_fault_inside_cxlang_without_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(prelude.PRELUDE, "cx_typeof", _internal_fault)
    source = ("on go (e) { var t = typeof(e); }\n"
              "on system.error (e) { print(e.payload.type, \"/\", e.payload.error); }\n"
              "emit go;\n")
    result = run(source)
    assert result.code == 1
    assert result.out_lines == [
        f"internal error / {INTERNAL_OF}: {ADVICE}"]
    assert result.err.startswith(
        f"prog.cx:1:21: {INTERNAL_OF} in a handler of 'go' (handling 'go'): {ADVICE}")
    assert speaks_cx(result.out + result.err, source)


def test_a_fault_inside_cxlang_in_a_parallel_parameter_reaches_errors_without_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(prelude.PRELUDE, "cx_typeof", _internal_fault)
    source = ("on part.a (e) { return typeof(e); }\n"
              "on part.b (e) { return 2; }\n"
              "var r = think { prompt: \"p\", a: part.a, b: part.b };\n"
              "print(r.b, r._errors.a.type, r._errors.a.message);\n")
    result = run(source)
    assert result.code == 0, result.err
    assert result.out_lines == [f"2 error {INTERNAL_OF}: {ADVICE}"]
    assert speaks_cx(result.out + result.err, source)
