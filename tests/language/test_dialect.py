"""Forms the CX programs in the wild use: handlers lists in any payload, ``now()``, ``typeof``,
``this``, ``event.payload``, payloads that are no object, ``substring``, and event names rooted
at a variable, ``self`` or a reserved word."""

from __future__ import annotations

import re

import pytest

from cxlang.compiler import compile_program
from cxlang.syntax import CxError

from ._helpers import run


def diagnostics(source: str) -> list[str]:
    with pytest.raises(CxError) as caught:
        compile_program(source, "prog.cx")
    return [d.message for d in caught.value.diagnostics]


# handlers lists --------------------------------------------------------------------------------


def test_handlers_list_in_an_emit_payload_is_data_for_whoever_serves_it() -> None:
    result = run('on report (event) { print(event.handlers); }\n'
                 'var done = 1;\n'
                 'emit report { handlers: [ demo.done, done.too, "quoted.name", self.x.y,\n'
                 '                          continue.batch, demo.more { x: 1 } ] };')
    assert result.code == 0, result.err
    assert result.out_lines == [
        '["demo.done", "done.too", "quoted.name", "self.x.y", "continue.batch", '
        '{"demo.more": {"x": 1}}]']


@pytest.mark.parametrize("entry", ["5", '"two words"', "[a.b]", "x[0]", "x"])
def test_a_payload_handlers_entry_must_name_an_event(entry: str) -> None:
    messages = diagnostics(f'var x = [1]; emit report {{ handlers: [ {entry} ] }};')
    assert messages == ["a 'handlers' entry must be an event name, like analysis.done"]


def test_a_labelled_entry_outside_a_service_call_is_refused() -> None:
    messages = diagnostics('emit report { handlers: [ a: b.c ] };')
    assert any("only a service call has" in m for m in messages)


def test_a_handlers_key_whose_value_is_no_list_stays_a_value() -> None:
    result = run('var o = { handlers: 5 }; print(o.handlers);')
    assert result.out_lines == ["5"]


@pytest.mark.parametrize("entry", ["position.top", "self.top", '"position.top"',
                                   "continue.top"])
def test_service_handlers_entry_is_an_event_whatever_its_root(entry: str) -> None:
    event = entry.strip('"')
    result = run(f'var position = 1; var top = 2;\n'
                 f'on {event} (e) {{ print("fired " + e.result); }}\n'
                 f'think {{ prompt: "p", handlers: [ {entry} ] }};')
    assert result.code == 0, result.err
    assert result.out_lines == ["fired Thought about: p"]


def test_a_variable_alone_is_no_handlers_entry() -> None:
    messages = diagnostics('var h = 1; think { prompt: "p", handlers: [ h ] };')
    assert messages == ["a 'handlers' entry must be an event name, like analysis.done"]


def test_a_reserved_word_alone_is_still_no_expression() -> None:
    messages = diagnostics("var x = continue.y;")
    assert messages == ["unexpected 'continue', expected an expression"]


# functions -------------------------------------------------------------------------------------


def test_now_is_the_local_time_to_the_millisecond() -> None:
    result = run("print(now());")
    assert result.code == 0, result.err
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", result.out_lines[0])


def test_typeof_names_every_kind_of_value() -> None:
    result = run('object Point { }\n'
                 'var values = [1, 2.5, "s", true, null, [], {}, new Point({})];\n'
                 'for (var v in values) { print(typeof(v)); }')
    assert result.out_lines == ["number", "number", "string", "boolean", "null", "array",
                                "object", "Point"]


@pytest.mark.parametrize(("source", "message"), [
    ("print(now(1));", "now() takes 0 arguments, 1 given"),
    ("print(typeof());", "typeof() takes 1 argument, 0 given"),
    ("print(typeof(1, 2));", "typeof() takes 1 argument, 2 given"),
])
def test_functions_check_their_arguments(source: str, message: str) -> None:
    assert diagnostics(source) == [message]


def test_a_variable_named_like_a_function_is_still_a_variable() -> None:
    messages = diagnostics("var now = 1; print(now());")
    assert any("can be called" in m for m in messages)


def test_substring_works_as_in_javascript() -> None:
    result = run('var s = "hello world";\n'
                 'print(s.substring(6)); print(s.substring(4, 1)); print(s.substring(-3, 2));\n'
                 'print(s.substring(3, 99)); print(s.substring(2.7, 4));')
    assert result.out_lines == ["world", "ell", "he", "lo world", "ll"]


def test_substring_refuses_what_is_no_position() -> None:
    result = run('print("abc".substring("x"));')
    assert result.code == 1
    assert "a position must be a number, got x" in result.err


# this, event.payload, payloads that are no object ----------------------------------------------


def test_this_is_the_entity() -> None:
    result = run('conscious Agent {\n'
                 '    realize(self: conscious) { this.name = "ada"; }\n'
                 '    on agent.ping (event) { print(this.name + " " + (this == self)); }\n'
                 '}\n'
                 'var a = new Agent({});\n'
                 'emit agent.ping;')
    assert result.code == 0, result.err
    assert result.out_lines == ["ada true"]


def test_this_outside_an_entity_is_a_diagnostic() -> None:
    assert diagnostics("print(this);") == ["'this' is only available inside an entity"]


def test_a_variable_named_this_is_a_variable() -> None:
    assert run('var this = 3; print(this);').out_lines == ["3"]


def test_a_payload_that_is_no_object_arrives_as_event_payload() -> None:
    result = run('on note (event) { print(event.payload); print(event); }\n'
                 'emit note, "text"; emit note, 42; emit note, [1, 2];')
    assert result.code == 0, result.err
    assert result.out_lines == ["text", '{"payload": "text"}', "42", '{"payload": 42}',
                                "[1, 2]", '{"payload": [1, 2]}']


def test_event_payload_of_an_object_payload_is_the_payload() -> None:
    result = run('on note (event) { print(event.payload.text); print(event.payload); }\n'
                 'on boxed (event) { print(event.payload); }\n'
                 'emit note { text: "hi" }; emit boxed { payload: "inner", other: 1 };')
    assert result.out_lines == ["hi", '{"text": "hi"}', "inner"]


def test_payload_of_anything_but_the_event_is_a_plain_property() -> None:
    result = run('on note (event) { var o = { a: 1 }; print(o.payload); }\nemit note {};')
    assert result.out_lines == ["null"]


# JavaScript's standard objects -----------------------------------------------------------------


def test_math_functions_are_javascripts() -> None:
    result = run('print(Math.floor(2.7), Math.ceil(2.1), Math.round(2.5), Math.round(-2.5),\n'
                 '      Math.abs(-3), Math.min(1, 2), Math.max(1, 2), Math.sqrt(9),\n'
                 '      Math.sqrt(-1));\n'
                 'var r = Math.random(); print(r >= 0 && r < 1);')
    assert result.code == 0, result.err
    assert result.out_lines == ["2 3 3 -2 3 1 2 3.0 null", "true"]


def test_math_refuses_what_is_no_number() -> None:
    result = run('print(Math.floor("x"));')
    assert result.code == 1
    assert "Math.floor takes numbers, got a string" in result.err


def test_json_round_trips_a_value() -> None:
    result = run('var text = JSON.stringify({ a: [1, "x", null], b: true });\n'
                 'print(text); print(JSON.stringify("s"));\n'
                 'print(JSON.parse(text).a[1]); print(JSON.parse("[1, 2]").length);')
    assert result.out_lines == ['{"a": [1, "x", null], "b": true}', '"s"', "x", "2"]


@pytest.mark.parametrize(("argument", "message"), [
    ('"{"', "JSON.parse: not valid JSON at character 1"),
    ('"nope"', "JSON.parse: not valid JSON at character 0"),
    ('"1' + "0" * 5000 + '"', "JSON.parse: not valid JSON"),
    ("5", "JSON.parse takes a string, got a number"),
])
def test_json_parse_errors_speak_cx(argument: str, message: str) -> None:
    result = run(f"print(JSON.parse({argument}));")
    assert result.code == 1
    assert message in result.err
    assert "Traceback" not in result.err and "JSONDecodeError" not in result.err


def test_json_parse_of_deep_text_is_a_cx_error() -> None:
    deep = "[" * 100_000
    result = run(f'var s = "{deep}"; print(JSON.parse(s));')
    assert result.code == 1
    assert "JSON.parse: " in result.err
    assert "Traceback" not in result.err and "RecursionError" not in result.err


def test_an_unknown_library_function_is_a_diagnostic() -> None:
    assert diagnostics("Math.cube(2);") == [
        "Math has no function 'cube' (it has: abs, ceil, floor, max, min, random, round, sqrt)"]
    assert diagnostics("Math.min(1);") == ["Math.min() takes 2 arguments, 1 given"]


def test_a_variable_named_math_hides_the_library() -> None:
    result = run('var Math = { floor: 1 }; print(Math.keys());')
    assert result.out_lines == ['["floor"]']


def test_date_now_and_new_date() -> None:
    result = run('print(Date.now() > 1700000000000);\n'
                 'var epoch = new Date(0);\n'
                 'print(epoch.getTime(), epoch.toISOString(), typeof(epoch));\n'
                 'print(new Date().getTime() >= Date.now() - 60000);\n'
                 'print(new Date(0).toLocaleDateString().length,'
                 ' new Date(0).toLocaleTimeString().length);')
    assert result.code == 0, result.err
    assert result.out_lines == ["true", "0 1970-01-01T00:00:00.000Z Date", "true", "10 8"]


@pytest.mark.parametrize("arguments", ['"x"', "1, 2", "1e300"])
def test_new_date_refuses_what_is_no_instant(arguments: str) -> None:
    result = run(f"print(new Date({arguments}));")
    assert result.code == 1
    assert "new Date(...) takes nothing (now) or milliseconds since 1970" in result.err


def test_a_declared_date_type_is_the_programs() -> None:
    result = run('object Date { }\nvar d = new Date({ day: 1 }); print(d.day, typeof(d));')
    assert result.out_lines == ["1 Date"]


def test_system_time_now_is_now() -> None:
    result = run('var e = { at: system.time.now };\n'
                 'on done (ev) { print(ev.at.length); }\n'
                 'think { prompt: "p", at: system.time.now, handlers: [ done ] };\n'
                 'print(e.at.length);')
    assert result.code == 0, result.err
    assert result.out_lines == ["23", "23"]


def test_new_with_an_object_initialiser() -> None:
    result = run('object Voice { }\nvar v = new Voice { name: "ada", fast: true };\n'
                 'print(v.name, v.fast);')
    assert result.out_lines == ["ada true"]
