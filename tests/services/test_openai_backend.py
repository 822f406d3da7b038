"""The openai backend against a real HTTP server on loopback: protocol, pool, limits, faults."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from cxlang.runtime import HandlerParameters, Runtime
from cxlang.services import (
    BackendError,
    BackendSettings,
    BackendUnavailableError,
    ServiceInvoker,
    ServiceRequest,
)
from cxlang.services.config import DEFAULT_MAX_TOKENS
from cxlang.services.invoker import ServiceFailure
from cxlang.services.openai import OpenAIBackend, list_models
from cxlang.services.retry import RetryPolicy

from .openai_server import (
    DROP,
    DROP_MID_STREAM,
    EMPTY_DELTAS,
    EMPTY_STREAM,
    ENDLESS,
    HOLD,
    MALFORMED,
    PER_TOKEN,
    PINGS,
    Fault,
    OpenAIServer,
    answer,
    cut_short,
    delay,
    drip,
    raw,
    redirect,
    status,
)


class Sleeps:
    """A RetryPolicy sleep that records each wait and takes none of it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def backend(settings: BackendSettings) -> AsyncIterator[OpenAIBackend]:
    made = OpenAIBackend(settings)
    yield made
    await made.aclose()


def recorded(settings: BackendSettings, max_retries: int = 4) -> tuple[OpenAIBackend, Sleeps]:
    sleeps = Sleeps()
    policy = RetryPolicy(max_retries=max_retries, sleep=sleeps, rng=random.Random(7))
    return OpenAIBackend(settings, retry=policy), sleeps


def think(prompt: str, **properties: object) -> ServiceRequest:
    return ServiceRequest("think", {"prompt": prompt, **properties})


def overlapping(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


# The protocol -----------------------------------------------------------------------------------

async def test_complete_sends_a_chat_completion_and_returns_its_text(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    text = await backend.complete(think("Analyse Q3", temperature=0.2, maxTokens=50,
                                        context="sales grew"))
    assert text == "echo: Context: sales grew\n\nAnalyse Q3"
    (exchange,) = server.exchanges
    assert (exchange.method, exchange.path) == ("POST", "/v1/chat/completions")
    body = exchange.body
    assert body["model"] == "test-model"
    assert (body["temperature"], body["max_tokens"]) == (0.2, 50)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "stream" not in body


async def test_chat_passes_the_history_and_the_system_prompt(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    reply = await backend.chat(ServiceRequest("chat", {
        "message": "how are you?", "messages": history, "system": "Be terse."}))
    assert reply == "echo: how are you?"
    messages = server.exchanges[0].body["messages"]
    assert messages == [{"role": "system", "content": "Be terse."}, *history,
                        {"role": "user", "content": "how are you?"}]


async def test_api_key_goes_in_the_authorization_header(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.api_key = "sk-test"
    good = OpenAIBackend(replace(settings, api_key="sk-test"))
    wrong = OpenAIBackend(replace(settings, api_key="sk-wrong", max_retries=3))
    try:
        assert await good.complete(think("hi")) == "echo: hi"
        with pytest.raises(BackendError, match=r"401 Unauthorized: Incorrect API key.*"
                                               r"set OPENAI_API_KEY"):
            await wrong.complete(think("hi"))
    finally:
        await good.aclose()
        await wrong.aclose()
    assert [e.outcome for e in server.exchanges] == ["ok", "status 401"]  # 401 is not retried


async def test_embeddings_come_back_in_input_order(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    vectors = await backend.embed(["green tea", "black coffee", "green tea"])
    assert len(vectors) == 3
    assert vectors[0] == vectors[2] != vectors[1]
    assert server.exchanges[0].path == "/v1/embeddings"
    assert server.exchanges[0].body == {"model": "test-model",
                                        "input": ["green tea", "black coffee", "green tea"]}


async def test_embedding_model_is_used_for_embeddings(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    made = OpenAIBackend(replace(settings, embedding_model="test-embed"))
    try:
        await made.embed(["x"])
    finally:
        await made.aclose()
    assert server.exchanges[0].body["model"] == "test-embed"


async def test_per_token_embeddings_are_mean_pooled(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    # llama-cpp-python's server, for a model without pooling: "embedding": [[...], [...], ...]
    server.fail("tea", PER_TOKEN, PER_TOKEN, PER_TOKEN)  # the batch and each "green tea"
    vectors = await backend.embed(["green tea", "black coffee", "green tea"])
    (pooled,) = await backend.embed(["green tea"])  # the same words, one vector from the server
    assert len(vectors) == 3
    assert vectors[0] == vectors[2] != vectors[1]
    # A start token and one token per word, averaged: the words' counts over three tokens.
    assert vectors[0] == pytest.approx([x / 3 for x in pooled])
    # llama-cpp-python's server gets a batch's per-token vectors wrong for all but its first
    # text, so a batch answered per token is asked for again one text at a time.
    assert [e.body["input"] for e in server.exchanges] == [
        ["green tea", "black coffee", "green tea"], ["green tea"], ["black coffee"],
        ["green tea"], ["green tea"]]


async def test_a_server_without_embeddings_says_how_to_start_it(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    # What llama-cpp-python's server answers when it was started without --embedding true.
    server.always("tea", status(500, error={
        "message": "Llama model must be created with embedding=True to call this method",
        "type": "internal_server_error", "param": None, "code": None}))
    made, sleeps = recorded(settings)
    try:
        with pytest.raises(BackendError) as caught:
            await made.embed(["green tea"])
    finally:
        await made.aclose()
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server computes no embeddings, which learn needs "
        "(the server answered 500 Internal Server Error: Llama model must be created with "
        "embedding=True to call this method); start llama-cpp-python's server with "
        "--embedding true (it still chats then)")
    assert (len(server.exchanges), sleeps.waits) == (1, [])  # asking again gives the same


PYTHON_NAMES = ("KeyError", "IndexError", "TypeError", "ValueError", "AttributeError")


@pytest.mark.parametrize("embedding", [
    [[1.0, 2.0], [3.0]],  # tokens of unequal length
    [],
    [[]],
    "0.1 0.2",
    [[1.0, "x"]],
    {"values": [1.0]},
])
async def test_a_malformed_embedding_is_a_clear_error(
    backend: OpenAIBackend, server: OpenAIServer, embedding: object
) -> None:
    server.always("odd", answer({"object": "list", "data": [
        {"index": 0, "object": "embedding", "embedding": embedding}]}))
    with pytest.raises(BackendError, match=r"unexpected response shape") as caught:
        await backend.embed(["odd"])
    assert len(server.exchanges) == 1
    assert not any(name in str(caught.value) for name in PYTHON_NAMES)


@pytest.mark.parametrize("body", [{"choices": []}, {"nothing": 1}, {"choices": [{"x": 1}]}],
                         ids=["no choices", "no choices key", "no message"])
async def test_an_answer_of_another_shape_says_what_it_lacked_in_plain_words(
    backend: OpenAIBackend, server: OpenAIServer, body: dict[str, object]
) -> None:
    server.always("odd", answer(body))
    with pytest.raises(BackendError, match=r"unexpected response shape \((no '\w+' where the "
                                           r"OpenAI API has one|an empty list where the OpenAI "
                                           r"API has an answer)\)") as caught:
        await backend.complete(ServiceRequest("think", {"prompt": "odd"}))
    assert not any(name in str(caught.value) for name in PYTHON_NAMES)


async def test_classify_reads_yes_and_no(backend: OpenAIBackend, server: OpenAIServer) -> None:
    server.reply("sky is blue", "Yes.")
    server.reply("grass is purple", "no")
    server.reply("undecided", "Perhaps, it depends.")
    assert await backend.classify(ServiceRequest("is", {"evaluate": "the sky is blue"})) is True
    assert await backend.classify(ServiceRequest("is", {"evaluate": "grass is purple"})) is False
    with pytest.raises(BackendError, match="neither yes nor no"):
        await backend.classify(ServiceRequest("is", {"evaluate": "undecided"}))
    # What a base model behind llama-cpp-python's fallback chat template may begin with.
    server.reply("water is wet", "\n<</SYS>> Yes, it")
    server.reply("fire is cold", "[/INST] No.")
    assert await backend.classify(ServiceRequest("is", {"evaluate": "water is wet"})) is True
    assert await backend.classify(ServiceRequest("is", {"evaluate": "fire is cold"})) is False
    body = server.exchanges[0].body
    assert (body["temperature"], body["max_tokens"]) == (0.0, 8)
    assert "Statement: the sky is blue" in body["messages"][1]["content"]


async def test_stream_yields_pieces_while_the_server_is_still_sending(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("story", HOLD)
    pieces = backend.stream(think("a long story"))
    first = await anext(pieces)
    # The server holds the rest back until released: this piece came before the answer ended.
    (exchange,) = server.exchanges
    assert exchange.body["stream"] is True
    assert exchange.ended is None
    server.release()
    rest = [piece async for piece in pieces]
    assert first + "".join(rest) == "echo: a long story"
    assert len(rest) == 3
    assert exchange.outcome == "ok"


async def test_every_chat_request_carries_max_tokens(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    # A base model never stops on its own: without a cap it runs to the end of its context.
    server.reply("Statement", "yes")
    default = OpenAIBackend(settings)
    configured = OpenAIBackend(replace(settings, max_tokens=40))
    try:
        await default.complete(think("a"))
        await default.chat(ServiceRequest("chat", {"message": "b"}))
        "".join([piece async for piece in default.stream(think("c"))])
        await configured.complete(think("d"))
        "".join([piece async for piece in configured.stream(think("e"))])
        await configured.complete(think("f", maxTokens=5))
        await configured.classify(ServiceRequest("is", {"evaluate": "g"}))
        await configured.classify(ServiceRequest("is", {"evaluate": "h", "maxTokens": 3}))
    finally:
        await default.aclose()
        await configured.aclose()
    assert [e.body["max_tokens"] for e in server.exchanges] == \
        [DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS, 40, 40, 5, 8, 3]


async def test_an_answer_cut_at_max_tokens_is_an_answer_and_says_so_in_the_log(
    backend: OpenAIBackend, server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cxlang.services")
    assert await backend.complete(think("one two three", maxTokens=2)) == "echo: one "
    streamed = [piece async for piece in backend.stream(think("four five six", maxTokens=3))]
    assert streamed == ["echo: ", "four ", "five "]
    assert [e.outcome for e in server.exchanges] == ["ok", "ok"]
    notes = [r.getMessage() for r in caplog.records if "stopped at its limit" in r.getMessage()]
    assert notes == [
        f"openai backend at {server.url}: the answer stopped at its limit of {n} tokens; for "
        "longer answers raise maxTokens: or max_tokens in cx.toml" for n in (2, 3)]
    assert all(r.levelno == logging.INFO for r in caplog.records)


# What llama-cpp-python's server answers for a prompt longer than its context (n_ctx 2048), and
# the wording of the llama.cpp library, and of OpenAI and vLLM.
LLAMA_CPP_PYTHON_OVERFLOW = status(400, error={
    "message": "This model's maximum context length is 2048 tokens. However, you requested "
               "2160 tokens (2110 in the messages, 50 in the completion). Please reduce the "
               "length of the messages or completion.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"})
LLAMA_CPP_OVERFLOW = status(500, error={
    "message": "Requested tokens (2110) exceed context window of 2048",
    "type": "internal_server_error", "param": None, "code": None})
LLAMA_SERVER_OVERFLOW = status(400, error={
    "code": 400, "message": "the request exceeds the available context size, try increasing it",
    "type": "exceed_context_size_error", "n_prompt_tokens": 4200, "n_ctx": 4096})
OPENAI_OVERFLOW = status(400, error={
    "message": "This model's maximum context length is 8192 tokens. However, your messages "
               "resulted in 9000 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"})


@pytest.mark.parametrize(("fault", "numbers"), [
    (LLAMA_CPP_PYTHON_OVERFLOW, "400 Bad Request: This model's maximum context length is 2048 "
                                "tokens. However, you requested 2160 tokens (2110 in the "
                                "messages, 50 in the completion)"),
    (LLAMA_CPP_OVERFLOW, "500 Internal Server Error: Requested tokens (2110) exceed context "
                         "window of 2048"),
    (OPENAI_OVERFLOW, "maximum context length is 8192 tokens. However, your messages resulted "
                      "in 9000 tokens"),
    (LLAMA_SERVER_OVERFLOW, "400 Bad Request: the request exceeds the available context "
                            "size, try increasing it"),
], ids=["llama-cpp-python", "llama.cpp", "openai", "llama-server"])
async def test_a_prompt_too_long_for_the_context_says_what_to_do_and_is_not_retried(
    server: OpenAIServer, settings: BackendSettings, fault: Fault, numbers: str
) -> None:
    server.always("long", fault)
    made, sleeps = recorded(settings)
    try:
        with pytest.raises(BackendError) as plain:
            await made.complete(think("a long prompt"))
        with pytest.raises(BackendError) as streamed:
            [piece async for piece in made.stream(think("a long prompt"))]
    finally:
        await made.aclose()
    for caught in (plain, streamed):
        message = str(caught.value)
        assert message.startswith(f"openai backend at {server.url}: the request does not fit "
                                  "the model's context (the server answered ")
        assert numbers in message
        assert message.endswith("; shorten the prompt or the messages: history, or lower "
                                "maxTokens: (or max_tokens in cx.toml)")
    assert (len(server.exchanges), sleeps.waits) == (2, [])


# Pool, concurrency limit, timeouts, cancellation ------------------------------------------------

async def test_sequential_requests_share_one_pooled_connection(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    for n in range(4):
        await backend.complete(think(f"q{n}"))
    assert {e.connection for e in server.exchanges} == {1}


async def test_parallel_requests_overlap_at_the_server(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("SLOW", delay(0.15))
    results = await asyncio.gather(*(backend.complete(think(f"SLOW {n}")) for n in range(3)))
    assert results == [f"echo: SLOW {n}" for n in range(3)]
    intervals = [(e.started, e.ended or 0.0) for e in server.exchanges]
    assert max(start for start, _ in intervals) < min(end for _, end in intervals)
    assert len({e.connection for e in server.exchanges}) == 3


async def test_the_concurrency_limit_caps_requests_in_flight(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("SLOW", delay(0.05))
    made = OpenAIBackend(replace(settings, max_concurrency=2))
    try:
        results = await asyncio.gather(*(made.complete(think(f"SLOW {n}")) for n in range(6)))
    finally:
        await made.aclose()
    assert len(results) == 6
    assert overlapping([(e.started, e.ended or 0.0) for e in server.exchanges]) == 2


async def test_read_timeout_fails_clearly_and_the_server_sees_the_disconnect(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("HANG", delay(30))
    made = OpenAIBackend(replace(settings, read_timeout=0.2))
    try:
        with pytest.raises(BackendError, match=r"no answer within the read timeout of 0\.2 s"):
            await made.complete(think("HANG"))
    finally:
        await made.aclose()
    assert server.wait_until(lambda: server.exchanges[0].outcome == "disconnected")
    assert len(server.exchanges) == 1  # a slow model is not asked twice


async def test_cancelling_the_call_cancels_the_request_at_the_server(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("HANG", delay(30))
    call = asyncio.ensure_future(backend.complete(think("HANG")))
    assert await asyncio.to_thread(server.wait_until, lambda: len(server.exchanges) == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(
        server.wait_until, lambda: server.exchanges[0].outcome == "disconnected")
    # The pool goes on working after a cancelled request.
    assert await backend.complete(think("after")) == "echo: after"


async def test_cancelling_a_stream_cancels_the_request_at_the_server(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("story", HOLD)

    async def consume() -> list[str]:
        return [piece async for piece in backend.stream(think("a story"))]

    call = asyncio.ensure_future(consume())
    assert await asyncio.to_thread(server.wait_until, lambda: len(server.exchanges) == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(
        server.wait_until, lambda: server.exchanges[0].outcome == "disconnected")


# Retries -----------------------------------------------------------------------------------------

async def test_5xx_is_retried_with_growing_backoff_then_succeeds(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.fail("flaky", status(500), status(503), status(502))
    made, sleeps = recorded(settings)
    try:
        assert await made.complete(think("flaky")) == "echo: flaky"
    finally:
        await made.aclose()
    assert [e.outcome for e in server.exchanges] == \
        ["status 500", "status 503", "status 502", "ok"]
    # Attempt n waits a draw from [w/2, w] with w = 0.5 s * 2**n.
    assert len(sleeps.waits) == 3
    for n, wait in enumerate(sleeps.waits):
        assert 0.25 * 2 ** n <= wait <= 0.5 * 2 ** n


async def test_retries_stop_after_max_retries_with_a_clear_error(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("down", status(500))
    made, sleeps = recorded(settings, max_retries=3)
    try:
        with pytest.raises(BackendError) as caught:
            await made.complete(think("down"))
    finally:
        await made.aclose()
    assert len(server.exchanges) == 4
    assert len(sleeps.waits) == 3
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server answered 500 Internal Server Error: "
        "injected 500; gave up after 4 attempts")


async def test_429_honours_retry_after(server: OpenAIServer, settings: BackendSettings) -> None:
    server.fail("busy", status(429, retry_after="3"), status(429, retry_after="0"))
    made, sleeps = recorded(settings)
    try:
        assert await made.complete(think("busy")) == "echo: busy"
    finally:
        await made.aclose()
    assert [e.outcome for e in server.exchanges] == ["status 429", "status 429", "ok"]
    assert sleeps.waits[0] == 3.0  # the server's wish, above the 0.25-0.5 s backoff
    assert 0.5 <= sleeps.waits[1] <= 1.0  # Retry-After: 0 leaves the backoff in charge


async def test_a_retry_after_longer_than_cx_waits_fails_at_once(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("later", status(429, retry_after="3600"))
    made, sleeps = recorded(settings)
    try:
        with pytest.raises(BackendError, match=r"429 Too Many Requests.*retry after 3600 s, "
                                               r"longer than cx waits \(60 s\)"):
            await made.complete(think("later"))
    finally:
        await made.aclose()
    assert (len(server.exchanges), sleeps.waits) == (1, [])


async def test_a_dropped_connection_is_retried(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.fail("drop", DROP, DROP)
    made, sleeps = recorded(settings)
    try:
        assert await made.complete(think("drop")) == "echo: drop"
    finally:
        await made.aclose()
    assert [e.outcome for e in server.exchanges] == ["dropped", "dropped", "ok"]
    assert len(sleeps.waits) == 2


async def test_no_server_is_retried_then_reported(settings: BackendSettings) -> None:
    closed = replace(settings, base_url="http://127.0.0.1:9/v1")  # the discard port: refused
    made, sleeps = recorded(closed, max_retries=2)
    try:
        with pytest.raises(BackendError, match=r"127\.0\.0\.1:9/v1: cannot connect.*"
                                               r"gave up after 3 attempts"):
            await made.complete(think("anyone?"))
    finally:
        await made.aclose()
    assert len(sleeps.waits) == 2


async def test_malformed_json_is_an_error_not_a_retry(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("garbled", MALFORMED)
    with pytest.raises(BackendError, match=r"response to chat/completions is not valid JSON"):
        await backend.complete(think("garbled"))
    assert len(server.exchanges) == 1


async def test_a_stream_is_retried_before_its_first_piece_but_not_after(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.fail("once", status(503))
    server.always("cut", DROP_MID_STREAM)
    made, sleeps = recorded(settings)
    try:
        text = "".join([piece async for piece in made.stream(think("once upon a time"))])
        assert text == "echo: once upon a time"
        received: list[str] = []
        with pytest.raises(BackendError, match="dropped in the middle of a streamed answer"):
            async for piece in made.stream(think("cut short here")):
                received.append(piece)
    finally:
        await made.aclose()
    assert received == ["echo: ", "cut "]
    assert [e.outcome for e in server.exchanges] == ["status 503", "ok", "dropped"]
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("done", [True, False], ids=["[DONE]", "body ends"])
async def test_a_stream_cut_short_after_pieces_is_an_error_not_a_shorter_answer(
    server: OpenAIServer, settings: BackendSettings, done: bool
) -> None:
    # llama-cpp-python's server, when another request waits: pieces, then [DONE] with no chunk
    # carrying a finish_reason.
    server.always("story", cut_short(2, done=done))
    made, sleeps = recorded(settings)
    received: list[str] = []
    try:
        with pytest.raises(BackendError) as caught:
            async for piece in made.stream(think("a long story")):
                received.append(piece)
    finally:
        await made.aclose()
    assert received == ["echo: ", "a "]
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server cut the answer short after 2 pieces (the "
        "stream ended without a finish_reason); llama-cpp-python's server does that when "
        "another request arrives while it streams: start it with --interrupt_requests false, "
        "or set max_concurrency = 1 in cx.toml")
    assert (len(server.exchanges), sleeps.waits) == (1, [])  # a retry would repeat the pieces


async def test_a_stream_cut_short_before_any_piece_is_retried(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.fail("story", cut_short(0), cut_short(0, done=False))
    made, sleeps = recorded(settings)
    try:
        text = "".join([piece async for piece in made.stream(think("a story"))])
    finally:
        await made.aclose()
    assert text == "echo: a story"
    assert [e.outcome for e in server.exchanges] == ["cut short", "cut short", "ok"]
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize(("fault", "reason"), [
    (cut_short(0), "the server ended the streamed answer before any text and without a "
                   "finish_reason (llama-cpp-python's server does that when another request "
                   "arrives while it streams: start it with --interrupt_requests false, or set "
                   "max_concurrency = 1 in cx.toml)"),
    (EMPTY_STREAM, "the server ended the stream without sending anything (llama-cpp-python's "
                   "server does that when the prompt does not fit the model's context: shorten "
                   "the prompt or the messages: history)"),
], ids=["cut short", "empty"])
async def test_a_stream_that_never_finishes_gives_up_saying_why(
    server: OpenAIServer, settings: BackendSettings, fault: Fault, reason: str
) -> None:
    server.always("story", fault)
    made, sleeps = recorded(settings, max_retries=2)
    try:
        with pytest.raises(BackendError) as caught:
            [piece async for piece in made.stream(think("a story"))]
    finally:
        await made.aclose()
    assert str(caught.value) == \
        f"openai backend at {server.url}: {reason}; gave up after 3 attempts"
    assert (len(server.exchanges), len(sleeps.waits)) == (3, 2)


async def test_a_busy_server_is_not_called_absent(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    # llama-cpp-python's server lists its models only between answers.
    server.always("", delay(30))
    with pytest.raises(BackendError) as caught:
        await list_models(settings, timeout=0.2)
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server accepted the connection but did not list "
        "its models within 0.2 s; it may be busy answering, try again when it is idle")


async def test_a_model_is_required(settings: BackendSettings) -> None:
    with pytest.raises(BackendUnavailableError, match="needs a model: --model NAME or CX_MODEL"):
        OpenAIBackend(replace(settings, model=None))


# Hostile servers -------------------------------------------------------------------------------
# Each call is bounded by a generous guard: without the defence under test it would hang, and
# the test must fail, not hang.

GUARD = 20.0  # seconds


async def ask(made: OpenAIBackend, request: ServiceRequest, streamed: bool) -> str:
    async with asyncio.timeout(GUARD):
        if streamed:
            return "".join([piece async for piece in made.stream(request)])
        return await made.complete(request)


def completion(content: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]}


def events(*chunks: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)


@pytest.mark.parametrize(("fault", "streamed"), [
    (PINGS, True),  # keep-alive comments, endlessly
    (EMPTY_DELTAS, True),  # deltas without content, endlessly
    (EMPTY_DELTAS, False),  # a stream without end, to a request that asked for none
    (drip(0.05), False),  # the answer a byte at a time
    (drip(0.05), True),
], ids=["pings", "empty deltas", "stream to a plain request", "drip", "drip streamed"])
async def test_a_request_has_a_deadline_whatever_the_server_trickles(
    server: OpenAIServer, settings: BackendSettings, fault: Fault, streamed: bool
) -> None:
    # Every byte resets the read timeout (5 s here): only the deadline ends these.
    server.always("slow", fault)
    made = OpenAIBackend(replace(settings, request_timeout=0.5))
    try:
        with pytest.raises(BackendError) as caught:
            await ask(made, think("a slow answer"), streamed)
    finally:
        await made.aclose()
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server had not finished answering within the "
        "request timeout of 0.5 s; a slow model can be given longer with request_timeout in "
        "cx.toml")
    assert server.wait_until(lambda: server.exchanges[0].outcome == "disconnected")
    assert len(server.exchanges) == 1  # not retried: the same server would do the same


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_an_answer_larger_than_max_response_bytes_is_refused(
    server: OpenAIServer, settings: BackendSettings, streamed: bool
) -> None:
    server.reply("big", "word " * 3000)  # 15 kB of text, more as JSON or as events
    made = OpenAIBackend(replace(settings, max_response_bytes=10_000))
    try:
        with pytest.raises(BackendError) as caught:
            await ask(made, think("a big answer", maxTokens=5000), streamed)
        # Under the cap, the same backend answers as usual.
        assert await ask(made, think("small"), streamed) == "echo: small"
    finally:
        await made.aclose()
    assert str(caught.value) == (
        f"openai backend at {server.url}: the response to chat/completions is larger than "
        "max_response_bytes (10000 bytes), so the request was closed; if answers that large "
        "are expected, raise max_response_bytes in cx.toml")


async def test_a_compressed_answer_is_capped_at_its_decoded_size(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    # 20 MB of answer in 20 kB of gzip: the cap counts what it expands to, and the request
    # asked for no compression at all, so a server that compresses anyway is the only way.
    text = b"a" * 20_000_000
    bomb = gzip.compress(b'{"choices": [{"message": {"content": "' + text + b'"}}]}', 9)
    server.always("bomb", raw(bomb, encoding="gzip"))
    made = OpenAIBackend(replace(settings, max_response_bytes=10_000))
    try:
        with pytest.raises(BackendError) as caught:
            await ask(made, think("bomb"), False)
    finally:
        await made.aclose()
    assert "is larger than max_response_bytes (10000 bytes)" in str(caught.value)
    assert server.exchanges[0].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_an_endless_answer_is_cut_at_max_response_bytes(
    server: OpenAIServer, settings: BackendSettings, streamed: bool
) -> None:
    server.always("endless", ENDLESS)
    made = OpenAIBackend(replace(settings, max_response_bytes=200_000))
    try:
        with pytest.raises(BackendError, match=r"larger than max_response_bytes \(200000 "
                                               r"bytes\), so the request was closed"):
            await ask(made, think("an endless answer"), streamed)
    finally:
        await made.aclose()
    assert server.wait_until(lambda: server.exchanges[0].outcome == "disconnected")


async def test_a_plain_json_answer_to_a_streamed_request_is_the_whole_answer(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    # Some servers ignore stream: true and answer with the whole completion at once.
    server.always("whole", answer(completion("the whole answer")))
    pieces = [piece async for piece in backend.stream(think("whole"))]
    assert pieces == ["the whole answer"]
    assert len(server.exchanges) == 1


@pytest.mark.parametrize(("content", "kind"), [({"text": "hi"}, "an object"),
                                               (["hi"], "an array"), (7, "a number")])
@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_content_that_is_not_text_is_an_unexpected_shape(
    backend: OpenAIBackend, server: OpenAIServer, content: Any, kind: str, streamed: bool
) -> None:
    if streamed:
        server.always("odd", raw(events(
            {"choices": [{"index": 0, "delta": {"content": content}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            "text/event-stream"))
    else:
        server.always("odd", answer(completion(content)))
    with pytest.raises(BackendError) as caught:
        await ask(backend, think("odd"), streamed)
    assert str(caught.value).startswith(
        f"openai backend at {server.url}: unexpected response shape (the answer's content is "
        f"{kind}, not text): {{")
    assert len(server.exchanges) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_redirect_names_where_it_points_and_what_to_fix(
    backend: OpenAIBackend, server: OpenAIServer, streamed: bool
) -> None:
    elsewhere = "http://127.0.0.1:9/v2/chat/completions"  # never reached: not followed
    server.always("moved", redirect(elsewhere))
    with pytest.raises(BackendError) as caught:
        await ask(backend, think("moved"), streamed)
    assert str(caught.value) == (
        f"openai backend at {server.url}: the server answered 307 Temporary Redirect, a "
        f"redirect to {elsewhere}; fix OPENAI_BASE_URL (or base_url in cx.toml) to the address "
        "it redirects to")
    assert len(server.exchanges) == 1


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("fault", "streamed", "what"), [
    (raw(b'{"choices": ' + DEEP + b"}"), False, "the response to chat/completions is"),
    (raw(b"data: " + DEEP + b"\n\n", "text/event-stream"), True, "a streamed event is"),
], ids=["plain", "streamed"])
async def test_json_nested_too_deeply_is_a_clear_error(
    backend: OpenAIBackend, server: OpenAIServer, fault: Fault, streamed: bool, what: str
) -> None:
    server.always("deep", fault)
    with pytest.raises(BackendError) as caught:
        await ask(backend, think("deep"), streamed)
    assert str(caught.value) == (
        f"openai backend at {server.url}: {what} JSON nested too deeply to read; is "
        "OPENAI_BASE_URL an OpenAI-compatible API?")


# The call's timeout: and the memory, in a program's service call -------------------------------

async def test_a_calls_timeout_bounds_its_model_call(
    backend: OpenAIBackend, server: OpenAIServer
) -> None:
    server.always("HANG", delay(30))  # the read timeout (5 s) and request timeout are longer
    failures: list[ServiceFailure] = []
    errors: list[Any] = []
    async with asyncio.timeout(GUARD), Runtime() as runtime:
        runtime.on("thinking.error", errors.append, inline=True)
        invoker = ServiceInvoker(runtime, backend)
        value = await invoker.call("think", {"prompt": "HANG", "timeout": 300},
                                   HandlerParameters({}), (), failures.append)
        await runtime.run_until_idle()
    assert value is None
    message = ("openai backend: the model did not answer within the call's timeout: of 300 ms; "
               "give the call a longer timeout:")
    assert [failure.message for failure in failures] == [message]
    assert len(errors) == 1
    assert server.wait_until(lambda: server.exchanges[0].outcome == "disconnected")


class OutOfMemory(OpenAIBackend):
    async def complete(self, request: ServiceRequest) -> str:
        raise MemoryError


async def test_running_out_of_memory_is_no_service_failure(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    # The program layer turns a MemoryError into the memory limit (exit 4): a service error
    # event would let the run go on and end with exit 0.
    made = OutOfMemory(settings)
    failures: list[ServiceFailure] = []
    try:
        async with Runtime() as runtime:
            invoker = ServiceInvoker(runtime, made)
            with pytest.raises(MemoryError):
                await invoker.call("think", {"prompt": "x"}, HandlerParameters({}), (),
                                   failures.append)
    finally:
        await made.aclose()
    assert failures == []
