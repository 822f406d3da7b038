"""CX programs whose model acts: ``schema:`` gives an object that fits, ``tools:`` lets the
model call the program's handlers; both checked when the program compiles (on the local
backend, whose answers are fixed)."""

from __future__ import annotations

from ._helpers import leaks, run

TOOLS = """
on weather.lookup (event) { return { city: event.city, celsius: 21 }; }
on clock.now (event)      { return "12:00"; }
"""


def test_a_schema_gives_an_object_that_fits() -> None:
    source = """
    var r = think { prompt: "Paris is 21 degrees and sunny today.",
                    schema: { city: "string", celsius: "number", sunny: "boolean",
                              tags: ["string"], note: "string?" } };
    print(r.city + " " + r.celsius + " " + r.sunny + " " + r.tags.length);
    generate { prompt: "a city", schema: { name: "string" }, handlers: [ made ] };
    on made (event) { print(event.result.name); }
    """
    done = run(source)
    assert (done.code, done.err) == (0, "")
    assert done.out_lines == ["example 1 true 1", "example"]


def test_a_json_schema_works_as_well() -> None:
    source = """
    var r = infer { prompt: "x", schema: { type: "object", required: ["n"],
                                           properties: { n: { type: "integer", minimum: 3 } } } };
    print(r.n);
    """
    assert run(source).out_lines == ["3"]


def test_tools_are_the_programs_handlers_and_the_events_carry_the_calls() -> None:
    source = TOOLS + """
    var answer = think {
        prompt: "What is the weather in Paris, and what time is it?",
        tools: [ weather.lookup { description: "Current weather for a city",
                                  parameters: { city: "string" } },
                 clock.now { description: "The time now" } ],
        handlers: [ answered ]
    };
    print(answer);
    on answered (event) {
        for (var call in event.toolCalls) {
            print(call.name + " -> " + JSON.stringify(call.result));
        }
    }
    """
    done = run(source)
    assert (done.code, done.err) == (0, "")
    assert done.out_lines == [
        'Thought about: What is the weather in Paris, and what time is it? (tools: '
        'weather.lookup gave {"city": "example", "celsius": 21}; clock.now gave "12:00")',
        'weather.lookup -> {"city": "example", "celsius": 21}',
        'clock.now -> "12:00"']


def test_a_tool_that_fails_is_an_error_the_model_reads_in_cx_words() -> None:
    source = """
    on broken.tool (event) { var x = 1 / 0; return x; }
    think { prompt: "x", tools: [ broken.tool ], handlers: [ answered ] };
    on answered (event) { print(event.toolCalls[0].error); print(event.result); }
    """
    done = run(source)
    assert (done.code, done.err) == (0, "")
    assert done.out_lines[0] == "division by zero"
    assert done.out_lines[1] == \
        'Thought about: x (tools: broken.tool gave {"error": "division by zero"})'
    assert leaks(done.out) == []


def test_a_model_still_calling_tools_at_max_steps_is_the_services_error() -> None:
    source = TOOLS + """
    on thinking.error (event) { print(event.error); }
    var r = think { prompt: "x", tools: [ clock.now ], maxSteps: 1 };
    print(r);
    """
    done = run(source)
    assert (done.code, done.err) == (0, "")
    assert done.out_lines == [
        "null", "the model still asked for tools on its turn 1 of maxSteps: 1; raise "
        "maxSteps:, or make the prompt say when the model has enough to answer"]


def test_an_unhandled_failure_of_a_model_that_acts_is_reported() -> None:
    done = run(TOOLS + 'think { prompt: "x", tools: [ clock.now ], maxSteps: 1 };')
    assert done.code == 1
    assert "prog.cx:" in done.err and "maxSteps: 1" in done.err
    assert leaks(done.err) == []


def test_schema_and_tools_are_service_words_not_typos() -> None:
    # No "did you mean" warning: both are words the services read.
    done = run(TOOLS + 'think { prompt: "x", schema: { a: "string" }, tools: [ clock.now ], '
                       "maxSteps: 3, schemaRetries: 0 };")
    assert (done.code, done.err) == (0, "")


def test_a_literal_shape_with_an_unknown_type_is_a_compile_error_at_the_word() -> None:
    done = run("""
    var r = think { prompt: "x",
                    schema: { city: "strin", where: { lat: "numbr?" } } };
    """)
    assert done.code == 2
    assert done.err.count("prog.cx:") == 1  # the first error of a shape
    assert 'prog.cx:3:37: schema: city has the unknown type "strin"; did you mean "string"?' \
        in done.err


def test_tool_entries_are_checked_when_compiling() -> None:
    done = run(TOOLS + """
    think { prompt: "x", tools: [ weather.lookup { descripton: "x",
                                                   parameters: { city: "strng" } } ] };
    """)
    assert done.code == 2
    assert "the tool weather.lookup has descripton; a tool takes description: and " \
        "parameters:" in done.err
    assert 'the parameters of weather.lookup: city has the unknown type "strng"; did you mean ' \
        '"string"?' in done.err


def test_controls_of_a_model_that_acts_are_checked_when_compiling() -> None:
    done = run("""
    think { prompt: "x", maxSteps: 0, schemaRetries: -1 };
    is { evaluate: "x", schema: { a: "string" } };
    """)
    assert done.code == 2
    assert "maxSteps must be a whole number of at least 1" in done.err
    assert "schemaRetries must be a whole number >= 0" in done.err
    assert "is takes no schema:; schema: and tools: are for think" in done.err


def test_a_shape_made_at_run_time_is_checked_when_the_call_runs() -> None:
    done = run("""
    var shape = { city: "txt" };
    var r = think { prompt: "x", schema: shape };
    print(r);
    """)
    assert done.code == 1
    assert 'runtime error in the think call: schema: city has the unknown type "txt"' \
        in done.err
    assert done.out_lines == ["null"]
    assert leaks(done.err) == []
