"""A model that acts (schema: and tools:) through the invoker: on the local backend, and on
the openai backend against the loopback fake server, which speaks ``tools``/``tool_calls``
and ``response_format`` and can refuse ``json_schema``, answer what does not fit, call tools
that do not exist, send arguments that are no JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import cxlang
from cxlang.runtime import HandlerParameters, Runtime
from cxlang.services import BackendSettings, LocalBackend, ServiceInvoker
from cxlang.services.controls import ControlValueError
from cxlang.services.invoker import ServiceFailure
from cxlang.services.openai import OpenAIBackend

from .openai_server import OpenAIServer

GUARD = 20.0  # a bound on a hang, far above any test here
WEATHER = {"event": "weather.lookup", "description": "Current weather for a city",
           "parameters": {"city": "string"}}
CLOCK = {"event": "clock.now", "description": "The time now"}


@dataclass
class Called:
    """What one invoker call gave: its value, its failures, its completion events."""

    value: Any
    failures: list[ServiceFailure]
    events: list[dict[str, Any]]
    errors: list[dict[str, Any]]


async def call(backend: Any, runtime: Runtime, properties: dict[str, Any],
               service: str = "think") -> Called:
    failures: list[ServiceFailure] = []
    events: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    runtime.on("done", lambda e: events.append(dict(e.payload)), inline=True)
    runtime.on("thinking.error", lambda e: errors.append(dict(e.payload)), inline=True)
    invoker = ServiceInvoker(runtime, backend)
    async with asyncio.timeout(GUARD):
        value = await invoker.call(service, properties, HandlerParameters({}),
                                   [("done", None)], failures.append)
        await runtime.run_until_idle()
    return Called(value, failures, events, errors)


def tools(runtime: Runtime) -> None:
    @runtime.on("weather.lookup")
    async def weather(event: cxlang.Event) -> dict[str, Any]:
        return {"city": event.payload["city"], "celsius": 21}

    runtime.on("clock.now", lambda event: "12:00", inline=True)


@pytest.fixture
async def backend(settings: BackendSettings) -> AsyncIterator[OpenAIBackend]:
    made = OpenAIBackend(settings)
    yield made
    await made.aclose()


# The local backend -------------------------------------------------------------------------------

async def test_local_answers_a_schema_with_an_object_that_fits() -> None:
    async with Runtime() as runtime:
        done = await call(LocalBackend(), runtime, {"prompt": "Paris, 21 degrees",
                                                     "schema": {"city": "string",
                                                                "celsius": "number"}})
    assert done.value == {"city": "example", "celsius": 1}
    assert done.events[0]["result"] == done.value and "toolCalls" not in done.events[0]


async def test_local_calls_every_tool_once_then_names_their_results() -> None:
    async with Runtime() as runtime:
        tools(runtime)
        done = await call(LocalBackend(), runtime, {"prompt": "Weather?",
                                                     "tools": [WEATHER, CLOCK]})
    assert done.value == ('Thought about: Weather? (tools: weather.lookup gave {"city": '
                          '"example", "celsius": 21}; clock.now gave "12:00")')
    assert done.events[0]["toolCalls"] == [
        {"name": "weather.lookup", "arguments": {"city": "example"},
         "result": {"city": "example", "celsius": 21}},
        {"name": "clock.now", "arguments": {}, "result": "12:00"}]


async def test_the_tool_calls_of_one_turn_run_at_once() -> None:
    running, most = 0, 0

    async def slow(event: cxlang.Event) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return "ok"

    async with Runtime() as runtime:
        for name in ("a.one", "a.two", "a.three"):
            runtime.on(name, slow)
        listed = [{"event": name} for name in ("a.one", "a.two", "a.three")]
        done = await call(LocalBackend(), runtime, {"prompt": "x", "tools": listed})
        assert most == 3
        capped = await call(LocalBackend(), runtime, {"prompt": "x", "tools": listed,
                                                       "maxConcurrency": 1})
    assert most == 3 and [c["result"] for c in done.events[0]["toolCalls"]] == ["ok"] * 3
    assert capped.value == done.value


async def test_a_tool_that_fails_or_times_out_answers_an_error_the_others_keep_theirs() -> None:
    async def hangs(event: cxlang.Event) -> None:
        await asyncio.sleep(30)

    def fails(event: cxlang.Event) -> None:
        raise ValueError("no such city")

    async with Runtime() as runtime:
        tools(runtime)
        runtime.on("slow.tool", hangs)
        runtime.on("bad.tool", fails, inline=True)
        done = await call(LocalBackend(), runtime, {
            "prompt": "x", "timeout": 100,
            "tools": [WEATHER, {"event": "slow.tool"}, {"event": "bad.tool"}]})
    records = done.events[0]["toolCalls"]
    assert records[0]["result"] == {"city": "example", "celsius": 21}
    assert "error" not in records[0]
    assert records[1]["result"] is None
    assert "did not finish within 0.1 s (handling 'slow.tool')" in records[1]["error"]
    assert records[2]["error"] == "ValueError: no such city"
    assert 'slow.tool gave {"error": "' in done.value
    assert done.failures == []  # the model had its answer: no failure of the call


async def test_fail_fast_cancels_the_other_tool_calls() -> None:
    cancelled = asyncio.Event()

    async def hangs(event: cxlang.Event) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def fails(event: cxlang.Event) -> None:
        raise ValueError("broken")

    async with Runtime() as runtime:
        runtime.on("slow.tool", hangs)
        runtime.on("bad.tool", fails)
        done = await call(LocalBackend(), runtime, {
            "prompt": "x", "failFast": True, "tools": [{"event": "slow.tool"},
                                                       {"event": "bad.tool"}]})
    assert cancelled.is_set()
    records = done.events[0]["toolCalls"]
    assert records[0]["error"] == ("cancelled because 'bad.tool (call_2)' failed and the call "
                                   "is fail-fast")
    assert records[1]["error"] == "ValueError: broken"


async def test_a_wrong_schema_or_tool_list_is_refused_before_anything_runs() -> None:
    async with Runtime() as runtime:
        invoker = ServiceInvoker(runtime, LocalBackend())
        for properties, message in [
            ({"prompt": "x", "schema": {"a": "strin"}}, 'did you mean "string"'),
            ({"prompt": "x", "tools": "weather"}, "tools must be a list"),
            ({"prompt": "x", "maxSteps": 0}, "maxSteps must be a whole number of at least 1"),
            ({"prompt": "x", "schemaRetries": 1.5}, "schemaRetries must be a whole number"),
        ]:
            with pytest.raises(ControlValueError, match=message):
                await invoker.call("think", properties, HandlerParameters({}), ())
        with pytest.raises(ControlValueError, match="is takes no schema: or tools:"):
            await invoker.call("is", {"evaluate": "x", "schema": {"a": "string"}},
                               HandlerParameters({}), ())


# The openai backend ----------------------------------------------------------------------------

async def test_a_schema_goes_as_json_schema_and_the_answer_is_the_object(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("Paris", '{"city": "Paris", "celsius": 21}')
    async with Runtime() as runtime:
        done = await call(backend, runtime, {"prompt": "Paris is 21 degrees",
                                             "schema": {"city": "string", "celsius": "number"}})
    assert done.value == {"city": "Paris", "celsius": 21}
    (body,) = server.chats()
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["city", "celsius"]


async def test_a_server_that_refuses_json_schema_gets_json_object_and_the_schema_in_words(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.refuse_json_schema = True
    server.turns("Paris", '{"city": "Paris"}', '{"city": "Rome"}')
    async with Runtime() as runtime:
        first = await call(backend, runtime, {"prompt": "Paris", "schema": {"city": "string"}})
        second = await call(backend, runtime, {"prompt": "Paris", "schema": {"city": "string"}})
    assert (first.value, second.value) == ({"city": "Paris"}, {"city": "Rome"})
    formats = [body["response_format"]["type"] for body in server.chats()]
    assert formats == ["json_schema", "json_object", "json_object"]  # refused once, remembered
    fallback = server.chats()[1]
    assert fallback["response_format"]["schema"]["properties"] == {"city": {"type": "string"}}
    assert "fits this JSON Schema" in fallback["messages"][0]["content"]


async def test_an_answer_that_does_not_fit_is_asked_for_again_with_what_did_not_fit(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("Paris", '{"city": "Paris", "celsius": "21"}', '{"city": "Paris", "celsius": 21}')
    async with Runtime() as runtime:
        done = await call(backend, runtime, {"prompt": "Paris",
                                             "schema": {"city": "string", "celsius": "number"}})
    assert done.value == {"city": "Paris", "celsius": 21}
    again = server.chats()[1]["messages"]
    assert again[-2] == {"role": "assistant", "content": '{"city": "Paris", "celsius": "21"}'}
    assert again[-1]["role"] == "user"
    assert again[-1]["content"].startswith('That answer does not fit the JSON schema: celsius is '
                                           '"21", not a number.')


async def test_an_answer_that_never_fits_fails_the_call_quoting_it(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("Paris", "It is sunny.", '{"celsius": 21}', '{"celsius": 22}')
    async with Runtime() as runtime:
        runtime.on("thinking.error", lambda e: None, inline=True)
        done = await call(backend, runtime, {"prompt": "Paris", "schema": {"celsius": "number"},
                                             "schemaRetries": 0})
        again = await call(backend, runtime, {"prompt": "Paris", "schema": {"city": "string"}})
    assert done.value is None
    assert [f.message for f in done.failures] == [
        'the model\'s answer does not fit the schema: the answer is not JSON: "It is sunny." '
        "(asked 1 time; schemaRetries: allows more)"]
    assert done.errors[0]["error"] == done.failures[0].message
    assert again.failures[0].message.startswith(
        "the model's answer does not fit the schema: city is missing (asked 2 times")


async def test_parallel_tool_calls_run_and_their_results_go_back_by_call_id(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("weather", [("weather__lookup", '{"city": "Paris"}'),
                             ("weather__lookup", '{"city": "Rome"}'), ("clock__now", "")],
                 "Paris and Rome are 21 degrees at 12:00.")
    async with Runtime() as runtime:
        tools(runtime)
        done = await call(backend, runtime, {"prompt": "weather?", "tools": [WEATHER, CLOCK]})
    assert done.value == "Paris and Rome are 21 degrees at 12:00."
    assert done.events[0]["toolCalls"] == [
        {"name": "weather.lookup", "arguments": {"city": "Paris"},
         "result": {"city": "Paris", "celsius": 21}},
        {"name": "weather.lookup", "arguments": {"city": "Rome"},
         "result": {"city": "Rome", "celsius": 21}},
        {"name": "clock.now", "arguments": {}, "result": "12:00"}]
    first, second = server.chats()
    assert [t["function"]["name"] for t in first["tools"]] == ["weather__lookup", "clock__now"]
    assert first["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assistant, *results = second["messages"][-4:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_1", "call_2", "call_3"]
    assert [(m["role"], m["tool_call_id"], json.loads(m["content"])) for m in results] == [
        ("tool", "call_1", {"city": "Paris", "celsius": 21}),
        ("tool", "call_2", {"city": "Rome", "celsius": 21}),
        ("tool", "call_3", "12:00")]


async def test_streamed_tool_calls_are_put_together_and_the_answer_streamed(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("weather", [("weather__lookup", '{"city": "Paris"}'), ("clock__now", "{}")],
                 "Sunny at noon.")
    chunks: list[str] = []
    async with Runtime() as runtime:
        tools(runtime)
        runtime.on("done.chunk", lambda e: chunks.append(e.payload["chunk"]), inline=True)
        done = await call(backend, runtime, {"prompt": "weather?", "stream": True,
                                             "tools": [WEATHER, CLOCK]})
    assert done.value == "Sunny at noon."
    assert "".join(chunks) == "Sunny at noon."
    assert [c["arguments"] for c in done.events[0]["toolCalls"]] == [{"city": "Paris"}, {}]
    assert all(body["stream"] for body in server.chats())


async def test_an_unknown_tool_and_arguments_that_are_no_json_answer_the_model_an_error(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("weather", [("weather__lookup", '{"city": '), ("oracle", "{}"),
                             ("weather__lookup", '{"town": "Paris"}')], "I could not look.")
    async with Runtime() as runtime:
        tools(runtime)
        done = await call(backend, runtime, {"prompt": "weather?", "tools": [WEATHER]})
    assert done.value == "I could not look."
    assert [c.get("error") for c in done.events[0]["toolCalls"]] == [
        'the arguments are not valid JSON: "{\\"city\\": "',
        "there is no tool called oracle; the tools are weather.lookup",
        "the arguments do not fit the tool: city is missing"]
    results = [m for m in server.chats()[1]["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"])["error"][:24] for m in results] == [
        "the arguments are not va", "there is no tool called ", "the arguments do not fit"]


async def test_a_model_that_keeps_calling_tools_stops_at_max_steps(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("weather", *([[("clock__now", "")]] * 3))
    async with Runtime() as runtime:
        tools(runtime)
        runtime.on("thinking.error", lambda e: None, inline=True)
        done = await call(backend, runtime, {"prompt": "weather?", "tools": [CLOCK],
                                             "maxSteps": 3})
    assert done.value is None
    assert [f.message for f in done.failures] == [
        "the model still asked for tools on its turn 3 of maxSteps: 3; raise maxSteps:, or "
        "make the prompt say when the model has enough to answer"]
    assert len(server.chats()) == 3


async def test_tools_and_a_schema_together_end_with_an_answer_that_fits(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.turns("weather", [("weather__lookup", '{"city": "Paris"}')],
                 '{"city": "Paris", "celsius": 21}')
    async with Runtime() as runtime:
        tools(runtime)
        done = await call(backend, runtime, {"prompt": "weather?", "tools": [WEATHER],
                                             "schema": {"city": "string", "celsius": "number"}})
    assert done.value == {"city": "Paris", "celsius": 21}
    assert len(done.events[0]["toolCalls"]) == 1


async def test_each_model_turn_is_bounded_by_the_calls_timeout(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    from .openai_server import delay  # noqa: PLC0415

    server.turns("weather", [("clock__now", "")])
    server.fail("12:00", delay(30))  # the second turn, which carries the tool's result
    async with Runtime() as runtime:
        tools(runtime)
        runtime.on("thinking.error", lambda e: None, inline=True)
        done = await call(backend, runtime, {"prompt": "weather?", "tools": [CLOCK],
                                             "timeout": 300})
    assert [f.message for f in done.failures] == [
        "openai backend: the model did not answer within the call's timeout: of 300 ms; give "
        "the call a longer timeout:"]


# The Python face -------------------------------------------------------------------------------

@dataclass
class Weather:
    city: str
    celsius: float


async def test_the_python_face_takes_schemas_types_and_tools(
    settings: BackendSettings, server: OpenAIServer
) -> None:
    server.turns("Paris", '{"city": "Paris", "celsius": 21}', '{"city": "Paris", "celsius": 21}')
    server.turns("weather", [("weather__lookup", '{"city": "Paris"}')], "21 in Paris.")
    async with Runtime() as rt, cxlang.Services(rt, settings=settings) as svc:
        tools(rt)
        assert await svc.think("Paris", schema={"city": "string", "celsius": "number"}) == \
            {"city": "Paris", "celsius": 21}
        assert await svc.think("Paris", schema=Weather) == Weather("Paris", 21.0)
        answer = await svc.think("weather?", tools=[WEATHER], timeout=5)
    assert answer == "21 in Paris."
    assert server.chats()[-2]["tools"][0]["function"]["name"] == "weather__lookup"


async def test_the_python_face_on_the_local_backend() -> None:
    async with Runtime() as rt, cxlang.Services(rt, backend="local") as svc:
        tools(rt)
        assert await svc.chat("hi", schema=Weather) == Weather("example", 1.0)
        text = await svc.think("weather?", tools=["clock.now"])
        with pytest.raises(ValueError, match='did you mean "string"'):
            await svc.think("x", schema={"a": "strng"})
    assert text == 'Thought about: weather? (tools: clock.now gave "12:00")'
