"""Shapes for answers (schema.py), tools read from a call (tools.py), function names on the
wire, and Python types as schemas: the pieces a model that acts is made of."""

from __future__ import annotations

import dataclasses

import pytest

from cxlang.services.backend import wire_names
from cxlang.services.controls import ControlValueError
from cxlang.services.python_types import answer_type
from cxlang.services.schema import (
    ShapeError,
    checker,
    example_of,
    fit,
    json_schema,
    parse_answer,
)
from cxlang.services.tools import NO_PARAMETERS, Acting, tools_of

SHAPE = {"city": "string", "celsius": "number", "sunny": "boolean", "note": "string?",
         "tags": ["string"], "where": {"lat": "number", "count": "integer"}}


def test_shorthand_becomes_a_closed_json_schema() -> None:
    schema = json_schema(SHAPE)
    assert schema["required"] == ["city", "celsius", "sunny", "tags", "where"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["note"] == {"type": ["string", "null"]}
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["where"]["properties"]["count"] == {"type": "integer"}


def test_a_json_schema_is_taken_as_it_is() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    assert json_schema(schema) == schema
    assert json_schema({"$schema": "https://json-schema.org/draft/2020-12/schema"})


@pytest.mark.parametrize(("shape", "message", "path"), [
    ({"city": "strin"}, 'schema: city has the unknown type "strin"; did you mean "string"?',
     ("city",)),
    ({"a": {"b": ["numbr?"]}}, 'schema: a.b[0] has the unknown type "numbr?"; did you mean '
     '"number?"?', ("a", "b", 0)),
    ({"a": ["string", "number"]}, "schema: a is a list of 2 shapes", ("a",)),
    ({"a": 3}, "schema: a is 3; write a type word", ("a",)),
    ("json", 'schema must be an object like { city: "string" } or a JSON Schema, got "json"',
     ()),
    ({"type": "objekt"}, 'schema is not a valid JSON Schema: type is "objekt"', ("type",)),
])
def test_a_shape_that_is_none_says_what_and_where(
    shape: object, message: str, path: tuple[str | int, ...]
) -> None:
    with pytest.raises(ShapeError) as caught:
        json_schema(shape)
    assert str(caught.value).startswith(message)
    assert caught.value.path == path


@pytest.mark.parametrize(("value", "problem"), [
    ({"city": "P", "celsius": "21", "sunny": True, "tags": [], "where": {"lat": 1, "count": 2}},
     'celsius is "21", not a number'),
    ({"city": "P", "celsius": 21, "sunny": True, "tags": [1], "where": {"lat": 1, "count": 2}},
     "tags[0] is 1, not text"),
    ({"city": "P", "celsius": 21, "tags": [], "where": {"lat": 1, "count": 2}},
     "sunny is missing"),
    ({"city": "P", "celsius": 21, "sunny": True, "tags": [], "where": {"lat": 1}},
     "where: count is missing"),
    ({"city": "P", "celsius": 21, "sunny": True, "tags": [], "where": {"lat": 1, "count": 1.5}},
     "where.count is 1.5, not a whole number"),
    ({"city": "P", "celsius": 21, "sunny": True, "tags": [], "where": {"lat": 1, "count": 1},
      "wind": 3}, "the answer has wind, which the schema does not have"),
    ([1], "the answer is [1], not an object"),
])
def test_what_does_not_fit_is_said_in_cx_words(value: object, problem: str) -> None:
    said = fit(value, checker(json_schema(SHAPE)))
    assert said is not None
    assert said.startswith(problem)
    assert "'" not in said and "True" not in said  # no Python reprs


def test_example_values_fit_their_schema() -> None:
    schema = json_schema(SHAPE)
    example = example_of(schema)
    assert fit(example, checker(schema)) is None
    assert example["city"] == "example" and example["celsius"] == 1 and example["sunny"] is True
    assert example_of({"enum": ["a", "b"]}) == "a"
    assert example_of({"type": "integer", "minimum": 5}) == 5
    pydantic_like = {"type": "object", "properties": {"inner": {"$ref": "#/$defs/In"}},
                     "$defs": {"In": {"type": "object", "properties": {"x": {"type": "boolean"}}}}}
    assert example_of(pydantic_like) == {"inner": {"x": True}}


def test_an_answer_is_read_as_json_fenced_or_not() -> None:
    assert parse_answer('{"a": 1}') == ({"a": 1}, None)
    assert parse_answer('```json\n{"a": 1}\n```') == ({"a": 1}, None)
    assert parse_answer("Sure! here") == (None, 'the answer is not JSON: "Sure! here"')


def test_wire_names_follow_the_api_and_read_back() -> None:
    names = wire_names(["weather.lookup", "weather__lookup", "a-b.c d", "x" * 80])
    assert names["weather__lookup"] == "weather.lookup"
    assert names["weather__lookup_2"] == "weather__lookup"
    assert names["a-b__c_d"] == "a-b.c d"
    assert all(len(name) <= 64 for name in names)
    assert len(names) == 4


def test_tools_are_read_from_the_call() -> None:
    tools = tools_of([{"event": "weather.lookup", "description": "Weather",
                       "parameters": {"city": "string"}}, {"event": "clock.now"}])
    assert [tool.event for tool in tools] == ["weather.lookup", "clock.now"]
    assert tools[0].parameters["required"] == ["city"]
    assert tools[1].parameters == NO_PARAMETERS and tools[1].description is None


@pytest.mark.parametrize(("listed", "message"), [
    ("weather.lookup", "tools must be a list of events"),
    ([3], "a tool is an event"),
    ([{"event": "a.b", "descripton": "x"}], "the tool a.b has descripton; a tool takes"),
    ([{"event": "a.b", "description": 3}], "the description of the tool a.b must be text"),
    ([{"event": "a.b", "parameters": {"x": "strng"}}],
     'the parameters of a.b: x has the unknown type "strng"; did you mean "string"?'),
    ([{"event": "a.b"}, {"event": "a.b"}], "the tool a.b is listed twice"),
])
def test_a_tool_list_that_cannot_be_one_is_the_programs_mistake(
    listed: object, message: str
) -> None:
    with pytest.raises(ControlValueError, match="^" + message.replace("?", r"\?")):
        tools_of(listed)


def test_acting_reads_its_controls_with_their_defaults() -> None:
    assert Acting.of({"prompt": "x"}) is None
    acting = Acting.of({"schema": {"a": "string"}, "timeout": 500, "maxConcurrency": 2})
    assert acting is not None
    assert (acting.max_steps, acting.schema_retries, acting.timeout, acting.max_concurrency,
            acting.fail_fast) == (8, 1, 0.5, 2, False)
    with pytest.raises(ControlValueError, match="schema: a has the unknown type"):
        Acting.of({"schema": {"a": "text"}})


@dataclasses.dataclass
class Inner:
    lat: float


@dataclasses.dataclass
class Weather:
    city: str
    tags: list[str]
    where: Inner
    count: int = 0
    note: str | None = None


def test_a_dataclass_is_a_schema_and_its_answer_an_instance() -> None:
    schema, made = answer_type(Weather)
    assert schema["required"] == ["city", "tags", "where"]
    value = example_of(schema)
    assert fit(value, checker(schema)) is None
    weather = made(value)
    assert weather == Weather("example", ["example"], Inner(1.0), 1, "example")
    assert isinstance(weather.where.lat, float)


def test_a_pydantic_model_is_a_schema_and_validates_its_answer() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        city: str
        inner: Inner | None = None

    schema, made = answer_type(Model)
    value = example_of(schema)
    assert fit(value, checker(schema)) is None
    assert made(value) == Model(city="example", inner=Inner(1.0))


def test_shapes_and_json_schemas_pass_through_the_python_types() -> None:
    shape, made = answer_type({"a": "string"})
    assert shape == {"a": "string"} and made({"a": "x"}) == {"a": "x"}
    with pytest.raises(TypeError, match=r"schema=: Bad.f is .*cannot be described"):
        answer_type(dataclasses.make_dataclass("Bad", [("f", set[int])]))
