"""Event references: which properties of a service call are parallel handler parameters.

The compiler decides from scopes: a dotted name whose root is not a variable is an event; the
decision is visible in ``CompiledProgram.call_sites`` (each with its ``HandlerParameters``).
"""

from __future__ import annotations

import pytest

from cxlang.compiler import compile_program
from cxlang.syntax import CxError

from ._helpers import POSITION, run


def sites(source: str) -> list[tuple[tuple[str, str], ...]]:
    """The handler parameters of every service call site, in source order."""
    program = compile_program(source, "prog.cx")
    in_order = sorted(program.call_sites, key=lambda site: (site.span.line, site.span.column))
    return [site.parameters.pairs for site in in_order]


def diagnostics(source: str) -> list[str]:
    with pytest.raises(CxError) as caught:
        compile_program(source, "prog.cx")
    rendered = caught.value.render()
    assert POSITION.search(rendered)
    return [d.message for d in caught.value.diagnostics]


# Decisions -------------------------------------------------------------------------------------


def test_dotted_name_whose_root_is_no_variable_is_a_parameter() -> None:
    assert sites('think { prompt: "p", analytics: analytics.complete };') == [
        (("analytics", "analytics.complete"),)]


def test_parameters_keep_declaration_order() -> None:
    source = 'think { prompt: "p", z: z.done, a: a.done, m: m.long.event.name };'
    assert sites(source) == [(("z", "z.done"), ("a", "a.done"), ("m", "m.long.event.name"))]


def test_handler_parameter_name_is_a_value() -> None:
    source = 'on x.y (event) { think { prompt: "p", data: event.result }; }'
    assert sites(source) == [()]


def test_other_handler_parameter_name_is_not_a_variable_there() -> None:
    # Only the handler's own parameter is a variable: 'event' is not one inside 'on x.y (ev)'.
    source = 'on x.y (ev) { think { prompt: "p", data: ev.result, more: event.result }; }'
    assert sites(source) == [(("more", "event.result"),)]


def test_top_level_variable_is_a_value_even_inside_a_handler() -> None:
    source = ('var analytics = { complete: 1 };\n'
              'on x.y (event) { think { prompt: "p", a: analytics.complete }; }\n'
              'think { prompt: "p", a: analytics.complete };')
    assert sites(source) == [(), ()]


def test_handler_local_variable_shadows() -> None:
    source = ('on x.y (event) { var analytics = { complete: 1 };\n'
              '  think { prompt: "p", a: analytics.complete }; }\n'
              'on x.z (event) { think { prompt: "p", a: analytics.complete }; }')
    assert sites(source) == [(), (("a", "analytics.complete"),)]


def test_loop_variable_is_a_value() -> None:
    source = 'for (var item in [{ done: 1 }]) { think { prompt: "p", a: item.done }; }'
    assert sites(source) == [()]


def test_single_names_and_literals_are_values() -> None:
    source = 'var n = 1; think { prompt: "p", a: n, b: 2, c: "x.y", d: [n], e: { f: n } };'
    assert sites(source) == [()]


def test_only_a_property_value_itself_can_be_an_event_reference() -> None:
    # Nested inside an array or object, a dotted name is an ordinary (here unknown) variable.
    messages = diagnostics('think { prompt: "p", d: [a.b], e: { f: c.d } };')
    assert messages == ["unknown variable 'a'", "unknown variable 'c'"]


def test_self_is_a_value_in_an_entity() -> None:
    source = 'conscious T { on q.r { think { prompt: "p", a: self.name }; } }'
    assert sites(source) == [()]


def test_variable_used_before_its_var_in_a_handler_is_an_error() -> None:
    source = 'on x.y { think { prompt: "p", a: analytics.complete }; var analytics = 1; }'
    assert any("before its 'var'" in m for m in diagnostics(source))


def test_top_level_variable_used_before_its_var_is_an_error_not_an_event() -> None:
    source = 'think { prompt: "p", a: cfg.value };\nvar cfg = { value: 1 };'
    assert any("'cfg' is used before its 'var'" in m for m in diagnostics(source))


def test_handlers_list_splits_completions_and_labelled_parameters() -> None:
    source = 'think { prompt: "p", handlers: [ a.done, b { tag: "x" }, audit: audit.log ] };'
    assert sites(source) == [(("audit", "audit.log"),)]
    result = run(source + '\n'
                 'on a.done (e) { print("a.done " + e.audit + " " + e.tag); }\n'
                 'on b (e) { print("b " + e.tag + " " + e.audit); }\n'
                 'on audit.log (e) { return "logged " + e.prompt; }')
    assert result.code == 0, result.err
    assert sorted(result.out_lines) == ["a.done logged p null", "b x logged p"]


def test_properties_and_labelled_entries_combine_in_declaration_order() -> None:
    source = 'think { prompt: "p", one: x.one, handlers: [ two: x.two, done ], three: x.three };'
    assert sites(source) == [(("one", "x.one"), ("two", "x.two"), ("three", "x.three"))]


def test_each_call_site_has_its_own_parameters() -> None:
    source = ('think { prompt: "p", a: a.go };\n'
              'on q { var r = infer { data: 1, b: b.go }; }\n'
              'conscious T { realize() { learn { data: 1, c: c.go }; } }\n'
              'emit ai.generate { prompt: "p", d: d.go };')
    assert sorted(sites(source)) == [(("a", "a.go"),), (("b", "b.go"),), (("c", "c.go"),),
                                     (("d", "d.go"),)]


# Refusals --------------------------------------------------------------------------------------


def test_duplicate_parameter_names_are_a_diagnostic() -> None:
    messages = diagnostics('think { prompt: "p", a: x.y, a: z.w };')
    assert any("'a' is named twice" in m for m in messages)


def test_duplicate_between_property_and_handlers_entry_is_a_diagnostic() -> None:
    messages = diagnostics('think { prompt: "p", audit: x.y, handlers: [ audit: audit.log ] };')
    assert any("'audit' is named twice" in m for m in messages)


@pytest.mark.parametrize("source", [
    'think { prompt: "p", _errors: x.failed };',
    'think { prompt: "p", handlers: [ done, _errors: x.failed ] };',
])
def test_errors_is_refused_as_a_parameter_name(source: str) -> None:
    # The consolidated payload keeps the call's failures under '_errors': a result there is lost.
    messages = diagnostics(source)
    assert messages == ["handler parameter '_errors' is reserved: the consolidated payload keeps "
                        "the failures of the call's parameters under '_errors'; give the "
                        "parameter another name"]


def test_errors_as_a_plain_value_is_no_parameter() -> None:
    assert sites('var x = { failed: 1 }; think { prompt: "p", _errors: x.failed };') == [()]


@pytest.mark.parametrize("source", [
    'think { prompt: "p", a: x.any };',
    'think { prompt: "p", a: any.done };',
    'think { prompt: "p", handlers: [ x.any ] };',
    'think { prompt: "p", handlers: [ a: any.x ] };',
    'think { prompt: "p", handlers: [ any.x { tag: 1 } ] };',
])
def test_any_in_an_event_reference_is_a_diagnostic(source: str) -> None:
    messages = diagnostics(source)
    assert any("'any'" in m for m in messages)


@pytest.mark.parametrize("value", ["5", '"done"', "{ a: 1 }", "null", "analysis.done"])
def test_handlers_must_be_a_list(value: str) -> None:
    messages = diagnostics(f'think {{ prompt: "p", handlers: {value} }};')
    assert any("'handlers' must be a list" in m for m in messages)


@pytest.mark.parametrize("entry", ["5", '"a b"', '""', "h", "[a.b]", "h[0]"])
def test_handlers_entries_must_name_events(entry: str) -> None:
    messages = diagnostics(f'var h = {{}}; think {{ prompt: "p", handlers: [ {entry} ] }};')
    assert any("must be an event name" in m for m in messages)


def test_labelled_handlers_entry_must_name_an_event() -> None:
    messages = diagnostics('think { prompt: "p", handlers: [ a: 5 ] };')
    assert any("'a' must name an event" in m for m in messages)


def test_handlers_forms_outside_a_service_call_are_refused() -> None:
    messages = diagnostics('var x = [ a: a.done ];')
    assert any("only allowed in a service call" in m for m in messages)


def test_all_diagnostics_are_reported_together() -> None:
    messages = diagnostics('think { prompt: "p", a: x.any, handlers: 5 };\n'
                           'think { prompt: "p", b: x.y, b: x.z };')
    assert len(messages) == 3


# Running ---------------------------------------------------------------------------------------


def test_parameter_runs_and_value_passes_through() -> None:
    result = run('on analytics.complete (event) { return { tone: "positive", saw: event.prompt };'
                 ' }\n'
                 'on x.y (event) {\n'
                 '  think { prompt: "q3", data: event.result, analytics: analytics.complete,\n'
                 '          handlers: [ analysis.done ] };\n'
                 '}\n'
                 'on analysis.done (event) { print(event.data); print(event.analytics); }\n'
                 'emit x.y { result: 41 };')
    assert result.code == 0, result.err
    assert result.out_lines == ["41", '{"tone": "positive", "saw": "q3"}']


def test_top_level_variable_value_is_sent_not_run_as_a_handler() -> None:
    result = run('var analytics = { complete: "from a variable" };\n'
                 'on analytics.complete (e) { print("must not run"); return 1; }\n'
                 'on go (e) { think { prompt: "p", a: analytics.complete }; }\n'
                 'on thinking.complete (e) { print(e.a); }\n'
                 'emit go;')
    assert result.code == 0, result.err
    assert result.out_lines == ["from a variable"]


def test_shadowing_local_is_a_value_and_other_handler_gets_the_event() -> None:
    result = run('on analytics.complete (e) { return "handler ran"; }\n'
                 'on one (e) { var analytics = { complete: "local" };\n'
                 '  think { prompt: "p", a: analytics.complete, handlers: [ one.done ] }; }\n'
                 'on two (e) { think { prompt: "p", a: analytics.complete, '
                 'handlers: [ two.done ] }; }\n'
                 'on one.done (e) { print("one " + e.a); }\n'
                 'on two.done (e) { print("two " + e.a); }\n'
                 'emit one; emit two;')
    assert result.code == 0, result.err
    assert sorted(result.out_lines) == ["one local", "two handler ran"]
