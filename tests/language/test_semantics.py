"""End-to-end runs of the semantics BRIEF.md decides, on the deterministic local backend."""

from __future__ import annotations

import json

import pytest

from ._helpers import leaks, run


def lines(source: str, **kwargs: float) -> list[str]:
    """Run a program that must succeed; its output lines."""
    result = run(source, **kwargs)
    assert result.code == 0, result.err
    assert result.err == ""
    return result.out_lines


# Values and printing ---------------------------------------------------------------------------


def test_print_writes_strings_raw_and_everything_else_as_json() -> None:
    assert lines('print("text"); print(42); print(true); print(false); print(null);\n'
                 'print([1, 2]); print({a: 1}); print({a: [1, {b: null}], c: "s"}); print([]);'
                 ' print({});') == [
        "text", "42", "true", "false", "null", "[1, 2]", '{"a": 1}',
        '{"a": [1, {"b": null}], "c": "s"}', "[]", "{}"]


def test_print_with_several_arguments_and_none() -> None:
    assert lines('print("a", 1, [2]); print();') == ['a 1 [2]', ""]


def test_string_escapes() -> None:
    assert lines(r'print("a\tb"); print("q\"q"); print("back\\slash"); print("x\ny");') == [
        "a\tb", 'q"q', "back\\slash", "x", "y"]


def test_escaped_strings_inside_json_are_json_escaped() -> None:
    assert lines(r'print(["a\"b", "c\nd"]);') == [r'["a\"b", "c\nd"]']


def test_integers_and_floats() -> None:
    assert lines('print(2); print(2.0); print(1.5); print(7 / 2); print(6 / 3); print(1 + 1.5);\n'
                 'print(3 * 2); print(3.0 * 2); print(10 - 2.5); print(-4); print(-(2));\n'
                 'print(1 == 1.0); print(7 % 3); print(-7 % 3); print(7.5 % 2);') == [
        "2", "2.0", "1.5", "3.5", "2", "2.5", "6", "6.0", "7.5", "-4", "-2", "true", "1",
        "-1", "1.5"]


def test_remainder_is_exact_for_large_integers() -> None:
    assert lines('print(12345678901234567891 % 10); print(-12345678901234567891 % 10);') == [
        "1", "-1"]


def test_plus_concatenates_when_either_side_is_a_string() -> None:
    assert lines('print("n" + 1 + true + null + [1] + {a: "x"}); print(1 + "s");\n'
                 'print(1.5 + "s"); print(null + ""); print(1 + 2 + "x"); print("x" + 1 + 2);') == [
        'n1truenull[1]{"a": "x"}', "1s", "1.5s", "null", "3x", "x12"]


def test_plus_on_arrays_joins_them() -> None:
    assert lines('print([1] + [2, 3]);') == ["[1, 2, 3]"]


def test_missing_property_is_null() -> None:
    assert lines('var o = {a: {}}; print(o.b); print(o.a.b.c); print(o["zz"]); print([1][5]);\n'
                 'var n = null; print(n.x); print(n["x"]);') == ["null"] * 6


def test_length_of_strings_and_arrays() -> None:
    assert lines('print("abc".length); print([1, 2].length); print([1]["length"]);') == [
        "3", "2", "1"]


def test_equality_has_no_python_surprises() -> None:
    assert lines('print(true == 1); print(0 == false); print(null == null); print("1" == 1);\n'
                 'print([1] == [1]); print(1 != 2);') == [
        "false", "false", "true", "false", "true", "true"]


def test_value_that_contains_itself_is_a_runtime_error() -> None:
    result = run('var o = {};\no.me = o;\nprint(o);')
    assert result.code == 1
    assert result.err.startswith("prog.cx:3:1: runtime error at the top level: cannot write an "
                                 "object that contains itself")


def test_same_value_twice_is_not_a_cycle() -> None:
    assert lines('var o = {a: 1}; print([o, o]);') == ['[{"a": 1}, {"a": 1}]']


def test_object_has_with_non_string_key() -> None:
    assert lines('var o = {}; o[1] = "one"; print(o.has(1)); print(o.has([])); print(o.has("1"));'
                 ) == ["true", "false", "true"]


# Emit and lifetime -----------------------------------------------------------------------------


def test_top_level_emits_then_prints_prints_first() -> None:
    assert lines('on a.x { print("a"); }\non b.x { print("b"); }\non c.x { print("c"); }\n'
                 'emit a.x; emit b.x; emit c.x;\nprint("top");') == ["top", "a", "b", "c"]


def test_handlers_of_one_event_run_in_subscription_order() -> None:
    assert lines('on e.x { print(1); }\non e.any { print(2); }\non e.x { print(3); }\nemit e.x;'
                 ) == ["1", "2", "3"]


def test_emit_forms_and_payload_copies() -> None:
    assert lines('on a.b (e) { e.v = 9; print(e.v); }\non a.b (e) { print(e.v); }\n'
                 'on a.c (e) { print(e); }\n'
                 'emit a.b { v: 1 }; emit a.c, { w: 2 }; emit a.c;') == ["9", "1", '{"w": 2}', "{}"]


def test_a_handler_parameter_holds_the_payload_even_if_a_var_redeclares_it_later() -> None:
    assert lines('on a.b (e) { print(e.n); if (e.n > 1) { var e = "shadow"; } print(e); }\n'
                 'emit a.b { n: 1 }; emit a.b { n: 2 };') == ["1", '{"n": 1}', "2", "shadow"]


def test_system_start_is_emitted_after_the_top_level() -> None:
    assert lines('on system.start { print("start"); }\nprint("top");') == ["top", "start"]


def test_system_start_is_not_emitted_twice() -> None:
    assert lines('on system.start { print("start"); }\nemit system.start;\nprint("top");') == [
        "top", "start"]


def test_run_continues_until_nothing_is_queued() -> None:
    assert lines('on a (e) { if (e.n < 3) { emit a { n: e.n + 1 }; } print(e.n); }\n'
                 'emit a { n: 0 };') == ["0", "1", "2", "3"]


def test_console_write() -> None:
    assert lines('emit system.console.write { text: "hello" };\n'
                 'emit system.console.write { text: [1, "a"] };') == ["hello", '[1, "a"]']


def test_shutdown_ends_the_run() -> None:
    assert lines('on system.start { print("start"); emit system.shutdown; emit later; }\n'
                 'on system.start { await { durationMs: 5000 }; print("never"); }\n'
                 'on later { print("never either"); }', timeout=30) == ["start"]


def test_shutdown_handlers_still_run_but_nothing_after_them() -> None:
    assert lines('on system.shutdown { print("bye");\n'
                 '  emit system.console.write { text: "written" }; emit other; }\n'
                 'on other { print("never"); }\n'
                 'emit system.shutdown;\nemit other;\nprint("top");') == ["top", "bye", "written"]


def test_shutdown_stops_a_chain_of_events() -> None:
    assert lines('on ping (e) { if (e.n == 3) { emit system.shutdown; } emit ping { n: e.n + 1 };'
                 ' print(e.n); }\nemit ping { n: 0 };', timeout=30) == ["0", "1", "2", "3"]


def test_time_limit_gives_exit_3_and_names_what_still_runs() -> None:
    result = run('print("before");\non system.start {\n  await { durationMs: 60000 };\n'
                 '  print("never");\n}', timeout=0.3)
    assert result.code == 3
    assert result.out_lines == ["before"]
    assert "time limit" in result.err
    assert "handler at prog.cx:2 (on system.start)" in result.err
    assert not leaks(result.err)


# Handler results -------------------------------------------------------------------------------


def test_handler_result_rules() -> None:
    out = lines('on q.one (e) { return 1; }\non q.two (e) { return 2; }\n'
                'on q.two (e) { return 3; }\non q.bare (e) { print("bare ran"); }\n'
                'think { prompt: "p", one: q.one, two: q.two, none: q.zero, bare: q.bare,\n'
                '        handlers: [ d.done ] };\n'
                'on d.done (e) { print([e.one, e.two, e.none, e.bare]);\n'
                '  print(e._errors.none.type); print(e._errors.one); print(e._errors.bare); }')
    assert out == ["bare ran", '[1, [2, 3], null, null]', "no_handler", "null", "null"]


def test_no_errors_key_when_nothing_failed() -> None:
    assert lines('on q.one (e) { return e.prompt + "!"; }\n'
                 'think { prompt: "p", one: q.one };\n'
                 'on thinking.complete (e) { print(e); }\n'
                 'on thinking.error (e) { print("no error event expected"); }') == [
        '{"prompt": "p", "result": "Thought about: p", "one": "p!"}']


def test_parallel_parameters_with_failure_and_timeout() -> None:
    result = run('on p.ok (e) { return "fine"; }\n'
                 'on p.slow (e) { await { durationMs: 500 }; return "late"; }\n'
                 'on p.bad (e) {\n  return e.missing.x + 1;\n}\n'
                 'think { prompt: "p", timeout: 50, slow: p.slow, ok: p.ok, bad: p.bad };\n'
                 'on thinking.complete (e) { print("complete " + e); }\n'
                 'on thinking.error (e) { print("error " + e); }', timeout=30)
    assert result.code == 0, result.err  # handled: on thinking.error, so no report
    assert result.err == ""
    by_kind = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
               for line in result.out_lines}
    assert set(by_kind) == {"complete", "error"}
    complete = by_kind["complete"]
    assert list(complete) == ["prompt", "timeout", "result", "slow", "ok", "bad", "_errors"]
    assert complete["slow"] is None and complete["bad"] is None and complete["ok"] == "fine"
    assert complete["_errors"]["slow"]["type"] == "timeout"
    assert complete["_errors"]["bad"]["type"] == "error"
    assert "cannot apply '+'" in complete["_errors"]["bad"]["message"]
    assert list(complete["_errors"]) == ["slow", "bad"]
    error = by_kind["error"]
    assert error["failedHandlers"] == ["slow", "bad"]  # declaration order
    assert error["errors"]["slow"]["type"] == "timeout"
    assert error["errors"]["bad"]["type"] == "error"


def test_error_event_is_queued_before_the_completions_run() -> None:
    # Completions are delivered at once; the error event, queued first, precedes their emits.
    assert lines('think { prompt: "p", none: q.zero, handlers: [ d.done, e.done ] };\n'
                 'on d.done (e) { print("complete d"); emit after; }\n'
                 'on e.done (e) { print("complete e"); }\n'
                 'on thinking.error (e) { print("error " + e.failedHandlers); }\n'
                 'on after (e) { print("after"); }') == [
        "complete d", "complete e", 'error ["none"]', "after"]


def test_consolidated_payload_reaches_every_completion_event() -> None:
    out = lines('on w.a (e) { return "A"; }\n'
                'think { prompt: "p", a: w.a, handlers: [ one.done, two.done { tag: 2 } ] };\n'
                'on one.done (e) { print("one " + e); }\non two.done (e) { print("two " + e); }')
    assert sorted(out) == [
        'one {"prompt": "p", "result": "Thought about: p", "a": "A"}',
        'two {"prompt": "p", "result": "Thought about: p", "a": "A", "tag": 2}']


def test_plain_call_is_backward_compatible() -> None:
    out = lines('think { prompt: "p", handlers: [ done { tag: "x" }, other.done ] };\n'
                'on done (e) { print(e); }\non other.done (e) { print(e); }')
    assert out == ['{"prompt": "p", "result": "Thought about: p", "tag": "x"}',
                   '{"prompt": "p", "result": "Thought about: p"}']


def test_default_completion_events() -> None:
    out = lines('think { prompt: "a" }; learn { data: "b" }; infer { data: "c" };\n'
                'adapt { prompt: "d" }; chat { message: "e" }; generate { prompt: "f" };\n'
                'emit ai.generate { prompt: "g" };\n'
                'on thinking.complete (e) { print("think " + e.result); }\n'
                'on learning.complete (e) { print("learn " + e.result.learned); }\n'
                'on inference.complete (e) { print("infer " + e.result); }\n'
                'on adaptation.complete (e) { print("adapt " + e.result); }\n'
                'on chat.complete (e) { print("chat " + e.result); }\n'
                'on ai.generated (e) { print("generate " + e.result); }')
    assert sorted(out) == ["adapt Adapted to: d", "chat Reply to: e", "generate Generated: f",
                           "generate Generated: g", "infer Inferred from: c", "learn b",
                           "think Thought about: a"]


# Services as expressions and statements --------------------------------------------------------


def test_service_statement_is_fire_and_forget() -> None:
    assert lines('on go (e) { think { prompt: "p" }; print("after the call"); }\n'
                 'on thinking.complete (e) { print(e.result); }\nemit go;') == [
        "after the call", "Thought about: p"]


def test_service_expression_waits_for_its_result() -> None:
    assert lines('on go (e) { var r = think { prompt: "p" }; print("got " + r); }\n'
                 'emit go;') == ["got Thought about: p"]


def test_service_expression_with_parameters_gives_the_consolidated_payload() -> None:
    assert lines('on w.a (e) { return think { prompt: "inner " + e.prompt }; }\n'
                 'on go (e) { var r = think { prompt: "p", a: w.a }; print(r.a); print(r.result);'
                 ' }\nemit go;') == ["Thought about: inner p", "Thought about: p"]


def test_a_handler_sets_properties_of_its_own_event_and_shares_what_is_inside_it() -> None:
    """docs/language.md: the top level of a parameter's payload is each handler's own; the
    arrays and objects inside it are shared, as every CX array is."""
    assert lines('on a.go (e) { e.tag = "a"; e.items.push(9); return 1; }\n'
                 'on b.go (e) { await { durationMs: 10 }; print(e.tag, e.items.length); }\n'
                 'on done.x (e) { print(e.tag, e.items.length); }\n'
                 'think { prompt: "x", tag: "orig", items: [1], a: a.go, b: b.go, '
                 'handlers: [ done.x ] };') == ["orig 2", "orig 2"]


def test_service_expression_at_the_top_level() -> None:
    assert lines('var r = infer { data: "x" };\nprint(r);') == ["Inferred from: x"]


def test_latency_option_still_gives_the_same_results() -> None:
    assert lines('var r = think { prompt: "p" };\nprint(r);', latency=0.01) == [
        "Thought about: p"]


# Entities --------------------------------------------------------------------------------------


def test_entity_properties_in_realize_and_handlers() -> None:
    out = lines('conscious Agent {\n'
                '  var mood = "calm";\n'
                '  realize(self: conscious) { print("realize " + self.name + " " + self.mood); }\n'
                '  on greet (e) { print(self.name + " greets " + e.who); }\n'
                '}\n'
                'var a = new Agent({ name: "ada" });\n'
                'var b = new Agent({ name: "bob", mood: "x" });\n'
                'print(b.mood);\nemit greet { who: "you" };')
    assert out == ["realize ada calm", "realize bob x", "x", "ada greets you", "bob greets you"]


def test_every_instance_receives_every_matching_event() -> None:
    out = lines('conscious A {\n'
                '  realize(self: conscious) { emit hello { from: self.name }; }\n'
                '  on hello (e) { print(self.name + " <- " + e.from); }\n'
                '}\n'
                'on hello (e) { print("global <- " + e.from); }\n'
                'var a = new A({ name: "a" });\nvar b = new A({ name: "b" });')
    assert out == ["global <- a", "a <- a", "b <- a", "global <- b", "a <- b", "b <- b"]


def test_handlers_are_subscribed_before_realize_runs() -> None:
    # realize suspends after emitting, so the event is dispatched while realize still runs.
    assert lines('object A {\n'
                 '  realize(self: conscious) { emit ping; await { durationMs: 5 };'
                 ' print("realize done"); }\n'
                 '  on ping { print(self.name + " got ping"); }\n'
                 '}\n'
                 'var a = new A({ name: "ada" });') == ["ada got ping", "realize done"]


def test_realize_with_a_config_parameter() -> None:
    assert lines('object T { realize(cfg: object) { print(cfg.n); print(self.n); } }\n'
                 'var t = new T({ n: 3 });') == ["3", "3"]


def test_realize_parameters_hold_their_values_even_if_a_var_redeclares_them() -> None:
    assert lines('object T { realize(cfg: object) { print(cfg.n);\n'
                 '  if (cfg.n > 5) { var cfg = 0; } print(cfg.n); } }\n'
                 'var t = new T({ n: 3 });') == ["3", "3"]


def test_entity_prints_as_its_properties() -> None:
    assert lines('object T { var x = 1; }\nvar t = new T({ y: 2 });\nprint(t); print("t=" + t);\n'
                 't.x += 5; print(t.x); print(t.keys());') == [
        '{"x": 1, "y": 2}', 't={"x": 1, "y": 2}', "6", '["x", "y"]']


def test_learn_self() -> None:
    assert lines('conscious A { realize(self: conscious) { learn self; } }\n'
                 'on learning.complete (e) { print(e.result.memories); print(e.data.name); }\n'
                 'var a = new A({ name: "ada" });') == ["1", "ada"]


# is / not --------------------------------------------------------------------------------------


def test_is_and_not_fire_by_condition() -> None:
    out = lines('is { condition: true, handlers: [ is.true ] };\n'
                'is { condition: false, handlers: [ is.false ] };\n'
                'is { condition: 0, handlers: [ is.zero ] };\n'
                'is { handlers: [ is.none ] };\n'
                'not { condition: false, handlers: [ not.false ] };\n'
                'not { condition: "yes", handlers: [ not.true ] };\n'
                'on is.true { print("is true"); }\non is.false { print("is false"); }\n'
                'on is.zero { print("is zero"); }\non is.none { print("is none"); }\n'
                'on not.false { print("not false"); }\non not.true { print("not true"); }')
    assert sorted(out) == ["is none", "is true", "not false"]


def test_is_puts_data_fields_at_the_top_level_of_the_event() -> None:
    assert lines('is { condition: true, data: { who: "ada", n: 2 }, handlers: [ yes ] };\n'
                 'on yes (e) { print(e.who); print(e.n); print(e.data.who); print(e.result); }'
                 ) == ["ada", "2", "ada", "true"]


def test_is_as_an_expression_gives_the_condition() -> None:
    assert lines('on go { var a = is { condition: 1 }; var b = is { condition: null };\n'
                 '  var c = not { condition: null }; var d = not { condition: 1 };\n'
                 '  print([a, b, c, d]); }\nemit go;') == ["[true, false, true, false]"]


def test_not_event_result_says_it_fired() -> None:
    assert lines('not { condition: false, data: { k: 1 }, handlers: [ n.fired ] };\n'
                 'on n.fired (e) { print(e.result); print(e.k); }') == ["true", "1"]


# await, control flow, assignment ---------------------------------------------------------------


def test_await_timer() -> None:
    assert lines('on system.start { var r = await { durationMs: 10 }; print(r); print("done"); }\n'
                 'on await.complete (e) { print("complete " + e.durationMs); }') == [
        "10", "done", "complete 10"]


def test_await_lets_other_handlers_run() -> None:
    assert lines('on go { print("a1"); await { durationMs: 20 }; print("a2"); }\n'
                 'on go { print("b"); }\nemit go;') == ["a1", "b", "a2"]


def test_if_else_chain() -> None:
    assert lines('var x = 2;\nif (x == 1) { print("one"); } else if (x == 2) { print("two"); }\n'
                 'else { print("other"); }\nif (null) { print("no"); } else { print("else"); }\n'
                 'if ([]) { print("empty array is true"); }\nif ("") { print("no"); }') == [
        "two", "else", "empty array is true"]


def test_while_with_break_and_continue() -> None:
    assert lines('var i = 0; var seen = [];\n'
                 'while (true) { i += 1; if (i > 7) { break; } if (i % 2 == 0) { continue; }\n'
                 '  seen.push(i); }\nprint(seen); print(i);') == ["[1, 3, 5, 7]", "8"]


def test_for_in_over_arrays_objects_and_strings() -> None:
    assert lines('for (var x in [1, 2, 3]) { if (x == 2) { continue; } print(x); }\n'
                 'for (var k in {a: 1, b: 2}) { print(k); }\n'
                 'for (var c in "hi") { print(c); }\n'
                 'for (var n in null) { print("never"); }\n'
                 'for (var y in [1, 2, 3]) { if (y == 2) { break; } print("y" + y); }') == [
        "1", "3", "a", "b", "h", "i", "y1"]


def test_compound_assignment_to_variables_properties_and_indexes() -> None:
    assert lines('var n = 10; n += 5; n -= 3; n *= 2; n /= 4; n %= 4; print(n);\n'
                 'var s = "a"; s += "b"; s += 1; print(s);\n'
                 'var o = {n: 1, l: [1, 2], m: {k: "x"}};\n'
                 'o.n += 4; o.l[1] *= 10; o["n"] -= 1; o.m.k += "y"; o.l[2] = 7; print(o);') == [
        "2", "ab1", '{"n": 4, "l": [1, 20, 7], "m": {"k": "xy"}}']


def test_compound_assignment_evaluates_the_target_once() -> None:
    assert lines('var calls = [];\nvar o = {l: [0]};\n'
                 'on go { o.l[calls.push(1) - 1] += 5; print(o.l); print(calls.length); }\n'
                 'emit go;') == ["[5]", "1"]


def test_logic_operators_return_operands() -> None:
    assert lines('print(null || "d"); print(0 && 1); print(1 && "y"); print("" || 0);\n'
                 'print("a" || "b"); print(!0); print(!"x");') == [
        "d", "0", "y", "0", "a", "true", "false"]


def test_logic_operators_short_circuit() -> None:
    assert lines('var n = null;\nprint(n && n.x.y); print(true || n.x.y.z);\n'
                 'var o = {}; print(o.x || "default");') == ["null", "true", "default"]


def test_handler_assigns_top_level_variable() -> None:
    assert lines('var count = 0;\non tick { count += 1; }\non report { print(count); }\n'
                 'emit tick; emit tick; emit report;') == ["2"]


def test_array_and_string_methods() -> None:
    assert lines('var a = [1, 2]; print(a.push(3)); print(a.pop()); print(a.join("-"));\n'
                 'print(a.includes(2)); print(a.indexOf(5)); print([1, 2, 3].slice(1));\n'
                 'print(" Hi ".trim().toUpperCase()); print("a,b".split(","));\n'
                 'print("abc".startsWith("a")); print({a: 1, b: 2}.values());') == [
        "3", "3", "1-2", "true", "-1", "[2, 3]", "HI", '["a", "b"]', "true", "[1, 2]"]


# Errors ----------------------------------------------------------------------------------------


def test_runtime_error_in_a_handler_is_reported_and_others_still_run() -> None:
    result = run('on go (e) { print("first"); }\n'
                 'on go (e) {\n'
                 '  var x = 1 / 0;\n'
                 '}\n'
                 'on go (e) { print("third"); }\n'
                 'emit go;\nemit after;\non after { print("after"); }')
    assert result.code == 1
    assert result.out_lines == ["first", "third", "after"]
    assert result.err.splitlines() == [
        "prog.cx:3:11: runtime error in a handler of 'go' (handling 'go'): division by zero",
        "      var x = 1 / 0;",
        "              ^~~~~",
    ]


def test_runtime_error_at_the_top_level_stops_the_top_level_only() -> None:
    result = run('on system.start { print("start"); }\nprint("before");\n'
                 'var n = null;\nn.x = 1;\nprint("never");')
    assert result.code == 1
    assert result.out_lines == ["before", "start"]
    assert result.err.startswith("prog.cx:4:1: runtime error at the top level: "
                                 "cannot set property 'x' on null\n    n.x = 1;\n    ^")


@pytest.mark.parametrize(("source", "message"), [
    ("print(x);", "unknown variable 'x'"),
    ("print(x);\nvar x = 1;", "'x' is used before its 'var' declaration"),
    ("x = 1;", "assignment to undeclared variable 'x'"),
    ("return 1;", "'return' is only allowed inside a handler or realize"),
    ("break;", "'break' is only allowed inside a loop"),
    ("object T {}\nprint(T);", "'T' is an entity type"),
    ("object T {}\nobject T {}", "entity 'T' is declared twice"),
    ("var t = new U({});", "unknown entity type 'U'"),
    ("emit a.any;", "cannot emit 'a.any'"),
])
def test_bad_program_gets_position_and_exit_2(source: str, message: str) -> None:
    result = run(source)
    assert result.code == 2
    assert result.out == ""
    assert message in result.err
    assert result.err.startswith("prog.cx:")
    assert "Traceback" not in result.err


@pytest.mark.parametrize("tail", [" ", "\t", "  // comment", "\n ", "\r\n"])
def test_trailing_whitespace_at_end_of_file(tail: str) -> None:
    assert lines("print(1);" + tail) == ["1"]
