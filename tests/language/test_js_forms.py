"""The JavaScript forms, run: `a ? b : c`, `??`, `?.`, `++`/`--`, C-style `for`,
`for (x in xs)` without `var` and `\\xHH`, with CX's values and CX's errors."""

from __future__ import annotations

import pytest

from ._helpers import POSITION, leaks, run


def lines(source: str) -> list[str]:
    """Run a program that must succeed; its output lines."""
    result = run(source)
    assert result.code == 0, result.err
    assert result.err == ""
    return result.out_lines


def failure(source: str) -> str:
    """Run a program that must stop at a run-time error; its stderr."""
    result = run(source)
    assert result.code == 1, result.out
    assert POSITION.search(result.err), result.err
    assert not leaks(result.err, source)
    return result.err


def refused(source: str) -> str:
    """A program that must not compile (exit code 2); its diagnostics."""
    result = run(source)
    assert result.code == 2, result.err
    assert result.out == ""
    assert not leaks(result.err, source)
    return result.err


# The conditional ---------------------------------------------------------------------------


def test_conditional_takes_cx_truthiness() -> None:
    assert lines('print(1 ? "a" : "b", 0 ? "a" : "b", "" ? "a" : "b", [] ? "a" : "b",\n'
                 '      null ? "a" : "b", {} ? "a" : "b", 0.0 ? "a" : "b");') == [
        "a b b a b a b"]


def test_conditional_nests_to_the_right() -> None:
    source = ('var grade = null;\nfor (var n in [95, 85, 70]) {\n'
              '  grade = n >= 90 ? "A" : n >= 80 ? "B" : "C";\n  print(grade);\n}')
    assert lines(source) == ["A", "B", "C"]


def test_conditional_evaluates_only_the_chosen_branch() -> None:
    assert lines('var n = 0;\nprint(true ? "ok" : 1 / 0, false ? 1 / 0 : "fine");\n'
                 'var r = n > 0 ? n++ : n--;\nprint(r, n);') == ["ok fine", "0 -1"]


def test_conditional_in_objects_service_calls_and_handler_returns() -> None:
    source = (
        'on grade.asked (e) { return e.score > 50 ? "pass" : "fail"; }\n'
        'var urgent = true;\n'
        'var o = { level: urgent ? "high" : "low", n: urgent ? 1 : 2 };\n'
        'print(o);\n'
        'var r = think { prompt: urgent ? "now" : "later" };\n'
        'print(r);\n'
        'on system.start {\n'
        '  var grades = think { prompt: "x", g: grade.asked, score: 70 };\n'
        '  print(grades.g);\n'
        '}\n'
    )
    assert lines(source) == ['{"level": "high", "n": 1}', "Thought about: now", "pass"]


# ?? -----------------------------------------------------------------------------------------


def test_coalesce_replaces_null_only() -> None:
    assert lines('var o = { zero: 0, no: false, empty: "", nothing: null };\n'
                 'print(o.zero ?? 1, o.no ?? 1, o.empty ?? 1, o.nothing ?? 1, o.missing ?? 1);\n'
                 'print(null ?? null ?? "third", [] ?? 1);') == [
        "0 false  1 1", "third []"]


def test_coalesce_evaluates_the_right_only_when_needed() -> None:
    assert lines('var n = 0;\nvar a = 5 ?? n++;\nvar b = null ?? n++;\nprint(a, b, n);\n'
                 'print(1 ?? 1 / 0);') == ["5 0 1", "1"]


def test_coalesce_with_a_service_call_on_the_right() -> None:
    source = ('var cached = null;\nvar answer = cached ?? think { prompt: "fresh" };\n'
              'print(answer);\ncached = "kept";\n'
              'print(cached ?? think { prompt: "never asked" });\n'
              'on thinking.complete (e) { print("completion", e.prompt); }\n')
    assert lines(source) == ["Thought about: fresh", "kept", "completion fresh"]


def test_coalesce_mixed_with_or_is_a_compile_error() -> None:
    err = refused('var a = null;\nprint(a ?? 1 || 2);\n')
    assert err.splitlines() == [
        "prog.cx:2:14: cannot mix '??' with '||' or '&&' without parentheses: "
        "write (a ?? b) || c or a ?? (b || c)",
        "    print(a ?? 1 || 2);",
        "                 ^~",
    ]


# ?. -----------------------------------------------------------------------------------------


def test_optional_chain_short_circuits_the_whole_chain() -> None:
    assert lines('var a = null;\nvar b = { c: { d: [10, 20] } };\n'
                 'print(a?.x, a?.x.y.z, a?.[0], a?.[0].q, a?.push(1));\n'
                 'print(b?.c.d?.[1], b.c?.d.length, b?.nope?.deeper, b?.c.d.join("-"));') == [
        "null null null null null", "20 2 null 10-20"]


def test_optional_chain_evaluates_nothing_past_a_null() -> None:
    assert lines('var a = null;\nvar n = 0;\nprint(a?.[n++], a?.m(n++, 1 / 0), a?.b[n++]);\n'
                 'print(n);') == ["null null null", "0"]


def test_parentheses_end_an_optional_chain() -> None:
    # (a?.m)... is the chain's null, and a method call on null is an error, as in JavaScript.
    assert lines('var a = null;\nprint((a?.b).c);') == ["null"]
    err = failure('var a = null;\nprint((a?.b).trim());\n')
    assert "null has no method 'trim'" in err


def test_optional_method_calls_on_values() -> None:
    assert lines('var s = " hi ";\nvar none = null;\nprint(s?.trim()?.toUpperCase(), '
                 'none?.trim() ?? "none", [3, 4]?.indexOf(4));') == ["HI none 1"]


def test_optional_chain_on_an_entity() -> None:
    source = ('conscious Agent {\n  var mood = "calm";\n'
              '  on ask (e) { print(self?.mood, e?.who ?? "nobody"); }\n}\n'
              'var ada = new Agent({ name: "ada" });\nvar nobody = null;\n'
              'print(ada?.name, ada?.missing?.x, nobody?.name, ada?.keys());\n'
              'emit ask { who: "bob" };\nemit ask;\n')
    assert lines(source) == ['ada null null ["mood", "name"]', "calm bob", "calm nobody"]


def test_optional_chain_is_not_an_event_reference() -> None:
    err = refused('think { prompt: "x", a: analysis?.done };\n')
    assert "prog.cx:1:25: unknown variable 'analysis'" in err


# ++ and -- --------------------------------------------------------------------------------


def test_prefix_gives_the_new_value_postfix_the_old() -> None:
    assert lines('var i = 5;\nprint(i++, i, ++i, i, i--, i, --i, i);\n'
                 'var f = 1.5;\nf++;\nprint(f, f--, f);') == [
        "5 6 7 7 7 6 5 5", "2.5 2.5 1.5"]


def test_increment_properties_and_elements() -> None:
    assert lines('var o = { n: 1, xs: [10, 20] };\nvar k = 0;\n'
                 'print(o.n++, ++o.n, o.xs[k++]--, o.xs, --o["n"], k);\n'
                 'o.xs[1]++;\no.n--;\nprint(o);') == [
        "1 3 10 [9, 20] 2 1", '{"n": 1, "xs": [9, 21]}']


def test_increment_evaluates_its_target_once() -> None:
    assert lines('var xs = [0, 0, 0];\nvar i = 0;\nxs[i++]++;\nxs[i++] += 5;\nprint(xs, i);') == [
        "[1, 5, 0] 2"]


def test_increment_of_a_global_in_a_handler() -> None:
    assert lines('var count = 0;\non tick (e) { count++; ++count; }\nemit tick;\nemit tick;\n'
                 'on system.start { print(count); }\n') == ["4"]


def test_increment_of_self_count_in_an_entity_handler() -> None:
    source = ('conscious Counter {\n  var count = 0;\n'
              '  on tick (e) { self.count++; print(self.name, self.count, ++self.count); }\n}\n'
              'var c = new Counter({ name: "c" });\nemit tick;\nemit tick;\n')
    assert lines(source) == ["c 1 2", "c 3 4"]


def test_increments_are_exact_for_large_whole_numbers() -> None:
    assert lines('var big = 99999999999999999999;\nbig++;\nprint(big);') == [
        "100000000000000000000"]


@pytest.mark.parametrize(
    ("source", "message", "caret"),
    [
        ('var s = "a";\ns++;\n', "cannot apply '++' to a string: it counts numbers only",
         "    ^~~~"),
        ('var o = {};\nprint(o.n--);\n', "cannot apply '--' to null: it counts numbers only",
         "          ^~~~~"),
        ('var xs = [true];\n--xs[0];\n', "cannot apply '--' to a boolean: it counts numbers only",
         "    ^~~~~~~~"),
    ],
)
def test_increments_count_numbers_only(source: str, message: str, caret: str) -> None:
    err = failure(source)
    head, _, shown = err.splitlines()[:3]
    assert head == f"prog.cx:2:{len(caret) - 4 - caret.count('~')}: runtime error at the top " \
                   f"level: {message}"
    assert shown == caret


def test_plus_equals_still_concatenates_where_plus_plus_refuses() -> None:
    assert lines('var s = "a";\ns += 1;\nprint(s);') == ["a1"]


def test_increment_of_an_undeclared_variable_is_a_compile_error() -> None:
    err = refused("on go (e) { missing++; }\n")
    assert "prog.cx:1:13: assignment to undeclared variable 'missing'" in err


# C-style for ------------------------------------------------------------------------------


def test_c_style_for_counts() -> None:
    assert lines('var total = 0;\nfor (var i = 0; i < 5; i++) { total += i; }\n'
                 'print(total, i);\nfor (var j = 10; j > 0; j -= 4) { print(j); }') == [
        "10 5", "10", "6", "2"]


def test_continue_runs_the_step_and_break_leaves() -> None:
    source = ('for (var i = 0; i < 10; i++) {\n  if (i % 2 == 0) { continue; }\n'
              '  if (i > 6) { break; }\n  print(i);\n}\nprint("after", i);')
    assert lines(source) == ["1", "3", "5", "after 7"]


def test_nested_c_style_loops_with_break_and_continue() -> None:
    source = ('on system.start {\n  var seen = [];\n'
              '  for (var i = 0; i < 4; i++) {\n'
              '    if (i == 1) { continue; }\n'
              '    for (var j = 0; j < 4; j++) {\n'
              '      if (j == i) { continue; }\n'
              '      if (j > 2) { break; }\n'
              '      seen.push(i * 10 + j);\n'
              '    }\n'
              '    var k = 0;\n'
              '    while (k < 3) { k++; if (k == 2) { continue; } seen.push(-k); }\n'
              '    if (i == 2) { break; }\n'
              '  }\n'
              '  print(seen);\n}\n')
    assert lines(source) == ["[1, 2, -1, -3, 20, 21, -1, -3]"]


def test_c_style_for_with_parts_left_out() -> None:
    assert lines('var i = 0;\nfor (;;) { if (i++ == 3) { break; } }\nprint(i);\n'
                 'for (i = 10; i < 12;) { print(i); i += 1; }\n'
                 'var o = { n: 3 };\nfor (; o.n; o.n--) { print("n", o.n); }') == [
        "4", "10", "11", "n 3", "n 2", "n 1"]


def test_c_style_for_with_a_fraction_and_a_step_assignment() -> None:
    assert lines('for (var x = 0.5; x < 2; x *= 2) { print(x); }') == ["0.5", "1.0"]


def test_c_style_for_variable_is_function_wide_like_for_in() -> None:
    assert lines('on go (e) {\n  for (var i = 0; i < 2; i++) {}\n  print(i);\n'
                 '  for (var i = 5; i < 6; i++) { print(i); }\n}\nemit go;\n') == ["2", "5"]
    err = refused('print(i);\nfor (var i = 0; i < 2; i++) {}\n')
    assert "prog.cx:1:7: 'i' is used before its 'var' declaration" in err


def test_c_style_for_in_a_handler_assigning_a_global() -> None:
    assert lines('var n = 0;\non go (e) { for (n = 0; n < 3; n++) {} }\nemit go;\n'
                 'on system.start { print(n); }\n') == ["3"]


def test_break_outside_a_loop_is_still_refused() -> None:
    err = refused("for (var i = 0; i < 1; i++) {}\ncontinue;\n")
    assert "prog.cx:2:1: 'continue' is only allowed inside a loop" in err


def test_a_runtime_error_in_the_step_points_at_the_step() -> None:
    err = failure('for (var i = 0; i < 3; i += "x" / 2) { continue; }\n')
    assert err.startswith("prog.cx:1:29: runtime error at the top level: cannot apply '/'")


# for (x in xs) ------------------------------------------------------------------------------


def test_for_in_with_an_existing_variable() -> None:
    assert lines('var x = "before";\nfor (x in ["a", "b"]) { print(x); }\nprint(x);\n'
                 'for (var y in { k: 1 }) { print(y); }') == ["a", "b", "b", "k"]


def test_for_in_assigns_a_global_from_a_handler() -> None:
    assert lines('var last = null;\non go (e) { for (last in [1, 2, 3]) {} }\nemit go;\n'
                 'on system.start { print(last); }\n') == ["3"]


def test_for_in_without_var_needs_a_declared_variable() -> None:
    err = refused("for (x in [1]) {}\n")
    assert err.splitlines()[0] == (
        "prog.cx:1:6: assignment to undeclared variable 'x'; declare it with 'var x = ...'")


# \xHH ---------------------------------------------------------------------------------------


def test_hex_escapes_run() -> None:
    assert lines(r'print("\x41\x42c", "caf\xe9", "\x41" == "A");') == ["ABc café true"]


def test_a_malformed_hex_escape_exits_2_at_its_position() -> None:
    err = refused('var s = "ok";\nprint("\\x4g");\n')
    assert err.splitlines() == [
        "prog.cx:2:8: bad escape '\\x' in string: expected 2 hex digits, like \\x41",
        '    print("\\x4g");',
        "           ^~",
    ]
