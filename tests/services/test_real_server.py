"""The openai backend against a real server: llama-cpp-python's own (``python -m
llama_cpp.server``) serving Gemma 3 270M, a base model, with its default options.

These check mechanics (text arrives, in pieces; a stream the server cuts short is an error;
learn and recall work on the server's embeddings; branches queue at a server that answers one
request at a time; a cancelled stream is a client gone), never the model's wisdom. Answers are
a few tokens: two shared cores generate some 30 tokens a second.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from cxlang import Runtime
from cxlang.program import RunOptions, run_source
from cxlang.runtime.resolver import HandlerParameters
from cxlang.services import BackendError, BackendSettings, ServiceInvoker, ServiceRequest
from cxlang.services.openai import OpenAIBackend
from cxlang.services.prompts import chat_messages
from cxlang.services.usage import tallying

from .real_server import ModelServer

# At temperature 0 this model writes on about a dragon for well over 200 tokens.
LONG = "Write a long story about a dragon."
WAIT = 120.0  # a bound on a hang, far above any answer here


@pytest.fixture
async def backend(model_settings: BackendSettings) -> AsyncIterator[OpenAIBackend]:
    made = OpenAIBackend(model_settings)
    yield made
    await made.aclose()


def think(prompt: str, tokens: int = 12, **properties: object) -> ServiceRequest:
    return ServiceRequest("think", {"prompt": prompt, "maxTokens": tokens, "temperature": 0,
                                    **properties})


def run(source: str, settings: BackendSettings) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(backend="openai", settings=settings, timeout=WAIT, out=out, err=err)
    code = run_source(source, "prog.cx", options)
    return int(code), out.getvalue().splitlines(), err.getvalue()


async def same_previous_request(backend: OpenAIBackend) -> None:
    """llama-cpp-python reuses the cached prefix the last prompt shares with the next, which
    changes the arithmetic slightly: answers compare only after the same previous request."""
    await backend.chat(ServiceRequest("chat", {"message": "hello", "maxTokens": 2,
                                               "temperature": 0}))


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll another process's output (it gives no other sign), bounded."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT:g} s for {what}"
        await asyncio.sleep(0.05)


# Text, plain and streamed ------------------------------------------------------------------------

async def test_think_and_chat_answer_and_temperature_0_repeats(
    backend: OpenAIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cxlang.services")
    answers = []
    for _ in range(2):
        await same_previous_request(backend)
        answers.append(await backend.complete(think("What is the capital of France?")))
    assert isinstance(answers[0], str)
    assert answers[0] == answers[1]
    reply = await backend.chat(ServiceRequest("chat", {
        "message": "And yours?", "maxTokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": "My name is Ada."},
                     {"role": "assistant", "content": "Hello Ada."}]}))
    assert isinstance(reply, str)
    # A base model never stops on its own: the answers ran to their maxTokens, which the
    # server reports as finish_reason "length", a success that is noted in the log.
    assert any("stopped at its limit of 12 tokens" in r.getMessage() for r in caplog.records)


async def test_an_answer_without_max_tokens_stops_at_the_settings_max_tokens(
    model_settings: BackendSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cxlang.services")
    capped = OpenAIBackend(replace(model_settings, max_tokens=6))
    try:
        text = await capped.complete(ServiceRequest("think", {"prompt": LONG,
                                                              "temperature": 0}))
    finally:
        await capped.aclose()
    assert len(text.split()) <= 6  # every word takes a token at least
    assert any("stopped at its limit of 6 tokens" in r.getMessage() for r in caplog.records)


async def test_a_stream_arrives_in_pieces_that_join_into_the_plain_answer(
    backend: OpenAIBackend,
) -> None:
    request = think("What is the capital of France?", tokens=16)
    await same_previous_request(backend)
    whole = await backend.complete(request)
    await same_previous_request(backend)
    pieces = [piece async for piece in backend.stream(request)]
    assert len(pieces) > 1
    assert "".join(pieces) == whole


async def test_usage_is_the_servers_count_plain_and_streamed(backend: OpenAIBackend) -> None:
    request = think("What is the capital of France?", tokens=6)
    with tallying() as plain:
        await backend.complete(request)
    with tallying() as streamed:
        _ = [piece async for piece in backend.stream(request)]
    [asked], [streamed_usage] = plain, streamed
    assert asked.model == "openai:gemma" and asked.counted
    assert asked.input_tokens > 5 and 0 < asked.output_tokens <= 6
    # llama-cpp-python's server gives a stream's usage only in versions that know
    # stream_options; else the call is reported as not counted.
    if streamed_usage.counted:
        assert (streamed_usage.input_tokens, streamed_usage.output_tokens) == \
            (asked.input_tokens, asked.output_tokens)


# Streams the server cuts short ------------------------------------------------------------------

async def test_the_server_interrupts_a_stream_with_done_and_no_finish_reason(
    model_server: ModelServer, model_settings: BackendSettings
) -> None:
    """What the fake server's cut_short reproduces, as llama-cpp-python's server sends it when
    a second request arrives while it streams."""
    body = {"model": "gemma", "max_tokens": 200, "temperature": 0, "stream": True,
            "messages": chat_messages(think(LONG))}
    events: list[str] = []
    async with httpx.AsyncClient(base_url=model_server.url + "/", timeout=WAIT) as client:
        async with client.stream("POST", "chat/completions", json=body) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("data: ") and '"content"' in line:
                    events.append(line.removeprefix("data: "))
                    break
            second = asyncio.ensure_future(client.post("chat/completions", json={
                **body, "stream": False, "max_tokens": 2}))
            events += [line.removeprefix("data: ") async for line in lines
                       if line.startswith("data: ")]
        assert (await second).status_code == 200
    assert events, "the server sent no text at all"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None] * len(chunks)
    assert len(chunks) < 200  # cut short: far fewer pieces than asked for


async def test_a_stream_the_server_interrupts_is_an_error_never_a_shorter_answer(
    backend: OpenAIBackend,
) -> None:
    received: list[str] = []
    first_piece = asyncio.Event()

    async def consume() -> None:
        async for piece in backend.stream(think(LONG, tokens=200)):
            received.append(piece)
            first_piece.set()

    streaming = asyncio.ensure_future(consume())
    await asyncio.wait_for(first_piece.wait(), WAIT)
    # Another request while it streams: the server ends the stream with [DONE] and no
    # finish_reason, and answers this one.
    assert isinstance(await backend.complete(think("hi", tokens=2)), str)
    with pytest.raises(BackendError) as caught:
        await asyncio.wait_for(streaming, WAIT)
    assert f"the server cut the answer short after {len(received)} piece" in str(caught.value)
    assert "--interrupt_requests false" in str(caught.value)
    assert 1 <= len(received) < 200


async def test_a_prompt_too_long_for_the_context_says_what_to_do(
    backend: OpenAIBackend,
) -> None:
    long_prompt = think("word " * 2100, tokens=50)
    with pytest.raises(BackendError) as plain:
        await backend.complete(long_prompt)
    assert "the request does not fit the model's context (the server answered 400 Bad " \
           "Request: This model's maximum context length is 2048 tokens. However, you " \
           "requested" in str(plain.value)
    assert str(plain.value).endswith("; shorten the prompt or the messages: history, or lower "
                                     "maxTokens: (or max_tokens in cx.toml)")
    # Streamed, the server answers 200 and an empty stream; its error goes to its own log.
    with pytest.raises(BackendError) as streamed:
        [piece async for piece in backend.stream(long_prompt)]
    assert "the server ended the stream without sending anything (llama-cpp-python's server " \
           "does that when the prompt does not fit the model's context" in str(streamed.value)


# Embeddings: learn and recall -------------------------------------------------------------------

async def test_embeddings_are_one_vector_per_text_even_in_a_batch(
    backend: OpenAIBackend,
) -> None:
    # The server gives one vector per token; in a batch it gets all but the first text wrong.
    texts = ["Ada drinks green tea", "Ada drinks green tea", "The office closes at six"]
    batch = await backend.embed(texts)
    (alone,) = await backend.embed([texts[0]])
    assert len({len(vector) for vector in [*batch, alone]}) == 1
    assert batch[0] == pytest.approx(alone)
    assert batch[1] == pytest.approx(alone)
    assert batch[2] != pytest.approx(alone)


class Recording(OpenAIBackend):
    """The backend, keeping the requests ``complete`` was given (with their memories)."""

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.requests: list[ServiceRequest] = []

    async def complete(self, request: ServiceRequest) -> str:
        self.requests.append(request)
        return await super().complete(request)


async def test_a_later_call_recalls_what_learn_stored(model_settings: BackendSettings) -> None:
    learnt = ["Ada drinks green tea every morning", "The office closes at six",
              "Bob cycles to work"]
    recording = Recording(model_settings)
    try:
        async with Runtime() as runtime:
            invoker = ServiceInvoker(runtime, recording)
            for text in learnt:
                await invoker.call("learn", {"data": text}, HandlerParameters({}), ())
            assert len(invoker.memory) == 3
            # Asked about one memory's very words, the closest is that memory: recall ranks by
            # the server's embeddings (all alike if they were pooled wrong: the first would win).
            await invoker.call("think", {"prompt": learnt[1], "recall": 1, "maxTokens": 2},
                               HandlerParameters({}), ())
    finally:
        await recording.aclose()
    assert recording.requests[-1].memories == (learnt[1],)


def test_learn_and_think_in_a_program(model_settings: BackendSettings) -> None:
    code, out, err = run("""
        var a = learn { data: "Ada drinks green tea every morning" };
        var b = learn { data: "The office closes at six" };
        print(b.memories);
        print(think { prompt: "What does Ada drink?", recall: 1, maxTokens: 8 } != null);
        on learning.error (event) { print("learn failed: " + event.error); }
        on thinking.error (event) { print("think failed: " + event.error); }
    """, model_settings)
    assert (code, out, err) == (0, ["2", "true"], "")


# is / not, parallel branches, cancellation ------------------------------------------------------

async def test_is_and_not_decide(backend: OpenAIBackend) -> None:
    checks = [("is", "the text is polite", {"text": "thank you so much"}),
              ("not", "the customer is angry", {"message": "My order is late again!"}),
              ("is", "the number is even", {"n": 3})]
    for service, statement, data in checks:
        decision = await backend.classify(ServiceRequest(service, {"evaluate": statement,
                                                                   "data": data}))
        assert isinstance(decision, bool)


def test_parallel_branches_queue_at_a_one_at_a_time_server(
    model_settings: BackendSettings,
) -> None:
    code, out, err = run("""
        on analytics.run (event) { return think { prompt: "One word for: " + event.result,
                                                  maxTokens: 6 }; }
        on reporting.run (event) { return think { prompt: "A title for: " + event.result,
                                                  maxTokens: 6 }; }
        on audit.run (event)     { return think { prompt: "A risk in: " + event.result,
                                                  maxTokens: 6 }; }
        think { prompt: "Q3 sales rose by a tenth.", maxTokens: 6, analytics: analytics.run,
                reporting: reporting.run, audit: audit.run, handlers: [ analysis.done ] };
        on analysis.done (event) {
            print(event.analytics != null); print(event.reporting != null);
            print(event.audit != null);
        }
        on thinking.error (event) { print("failed: " + event.error); }
    """, model_settings)
    assert (code, out, err) == (0, ["true", "true", "true"], "")


def test_branches_that_time_out_waiting_for_the_model_say_so_and_fail_the_run(
    model_settings: BackendSettings,
) -> None:
    """Nothing handles these timeouts: each is reported at its parameter, says that the branch
    spent its time waiting for the model, and the run exits 1 (it printed null before)."""
    code, out, err = run("""
        on first.run (event)  { return think { prompt: "One word.", maxTokens: 24 }; }
        on second.run (event) { return think { prompt: "Two words.", maxTokens: 24 }; }
        var r = await { durationMs: 1, timeout: 50, a: first.run, b: second.run };
        print(r.a);
    """, model_settings)
    assert (code, out) == (1, ["null"])
    reports = [line for line in err.splitlines() if line.startswith("prog.cx:")]
    assert [r.split(": the await call's parameter ")[1][:3] for r in reports] == ["'a'", "'b'"]
    for report in reports:
        assert "failed (timed out)" in report
        assert "s waiting for the openai backend's model, which counts against its time" \
            in report


async def test_a_cancelled_stream_is_a_client_gone_and_the_server_moves_on(
    backend: OpenAIBackend, model_server: ModelServer, model_settings: BackendSettings
) -> None:
    gone = "Disconnected from client"  # what the server prints when it notices
    first_piece = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(think(LONG, tokens=1500)):
            first_piece.set()

    streaming = asyncio.ensure_future(consume())
    await asyncio.wait_for(first_piece.wait(), WAIT)
    # Counted now, while this stream holds the model: the server printed any earlier notice
    # before it let go of the model.
    before = model_server.output().count(gone)
    streaming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await streaming
    await until(lambda: model_server.output().count(gone) > before, "the server to notice")
    # It stopped generating: 1500 tokens would take it a minute or more, and a short request
    # is answered well within a read timeout of 20 s.
    quick = OpenAIBackend(replace(model_settings, read_timeout=20.0, max_retries=0))
    try:
        assert isinstance(await quick.complete(think("hi", tokens=2)), str)
    finally:
        await quick.aclose()


# cx backends -------------------------------------------------------------------------------------

def test_cx_backends_calls_an_unlisted_model_usable(
    model_server: ModelServer, tmp_path: Path
) -> None:
    cx = Path(sys.executable).with_name("cx")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "OPENAI_"))}
    done = subprocess.run([str(cx), "backends", "--model", "gemma"], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path,
                          env={**env, "OPENAI_BASE_URL": model_server.url})
    line = done.stdout.splitlines()[1]
    assert line.startswith(f"  openai  available    {model_server.url}, model gemma: not "
                           f"listed by the server (it lists: {model_server.model})")


# A model that acts ------------------------------------------------------------------------------

async def test_a_schema_is_held_to_by_the_servers_grammar(backend: OpenAIBackend) -> None:
    # llama-cpp-python's server takes no json_schema response_format (422): the backend asks
    # for json_object with the schema, which the server turns into a grammar.
    async with Runtime() as runtime:
        invoker = ServiceInvoker(runtime, backend)
        value = await invoker.answer("think", {
            "prompt": "Paris is 21 degrees and sunny today.", "temperature": 0,
            "maxTokens": 60, "schema": {"city": "string", "celsius": "number",
                                        "sunny": "boolean"}})
    assert isinstance(value, dict)
    assert isinstance(value["city"], str) and isinstance(value["sunny"], bool)
    assert isinstance(value["celsius"], int | float)
    assert backend._json_schema_refused  # the fallback is what is tested


async def test_tools_reach_the_server_and_a_model_that_calls_none_answers(
    backend: OpenAIBackend
) -> None:
    # Gemma 3 270M behind the server's default chat format calls no tools: the request with
    # tools is still taken, and the answer is the model's text, with no tool calls.
    calls: list[object] = []
    async with Runtime() as runtime:
        runtime.on("clock.now", lambda event: calls.append(event) or "12:00", inline=True)
        invoker = ServiceInvoker(runtime, backend)
        value = await invoker.answer("think", {
            "prompt": "What time is it?", "temperature": 0, "maxTokens": 12,
            "tools": [{"event": "clock.now", "description": "The time now"}]})
    assert isinstance(value, str)
    assert calls == []
