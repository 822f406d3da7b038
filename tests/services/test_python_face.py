"""cxlang.Services: the AI services from Python, on the local backend and on a loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import cxlang
from cxlang.runtime import HandlerParameters
from cxlang.runtime.observe import Span
from cxlang.services import (
    BackendSettings,
    BackendUnavailableError,
    ServiceInvoker,
    ServiceRequest,
)

from .openai_server import HOLD, OpenAIServer, delay, status

SETTINGS_ENV = ("CX_BACKEND", "CX_MODEL", "CX_EMBEDDING_MODEL", "OPENAI_BASE_URL",
                "OPENAI_API_KEY")


@pytest.fixture
async def local(rt: cxlang.Runtime) -> AsyncIterator[cxlang.Services]:
    async with cxlang.Services(rt, backend="local") as svc:
        yield svc


@pytest.fixture
async def remote(rt: cxlang.Runtime, settings: BackendSettings) -> AsyncIterator[cxlang.Services]:
    async with cxlang.Services(rt, settings=settings) as svc:
        yield svc


@pytest.fixture
def heard(rt: cxlang.Runtime) -> list[str]:
    """Every event a service call could emit: the Python face is to emit none of them."""
    names: list[str] = []
    for pattern in ("any.complete", "any.error", "any.any.chunk", "ai.generated",
                    "ai.generate.error", "is.error", "system.error"):
        rt.on(pattern, lambda event: names.append(event.name), inline=True)
    return names


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll without blocking the loop (the client under test needs it to make progress)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# Every method, local backend ----------------------------------------------------------------------


async def test_every_method_answers_on_the_local_backend(
    rt: cxlang.Runtime, local: cxlang.Services, heard: list[str]
) -> None:
    assert await local.think("Summarise Q3") == "Thought about: Summarise Q3"
    assert await local.chat("hello", system="Be brief.") == "Reply to: hello"
    assert await local.is_("the text is polite", data={"text": "thanks"}) is True
    await local.learn("Q3 revenue rose 12%")
    await local.learn("Q4 is planned flat")
    assert len(local.memory) == 2
    pieces = [piece async for piece in local.stream("a haiku")]
    assert pieces == ["Thought ", "about: ", "a ", "haiku"]
    await rt.run_until_idle()
    assert heard == []  # values come back from the await; no completion events


async def test_the_same_calls_from_a_program_are_heard_as_events(
    rt: cxlang.Runtime, local: cxlang.Services, heard: list[str]
) -> None:
    # The contrast that makes `heard == []` above mean something: the program face emits.
    program = ServiceInvoker(rt, local.backend)
    for service, properties in (("think", {"prompt": "Q3"}), ("learn", {"data": "x"}),
                                ("chat", {"message": "hi", "stream": True})):
        await program.call(service, properties, HandlerParameters({}), ())
    await rt.run_until_idle()
    assert set(heard) == {"thinking.complete", "learning.complete", "chat.complete",
                          "chat.complete.chunk"}


async def test_settings_name_the_backend_the_calls_went_to(local: cxlang.Services) -> None:
    assert local.settings.backend == "local"
    assert local.backend.name == "local"


async def test_latency_slows_the_local_backend_like_a_model(rt: cxlang.Runtime) -> None:
    async with cxlang.Services(rt, backend="local", latency=0.1) as svc:
        started = time.perf_counter()
        await asyncio.gather(*(svc.think(f"q{i}") for i in range(5)))
        elapsed = time.perf_counter() - started
    assert 0.1 <= elapsed < 0.4  # five calls overlap: about one latency, not five


# Every method, openai backend ---------------------------------------------------------------------


async def test_think_sends_the_prompt_and_options_and_returns_the_text(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.reply("Q3 numbers", "Revenue rose.")
    text = await remote.think("Summarise the Q3 numbers", system="Be brief.",
                              context="Q3 report", temperature=0.2, max_tokens=40)
    assert text == "Revenue rose."
    (exchange,) = server.exchanges
    assert exchange.body["temperature"] == 0.2
    assert exchange.body["max_tokens"] == 40
    assert exchange.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Context: Q3 report\n\nSummarise the Q3 numbers"},
    ]


async def test_chat_sends_the_history_and_answers_its_last_turn(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    history = [{"role": "user", "content": "My name is Ada."},
               {"role": "assistant", "content": "Hello Ada."},
               {"role": "user", "content": "What is my name?"}]
    assert await remote.chat(messages=history, system="Remember names.") == \
        "echo: What is my name?"
    assert await remote.chat("And now?", messages=history[:1]) == "echo: And now?"
    first, second = server.exchanges
    assert first.body["messages"] == [{"role": "system", "content": "Remember names."},
                                      *history]
    assert second.body["messages"][1:] == [*history[:1], {"role": "user", "content": "And now?"}]


async def test_chat_or_stream_with_nothing_to_answer_is_refused(local: cxlang.Services) -> None:
    with pytest.raises(ValueError, match=r"chat\(\) needs a message, or messages="):
        await local.chat()
    with pytest.raises(ValueError, match=r"stream\(\) needs a prompt, or messages="):
        local.stream()


async def test_is_gives_the_models_yes_or_no_about_the_data(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.reply("rude", "No.")
    server.reply("polite", "Yes")
    assert await remote.is_("the text is rude", data={"text": "Thank you!"}) is False
    assert await remote.is_("the text is polite", data={"text": "Thank you!"},
                            context="an email") is True
    user = server.exchanges[1].body["messages"][1]["content"]
    assert user == ('Context: an email\nData: {"text": "Thank you!"}\n'
                    "Statement: the text is polite\nDoes the statement hold?")


async def test_learnt_texts_reach_later_calls_through_the_same_memory(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    await remote.learn("the launch codename is Bluebird")
    await remote.learn("lunch is at noon")
    await remote.think("what is the launch codename?", recall=1)
    await remote.think("what is the launch codename?", recall=0)
    embeddings = [e for e in server.exchanges if e.path == "/v1/embeddings"]
    assert [e.body["input"] for e in embeddings[:2]] == [["the launch codename is Bluebird"],
                                                         ["lunch is at noon"]]
    with_recall, without = (e.body["messages"][0]["content"] for e in server.exchanges
                            if e.path == "/v1/chat/completions")
    assert with_recall.endswith("Things learnt earlier (use them where they help):\n"
                                "- the launch codename is Bluebird")
    assert "learnt" not in without
    assert len(remote.memory) == 2


async def test_stream_yields_the_text_as_it_arrives(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.reply("autumn", "Leaves fall slowly down")
    pieces = [piece async for piece in remote.stream("a line about autumn")]
    assert pieces == ["Leaves ", "fall ", "slowly ", "down"]
    assert server.exchanges[0].body["stream"] is True
    chat = [piece async for piece in remote.stream(messages=[{"role": "user", "content": "hi"}])]
    assert "".join(chat) == "echo: hi"
    assert server.exchanges[1].body["messages"][0]["content"] == "You are a helpful assistant."


# Failures -----------------------------------------------------------------------------------------


async def test_a_failed_model_call_raises_backend_error_and_emits_nothing(
    rt: cxlang.Runtime, server: OpenAIServer, remote: cxlang.Services, heard: list[str]
) -> None:
    server.always("BROKEN", status(500))
    with pytest.raises(cxlang.BackendError, match="the server answered 500 Internal Server "
                       "Error: injected 500; gave up after 3 attempts"):
        await remote.think("BROKEN")
    with pytest.raises(cxlang.BackendError, match="gave up"):
        await remote.is_("BROKEN holds")
    with pytest.raises(cxlang.BackendError, match="gave up"):
        _ = [piece async for piece in remote.stream("BROKEN")]
    await rt.run_until_idle()
    assert heard == []


async def test_a_bad_option_raises_saying_what_it_takes(local: cxlang.Services) -> None:
    with pytest.raises(ValueError, match="recall must be a whole number >= 0"):
        await local.think("x", recall=-1)
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        await local.chat("x", temperature=-1)
    with pytest.raises(ValueError, match="maxTokens must be a whole number of at least 1"):
        _ = [piece async for piece in local.stream("x", max_tokens=0)]


async def test_the_openai_backend_without_a_model_says_how_to_name_one(
    rt: cxlang.Runtime
) -> None:
    with pytest.raises(BackendUnavailableError, match="needs a model: --model NAME or CX_MODEL"):
        cxlang.Services(rt, settings=BackendSettings(backend="openai"))


async def test_parallel_options_without_parallel_are_refused(local: cxlang.Services) -> None:
    with pytest.raises(TypeError, match=r"steer the handlers of parallel=.*asyncio\.timeout"):
        await local.think("x", timeout=5.0)  # type: ignore[call-overload]


# Inside handlers, and as a parallel call's source step --------------------------------------------


async def test_handlers_await_model_calls_from_any_start(
    rt: cxlang.Runtime, server: OpenAIServer, remote: cxlang.Services
) -> None:
    @rt.on("ask.eager")
    async def eager(event: cxlang.Event) -> str:
        return await remote.think("eager " + event.payload["q"])

    @rt.on("ask.inline", inline=True)  # starts in its caller's task: httpx must not mind
    async def inline(event: cxlang.Event) -> str:
        return await remote.chat("inline " + event.payload["q"])

    assert await rt.emit_parallel(["ask.eager", "ask.inline"], {"q": "Q3"}) == [
        ["echo: eager Q3"], ["echo: inline Q3"]]
    assert len(server.exchanges) == 2


async def test_parallel_runs_the_handlers_over_the_answer_and_keeps_partial_failures(
    rt: cxlang.Runtime, server: OpenAIServer, remote: cxlang.Services, heard: list[str]
) -> None:
    server.always("SLOW", delay(0.2))
    ran: list[str] = []

    @rt.on("tone.check")
    async def tone(event: cxlang.Event) -> str:
        return await remote.think("SLOW tone of " + event.payload["result"])

    @rt.on("summary.make")
    async def summary(event: cxlang.Event) -> str:
        return await remote.think("SLOW summary of " + event.payload["result"])

    @rt.on("audit.run")
    async def audit(event: cxlang.Event) -> None:
        ran.append(event.payload["prompt"])
        raise ValueError("audit trail missing")

    @rt.on("archive.run")
    async def archive(event: cxlang.Event) -> None:
        await asyncio.sleep(30)

    res = await remote.think("Analyse Q3", system="Be brief.", parallel={
        "tone": "tone.check", "summary": "summary.make", "audit": "audit.run",
        "archive": "archive.run"}, timeout=1.0)
    assert isinstance(res, cxlang.ParallelExecutionResult)
    assert res.payload == {
        "prompt": "Analyse Q3", "system": "Be brief.", "result": "echo: Analyse Q3",
        "tone": "echo: SLOW tone of echo: Analyse Q3",
        "summary": "echo: SLOW summary of echo: Analyse Q3",
        "audit": None, "archive": None,
        "_errors": {"audit": {"type": "error", "message": "ValueError: audit trail missing"},
                    "archive": {"type": "timeout", "message": res.failures["archive"].message}},
    }
    assert ran == ["Analyse Q3"]
    branches = server.about("SLOW")  # the two model calls in handlers overlapped at the server
    assert max(e.started for e in branches) < min(e.ended or 0.0 for e in branches)
    await rt.run_until_idle()
    assert heard == []  # partial failures are the result's data, not thinking.error


async def test_parallel_after_chat_and_its_options(
    rt: cxlang.Runtime, local: cxlang.Services
) -> None:
    @rt.on("first.fail")
    async def fail(event: cxlang.Event) -> None:
        raise RuntimeError("no")

    @rt.on("second.wait")
    async def wait(event: cxlang.Event) -> str:
        await asyncio.sleep(30)
        return "never"

    res = await local.chat("hi", parallel={"first": "first.fail", "second": "second.wait"},
                           fail_fast=True, max_concurrency=2)
    assert res.payload["result"] == "Reply to: hi"
    assert res.failures["first"].kind == "error"
    assert res.failures["second"].kind == "cancelled"  # fail_fast reached the runtime


async def test_a_failing_model_call_in_a_parallel_call_raises_before_any_handler_runs(
    rt: cxlang.Runtime, server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.always("BROKEN", status(500))
    ran: list[Any] = []
    rt.on("tone.check", ran.append, inline=True)
    with pytest.raises(cxlang.BackendError, match="injected 500"):
        await remote.think("BROKEN", parallel={"tone": "tone.check"})
    assert ran == []


# Cancellation, close, traces ----------------------------------------------------------------------


async def test_cancelling_a_call_cancels_its_request_at_the_server(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.always("HANG", delay(30))
    call = asyncio.ensure_future(remote.think("HANG"))
    await eventually(lambda: bool(server.about("HANG")))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    (hung,) = server.about("HANG")
    await eventually(lambda: hung.outcome == "disconnected")


async def test_a_timeout_around_a_call_cancels_it(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.always("HANG", delay(30))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await remote.think("HANG")
    (hung,) = server.about("HANG")
    await eventually(lambda: hung.outcome == "disconnected")


async def test_leaving_a_stream_early_ends_its_request_at_the_server(
    server: OpenAIServer, remote: cxlang.Services
) -> None:
    server.always("HOLD", HOLD)  # one piece, then the server waits for the client to go
    async for piece in remote.stream("HOLD three words"):
        assert piece == "echo: "
        break
    (held,) = server.about("HOLD")
    await eventually(lambda: held.outcome == "disconnected")


async def test_leaving_async_with_closes_the_backend_not_the_runtime(
    rt: cxlang.Runtime, settings: BackendSettings
) -> None:
    async with cxlang.Services(rt, settings=settings) as svc:
        assert await svc.think("before") == "echo: before"
    with pytest.raises(RuntimeError, match="client has been closed"):
        await svc.backend.complete(ServiceRequest("think", {"prompt": "after"}))
    for call in (svc.think("after"), svc.learn("after"), svc.is_("after")):
        with pytest.raises(RuntimeError, match=r"Services are closed.*new cxlang\.Services"):
            await call
    with pytest.raises(RuntimeError, match="Services are closed"):
        svc.stream("after")
    await svc.aclose()  # twice is fine
    assert await rt.publish("nobody.listens") == []  # the runtime is the caller's, still open


async def test_a_traced_runtime_records_each_model_call_as_a_service_span(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    spans: list[Span] = []

    class Recorder:
        def started(self, span: Span) -> None:
            pass

        def ended(self, span: Span) -> None:
            spans.append(span)

        def close(self) -> None:
            pass

    server.always("BROKEN", status(500))
    async with cxlang.Runtime(trace=Recorder()) as rt, \
            cxlang.Services(rt, settings=settings) as svc:
        await svc.think("fine")
        with pytest.raises(cxlang.BackendError):
            await svc.learn("BROKEN")
    services = [(s.kind, s.name, s.failure and s.failure.kind) for s in spans
                if s.kind == "service"]
    assert services == [("service", "think", None), ("service", "learn", "error")]


# Settings -----------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: OpenAIServer) -> Path:
    """A working directory whose cx.toml picks the loopback server, and no settings in the
    environment."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cx.toml").write_text(
        f'backend = "openai"\nmodel = "file-model"\nbase_url = "{server.url}"\n'
        "max_retries = 0\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_settings_come_from_the_file_then_the_environment_then_the_arguments(
    rt: cxlang.Runtime, project: Path, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with cxlang.Services(rt) as svc:  # the file
        assert await svc.think("hello") == "echo: hello"
    monkeypatch.setenv("CX_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    async with cxlang.Services(rt) as svc:  # the environment over the file
        await svc.think("hello")
    async with cxlang.Services(rt, model="arg-model", api_key="sk-arg",
                               base_url=server.url + "/") as svc:  # arguments over both
        await svc.think("hello")
    assert [(e.body["model"], e.headers.get("authorization")) for e in server.exchanges] == [
        ("file-model", None), ("env-model", "Bearer sk-env"), ("arg-model", "Bearer sk-arg")]
    async with cxlang.Services(rt, backend="local") as svc:
        assert (svc.settings.backend, svc.settings.source) == ("local", "Services(backend=...)")
        assert await svc.think("hello") == "Thought about: hello"


async def test_explicit_settings_replace_the_file_and_environment(
    rt: cxlang.Runtime, project: Path, settings: BackendSettings,
    monkeypatch: pytest.MonkeyPatch, server: OpenAIServer
) -> None:
    monkeypatch.setenv("CX_MODEL", "env-model")
    async with cxlang.Services(rt, settings=settings, embedding_model="test-embed") as svc:
        await svc.think("hello")
        await svc.learn("a fact")
    assert [e.body["model"] for e in server.exchanges] == ["test-model", "test-embed"]


async def test_without_any_settings_the_backend_is_local(
    rt: cxlang.Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    async with cxlang.Services(rt) as svc:
        assert (svc.settings.backend, svc.settings.source) == ("local", "default")


async def test_a_misspelt_option_is_refused_with_what_was_meant() -> None:
    async with cxlang.Runtime() as rt, cxlang.Services(rt, backend="local") as svc:
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'temprature'; did "
                                            r"you mean 'temperature'\?"):
            await svc.think("p", temprature=0)  # type: ignore[call-overload]
