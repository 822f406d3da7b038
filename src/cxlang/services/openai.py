"""The ``openai`` backend: any server that speaks the OpenAI HTTP API.

OpenAI itself, and locally Ollama, llama.cpp's server, vLLM, LM Studio. One ``httpx`` client
per backend is the connection pool every branch shares; a semaphore caps the requests in
flight (more wait their turn instead of overloading a local server), and each model's
requests are admitted by its :class:`.rate_limits.ModelLimiter` (its rates per minute, and a
concurrency that halves on a 429 and grows back as calls succeed); 429, 5xx and dropped
connections are retried with backoff (:mod:`.retry`); anything else fails at once with the
server's own message and what to do about it. A 429 that came while other requests of the
model were in flight is retried without using up an attempt: lowering the concurrency is the
remedy, and a fan-out should end with every result, not with its retries spent on refusals
the backend caused itself. A cancelled branch cancels its ``await``, and
httpx then closes the connection, so the server sees the request go away.

Every chat request carries ``max_tokens`` (the call's ``maxTokens:``, else ``max_tokens`` from
the settings): a base model never stops on its own. A streamed answer is complete only when a
chunk says why it finished (``finish_reason``); one that ends without is an error, never a
shorter success.

A server may be hostile or broken, not only slow. The read timeout resets with every byte, so
each request also has a deadline from start to end (``request_timeout``) that keep-alive
comments, empty deltas or a body dripped a byte at a time cannot push back; and what one
response may bring is capped (``max_response_bytes``), so an endless answer fails instead of
filling the memory. A redirect, an answer nested too deeply to parse, or content that is not
text fails with what it was; a plain JSON completion answering a streamed request (some
servers ignore ``stream``) is taken as the whole answer, in one piece.

A model that acts (:meth:`OpenAIBackend.act`) gets ``tools`` (function names in the API's
alphabet: :func:`.backend.wire_names`) and answers with ``tool_calls``, several at once,
plain or streamed; a ``schema:`` goes as ``response_format`` ``json_schema``. A server that
refuses that (llama-cpp-python's takes only ``json_object``, with the schema beside it) gets
``json_object`` with the schema in the instructions, from then on.

Every exchange runs in a task of its own. httpx (through anyio) ties its locks and cancel
scopes to the task that enters them, and a handler's first step may run in its caller's task
(the runtime's eager start) before it continues in a task of its own; an exchange that began
in one and ended in the other would break them. A task awaiting a task passes cancellation
on, so cancelling the branch still cancels the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import httpx

from .backend import (
    BackendError,
    BackendUnavailableError,
    Correction,
    Entry,
    PieceSink,
    Reply,
    ServiceRequest,
    ToolCall,
    Turn,
    wire_names,
)
from .config import BackendSettings
from .controls import shown
from .prompts import (
    Generation,
    chat_messages,
    classify_messages,
    generation,
    parse_yes_no,
    schema_instructions,
)
from .rate_limits import ModelLimiter, Ticket, estimate_tokens
from .retry import RetryPolicy, parse_retry_after
from .sse import sse_events, sse_lines
from .usage import Usage, report_usage

__all__ = ["OpenAIBackend", "list_models"]

logger = logging.getLogger("cxlang.services")

T = TypeVar("T")

# Failures worth another try: the request may never have reached the server, or the server
# said it is overloaded or restarting. A read timeout is not among them: the model is slow,
# and asking again only queues the same work twice.
_TRANSIENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
              httpx.RemoteProtocolError)

# What a stream cut short means and what helps. llama-cpp-python's server ends an answer it is
# streaming, with [DONE] and no finish_reason, as soon as another request waits for the model.
_CUT_SHORT_HINT = ("llama-cpp-python's server does that when another request arrives while "
                   "it streams: start it with --interrupt_requests false, or set "
                   "max_concurrency = 1 in cx.toml")

# A prompt longer than the model's context, as servers word it: llama-cpp-python's own
# "Requested tokens (N) exceed context window of M" (its server rewords it in the OpenAI
# style), OpenAI's and vLLM's "maximum context length is M tokens", and llama.cpp's
# llama-server's "the request exceeds the available context size".
_CONTEXT_OVERFLOW = re.compile(r"exceed context window of \d+|maximum context length is \d+"
                               r"|exceeds the available context size")

# llama-cpp-python's server started without --embedding: every embeddings request fails so.
_NO_EMBEDDINGS = "must be created with embedding=True"

# A server refusing the request's response_format: OpenAI-style servers name the field,
# llama-cpp-python's server its place in the body ('loc': ('body', 'response_format', ...)).
_RESPONSE_FORMAT = re.compile(r"response_format|json_schema")

# Chat-template tags a model may echo: <</SYS>>, <start_of_turn>, <|im_end|>, [INST], [/INST].
_TEMPLATE_MARKUP = re.compile(r"<+/?[\w|]+>+|\[/?INST\]")


class _FormatRefusedError(BackendError):
    """The server refused the request's ``response_format``: another may do."""


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, *,
                 throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled  # a 429
        self.ours = False  # a 429 the model's own concurrency may have caused: no attempt used


class OpenAIBackend:
    """Chat completions (plain and streamed) and embeddings over the OpenAI HTTP API."""

    name = "openai"

    def __init__(self, settings: BackendSettings, *, retry: RetryPolicy | None = None) -> None:
        if not settings.model:
            raise BackendUnavailableError(
                "the openai backend needs a model: --model NAME or CX_MODEL=NAME "
                "(e.g. llama3.2 on Ollama, gpt-4o-mini on OpenAI; cx backends lists the "
                "server's models)")
        self.model = settings.model
        self.embedding_model = settings.embedding_model or settings.model
        self.max_tokens = settings.max_tokens
        self.base_url = settings.base_url
        self.read_timeout = settings.read_timeout
        self.request_timeout = settings.request_timeout
        self.max_response_bytes = settings.max_response_bytes
        self.retry = retry or RetryPolicy(max_retries=settings.max_retries,
                                          base_delay=settings.retry_delay,
                                          max_delay=max(8.0, settings.retry_delay))
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._settings = settings
        self._limiters: dict[str, ModelLimiter] = {}  # by model, made at its first request
        self._json_schema_refused = False  # the server refused response_format json_schema
        # No compression: a small compressed body could expand far past max_response_bytes
        # in one decoded chunk (a server that compresses anyway is still capped as decoded).
        headers = {"Accept-Encoding": "identity"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                                  write=settings.connect_timeout, pool=None),
            limits=httpx.Limits(max_connections=settings.max_concurrency,
                                max_keepalive_connections=settings.max_concurrency),
        )

    # The Backend interface --------------------------------------------------------------------

    async def complete(self, request: ServiceRequest) -> str:
        return await self._answer(request)

    async def chat(self, request: ServiceRequest) -> str:
        return await self._answer(request)

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        body = self._body(chat_messages(request), generation(request))
        body.update(_STREAMED)
        pieces: asyncio.Queue[str | Exception | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for piece in self._stream(body):
                    pieces.put_nowait(piece)
            except Exception as exc:
                pieces.put_nowait(exc)
            else:
                pieces.put_nowait(None)

        producer = asyncio.ensure_future(produce())
        try:
            while (item := await pieces.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            producer.cancel()  # the caller stopped early or was cancelled: so is the request
            await asyncio.gather(producer, return_exceptions=True)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        embeddings = await self._embeddings(texts)
        if len(texts) > 1 and any(_per_token(value) for value in embeddings):
            # llama-cpp-python's server (0.3) reads every text of a batch but the first from
            # the wrong place when it gives vectors per token: ask for one text at a time.
            embeddings = [(await self._embeddings([text]))[0] for text in texts]
        try:
            return [_vector(value) for value in embeddings]
        except (TypeError, ValueError) as exc:
            raise self._unexpected(embeddings, exc) from None

    async def classify(self, request: ServiceRequest) -> bool:
        options = generation(request)
        options = Generation(0.0 if options.temperature is None else options.temperature,
                             options.max_tokens or 8)  # a yes or a no needs few tokens
        text, _ = await self._chat(classify_messages(request), options)
        # A base model behind a chat template may begin by echoing the template's markup
        # ("<</SYS>> Yes, it holds." from llama-cpp-python's server): that is not its answer.
        return parse_yes_no(_TEMPLATE_MARKUP.sub(" ", text))

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        names = wire_names(tool.event for tool in turn.tools)
        wires = {event: wire for wire, event in names.items()}
        messages = [*chat_messages(request), *_transcript(turn.transcript, wires)]
        body = self._body(messages, generation(request))
        if turn.tools:
            body["tools"] = [{"type": "function", "function": _function(wires[tool.event],
                                                                        tool.description,
                                                                        tool.parameters)}
                             for tool in turn.tools]
        schema = turn.schema
        if schema is None:
            return await self._reply(body, names, pieces)
        if not self._json_schema_refused:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": schema}}
            try:
                return await self._reply(body, names, pieces)
            except _FormatRefusedError as refused:
                logger.info("%s: %s; asking for json_object with the schema in the "
                            "instructions from now on", self._where, refused)
                self._json_schema_refused = True
        # llama-cpp-python's server holds the answer to a "schema" beside json_object.
        body["response_format"] = {"type": "json_object", "schema": schema}
        system = messages[0]
        body["messages"] = [{**system, "content": f"{system['content']}\n\n"
                                                  f"{schema_instructions(schema)}"},
                            *messages[1:]]
        return await self._reply(body, names, pieces)

    async def aclose(self) -> None:
        await self._client.aclose()

    # HTTP ------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"openai backend at {self.base_url}"

    def _body(self, messages: Sequence[Mapping[str, Any]], options: Generation) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages),
                                "max_tokens": self._limit(options)}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        return body

    async def _answer(self, request: ServiceRequest) -> str:
        options = generation(request)
        text, finish = await self._chat(chat_messages(request), options)
        if finish == "length":
            self._note_cap(self._limit(options))
        return text

    async def _embeddings(self, texts: list[str]) -> list[Any]:
        """The server's embedding for each text, in their order, as the server sent them."""
        data = await self._post("embeddings", {"model": self.embedding_model, "input": texts})
        try:
            items = sorted(data["data"], key=lambda item: item["index"])
            embeddings = [item["embedding"] for item in items]
        except (KeyError, TypeError) as exc:
            raise self._unexpected(data, exc) from None
        self._count(data.get("usage"), self.embedding_model)
        if len(embeddings) != len(texts):
            raise BackendError(f"{self._where}: asked for {len(texts)} embeddings, "
                               f"got {len(embeddings)}")
        return embeddings

    async def _chat(self, messages: list[dict[str, str]],
                    options: Generation) -> tuple[str, str | None]:
        """The answer's text and why it finished (``stop``, ``length``, ...) if the server
        says."""
        data = await self._post("chat/completions", self._body(messages, options))
        return self._completion(data)

    async def _reply(self, body: dict[str, Any], names: Mapping[str, str],
                     pieces: PieceSink | None) -> Reply:
        """A model turn's text and tool calls (their names read back to events by *names*),
        streamed to *pieces* when given."""
        calls: list[Any] = []
        if pieces is None:
            data = await self._post("chat/completions", body)
            text, finish = self._completion(data, calls)
            if finish == "length":
                self._note_cap(body["max_tokens"])
            return Reply(text, self._tool_calls(calls, names))
        texts: list[str] = []
        async for piece in self._stream({**body, **_STREAMED}, calls):
            await pieces(piece)
            texts.append(piece)
        return Reply("".join(texts), self._tool_calls(calls, names))

    def _completion(self, data: Any, calls: list[Any] | None = None) -> tuple[str, str | None]:
        """A chat.completion object's text and finish_reason; its tool calls, as sent, are
        added to *calls*."""
        try:
            choice = data["choices"][0]
            message = choice["message"]
            content = message["content"]
            finish = choice.get("finish_reason")
            if calls is not None:
                calls.extend(message.get("tool_calls") or ())
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._unexpected(data, exc) from None
        self._count(data.get("usage"), self.model)
        return self._text(content, data), finish if isinstance(finish, str) else None

    def _count(self, usage: Any, model: str) -> None:
        """Report the tokens a request of *model* (as asked for, so that cx.toml's prices
        find it) used, as the server counted them; a server that gives no ``usage`` (some
        ignore ``stream_options``) is reported as not counted."""
        name = f"openai:{model}"
        tokens = [usage.get(key) if isinstance(usage, dict) else None
                  for key in ("prompt_tokens", "completion_tokens")]
        if not isinstance(tokens[0], int):
            report_usage(Usage(name, 0, 0, counted=False))
            return
        output = tokens[1] if isinstance(tokens[1], int) else 0  # embeddings have none
        report_usage(Usage(name, tokens[0], output))

    def _tool_calls(self, sent: list[Any], names: Mapping[str, str]) -> tuple[ToolCall, ...]:
        """The tool calls of a turn as sent (``[{id, function: {name, arguments}}]``), each
        with an id of its own and its arguments read (or why they cannot be)."""
        calls: list[ToolCall] = []
        ids: set[str] = set()
        for number, item in enumerate(sent, 1):
            try:
                function = item.get("function") or {}
                wire = str(function.get("name") or "")
                text = function.get("arguments")
                ident = item.get("id")
            except AttributeError as exc:
                raise self._unexpected(sent, exc) from None
            if not isinstance(text, str):  # some servers send the object itself
                text = "" if text is None else json.dumps(text)
            # The call's id keys its result back to the model: one a server left out or
            # repeated is made unique.
            if not isinstance(ident, str) or not ident or ident in ids:
                ident = f"call_{number}"
            ids.add(ident)
            arguments, problem = _arguments(text)
            calls.append(ToolCall(ident, names.get(wire, wire), arguments, text, problem))
        return tuple(calls)

    def _text(self, content: Any, data: Any) -> str:
        """An answer's ``content``: text, or none at all (``null``, as with a tool call)."""
        if content is None:
            return ""
        if not isinstance(content, str):
            raise BackendError(f"{self._where}: unexpected response shape (the answer's "
                               f"content is {_json_kind(content)}, not text): "
                               f"{_excerpt(data, 120)}")
        return content

    def _limit(self, options: Generation) -> int:
        """An answer's most tokens: the call's ``maxTokens:``, else the settings'."""
        return options.max_tokens or self.max_tokens

    def _note_cap(self, limit: int) -> None:
        """An answer that stopped at its token limit is still an answer, but maybe a truncated
        one: say so where a user looking into short answers will find it."""
        logger.info("%s: the answer stopped at its limit of %d tokens; for longer answers "
                    "raise maxTokens: or max_tokens in cx.toml", self._where, limit)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async def attempt() -> Any:
            async with self._admitted(body) as ticket:
                async with self._slots, self._deadline(), self._client.stream(
                    "POST", path, json=body
                ) as response:
                    raw = b"".join([chunk async for chunk in self._capped(response, path)])
                self._check(response, raw)
                data = self._json(raw, path)
                ticket.used = _total_tokens(data)
            return data

        return await self._with_retries(path, lambda: asyncio.ensure_future(attempt()))

    @contextlib.asynccontextmanager
    async def _admitted(self, body: Mapping[str, Any]) -> AsyncIterator[Ticket]:
        """Wait for the request's turn at its model's limits; a 429 on the way out lowers
        them, and says whether the backend's own concurrency may have caused it."""
        model = str(body.get("model"))
        limiter = self._limiters.get(model)
        if limiter is None:
            limits = self._settings.limits_for(model)
            limiter = self._limiters[model] = ModelLimiter(
                self._settings.max_concurrency,
                requests_per_minute=limits.requests_per_minute,
                tokens_per_minute=limits.tokens_per_minute)
        async with limiter.admit(estimate_tokens(body)) as ticket:
            try:
                yield ticket
            except _RetryableError as exc:
                if exc.throttled:
                    exc.ours = limiter.refused(ticket, exc.retry_after)
                raise

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """Bound a request from its first byte to its last by ``request_timeout``: the read
        timeout starts again with every byte, so a server sending keep-alives, empty deltas
        or a byte at a time would hold the call for as long as it likes."""
        try:
            async with asyncio.timeout(self.request_timeout) as deadline:
                yield
        except TimeoutError:
            if not deadline.expired():
                raise
            raise BackendError(f"{self._where}: the server had not finished answering within "
                               f"the request timeout of {self.request_timeout:g} s; a slow "
                               "model can be given longer with request_timeout in cx.toml"
                               ) from None

    async def _capped(self, response: httpx.Response, path: str) -> AsyncIterator[bytes]:
        """The response's body, decoded, failing (and so closing the request) once it brings
        more than ``max_response_bytes``: a server may send an answer without end."""
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > self.max_response_bytes:
                raise BackendError(f"{self._where}: the response to {path} is larger than "
                                   f"max_response_bytes ({self.max_response_bytes} bytes), "
                                   "so the request was closed; if answers that large are "
                                   "expected, raise max_response_bytes in cx.toml")
            yield chunk

    def _json(self, raw: bytes, path: str) -> Any:
        try:
            return json.loads(raw)
        except RecursionError:
            raise BackendError(f"{self._where}: the response to {path} is JSON nested too "
                               "deeply to read; is OPENAI_BASE_URL an OpenAI-compatible API?"
                               ) from None
        except ValueError:
            raise BackendError(
                f"{self._where}: the response to {path} is not valid JSON "
                f"(it starts {_start(raw)!r}); is OPENAI_BASE_URL an OpenAI-"
                "compatible API?") from None

    async def _stream(self, body: dict[str, Any],
                      calls: list[Any] | None = None) -> AsyncIterator[str]:
        """Content deltas of a streamed chat completion; with *calls*, the tool calls the
        deltas build up are added there, as a plain answer sends them. Retried only until the
        first piece: after that a retry would repeat text the caller already has. The answer
        is whole only once a chunk carried a ``finish_reason``: a stream that ends without
        one, by ``[DONE]`` or by the connection closing, was cut short."""
        attempt = 0
        while True:
            pieces = 0
            parts: dict[int, dict[str, Any]] = {}  # tool calls by index, as they build up
            usage: dict[str, Any] = {}  # the server's, in the last chunk when it gives it
            try:
                async with (self._admitted(body) as ticket, self._slots, self._deadline(),
                            self._client.stream("POST", "chat/completions", json=body)
                            as response):
                    chunks = self._capped(response, "chat/completions")
                    if response.status_code >= 300:  # _check raises: say why
                        self._check(response, b"".join([chunk async for chunk in chunks]))
                    if _is_json(response):
                        # A server that ignores stream answers with the whole completion.
                        text, finish = self._completion(self._json(
                            b"".join([chunk async for chunk in chunks]), "chat/completions"),
                            calls)
                        if text:
                            yield text
                        if finish == "length":
                            self._note_cap(body["max_tokens"])
                        return
                    events = 0
                    finish = None
                    async for event in sse_events(sse_lines(chunks)):
                        if event.data.strip() == "[DONE]":
                            break
                        events += 1
                        piece, finish = self._delta(event.data, finish, parts, usage)
                        if piece:
                            pieces += 1
                            yield piece
                    if finish == "length":
                        self._note_cap(body["max_tokens"])
                    if finish is not None:
                        self._count(usage or None, self.model)
                        ticket.used = _total_tokens({"usage": usage})
                        if calls is not None:
                            calls.extend(parts[index] for index in sorted(parts))
                        return
                    raise self._unfinished(events, pieces)
            except (httpx.HTTPError, _RetryableError) as exc:
                if pieces and isinstance(exc, _TRANSIENT):
                    raise BackendError(f"{self._where}: the connection dropped in the middle "
                                       f"of a streamed answer, after {_pieces(pieces)} "
                                       f"({_describe(exc)})") from None
                failure = self._retryable(exc)
            attempt = await self._backoff("chat/completions (stream)", attempt, failure)

    def _unfinished(self, events: int, pieces: int) -> Exception:
        """The error for a stream that ended without a finish_reason: to retry while the
        caller has nothing yet, else final (a retry would repeat what the caller has)."""
        if pieces:
            return BackendError(f"{self._where}: the server cut the answer short after "
                                f"{_pieces(pieces)} (the stream ended without a "
                                f"finish_reason); {_CUT_SHORT_HINT}")
        if not events:
            # llama-cpp-python's server answers a streamed request whose prompt does not
            # fit the context with 200 and an empty stream: its error goes to its own log.
            return _RetryableError(
                "the server ended the stream without sending anything (llama-cpp-python's "
                "server does that when the prompt does not fit the model's context: shorten "
                "the prompt or the messages: history)")
        return _RetryableError("the server ended the streamed answer before any text and "
                               f"without a finish_reason ({_CUT_SHORT_HINT})")

    async def _with_retries(self, path: str, attempt: Callable[[], Awaitable[T]]) -> T:
        number = 0
        while True:
            try:
                return await attempt()
            except (httpx.HTTPError, _RetryableError) as exc:
                failure = self._retryable(exc)
            number = await self._backoff(path, number, failure)

    def _retryable(self, exc: httpx.HTTPError | _RetryableError) -> _RetryableError:
        """What to retry after *exc*; raises the error to give up with at once instead."""
        if isinstance(exc, _RetryableError):
            return exc
        if isinstance(exc, _TRANSIENT):
            return _RetryableError(_describe(exc))
        if isinstance(exc, httpx.TimeoutException):
            raise self._timeout(exc) from None
        raise BackendError(f"{self._where}: {_describe(exc)}") from None

    async def _backoff(self, what: str, attempt: int, failure: _RetryableError) -> int:
        """Wait before the next attempt and give its number, or raise when there is none.
        A refusal the backend's own concurrency caused uses up no attempt and needs no
        backoff: the model's limiter has already lowered that concurrency and holds its
        requests for any ``Retry-After``."""
        tries = attempt + 1
        after = failure.retry_after
        if after is not None and after > self.retry.max_retry_after:
            raise BackendError(f"{self._where}: {failure.reason} and asks to retry after "
                               f"{after:g} s, longer than cx waits "
                               f"({self.retry.max_retry_after:g} s); try again later")
        if failure.ours:
            logger.info("%s %s: %s; fewer requests at once from now, then retrying",
                        self._where, what, failure.reason)
            return attempt
        if attempt >= self.retry.max_retries:
            raise BackendError(f"{self._where}: {failure.reason}; gave up after {tries} "
                               f"attempt{'s' if tries > 1 else ''}")
        delay = self.retry.delay(attempt, after)
        logger.info("%s %s: %s; retry %d of %d in %.2f s", self._where, what, failure.reason,
                    tries, self.retry.max_retries, delay)
        await self.retry.sleep(delay)
        return tries

    def _check(self, response: httpx.Response, body: bytes) -> None:
        """Raise what a response that is not a success means; *body* is its content."""
        status = response.status_code
        if 300 <= status < 400:
            # httpx follows no redirect (nor should a POST with its body be resent blindly):
            # the base URL points at the wrong place.
            location = response.headers.get("location")
            target = f" to {location}" if location else ""
            raise BackendError(f"{self._where}: the server answered {status} "
                               f"{_phrase(status)}, a redirect{target}; fix OPENAI_BASE_URL "
                               "(or base_url in cx.toml) to the address it redirects to")
        if status < 400:
            return
        reason = f"the server answered {status} {_phrase(status)}"
        detail = _server_message(body)
        if _CONTEXT_OVERFLOW.search(detail):
            # Whatever the status, asking again cannot make the prompt fit.
            raise BackendError(f"{self._where}: the request does not fit the model's context "
                               f"({reason}: {detail.rstrip('.')}); shorten the prompt or the "
                               "messages: history, or lower maxTokens: (or max_tokens in "
                               "cx.toml)")
        if (status in (400, 422) or status >= 500) and _RESPONSE_FORMAT.search(detail):
            # llama-cpp-python's server answers 500 for a response_format it does not take:
            # asking again gives the same.
            raise _FormatRefusedError(f"{self._where}: {reason}: {detail}; the server does "
                                      "not take this response_format")
        if _NO_EMBEDDINGS in detail:  # a 500, but asking again gives the same
            raise BackendError(f"{self._where}: the server computes no embeddings, which "
                               f"learn needs ({reason}: {detail}); start llama-cpp-python's "
                               "server with --embedding true (it still chats then)")
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _RetryableError(f"{reason}{': ' + detail if detail else ''}", retry_after,
                                  throttled=status == 429)
        if status in (401, 403):
            advice = "set OPENAI_API_KEY to a key this server accepts"
        elif status == 404:
            advice = ("check OPENAI_BASE_URL (it usually ends in /v1) and the model name "
                      "(cx backends lists the server's models)")
        else:
            advice = "the request was refused as it is; check the call's properties"
        raise BackendError(f"{self._where}: {reason}{': ' + detail if detail else ''}; "
                           f"{advice}")

    def _delta(self, data: str, finish: str | None, parts: dict[int, dict[str, Any]],
               usage: dict[str, Any]) -> tuple[str, str | None]:
        """A streamed chunk's text, and the answer's finish_reason so far (*finish* until a
        chunk carries one); the pieces of tool calls it carries go into *parts*, by index,
        and the answer's usage (asked for by ``stream_options``) into *usage*."""
        try:
            chunk = json.loads(data)
        except RecursionError:
            raise BackendError(f"{self._where}: a streamed event is JSON nested too deeply "
                               "to read; is OPENAI_BASE_URL an OpenAI-compatible API?"
                               ) from None
        except ValueError:
            raise BackendError(f"{self._where}: a streamed event is not valid JSON "
                               f"({data[:80]!r})") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise BackendError(f"{self._where}: the server reported an error mid-stream: "
                               f"{_error_text(chunk['error'])}")
        if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
            usage.update(chunk["usage"])
        try:
            choices = chunk["choices"]
            if not choices:  # a usage-only chunk
                return "", finish
            choice = choices[0]
            delta = choice.get("delta", {})
            content = delta.get("content")
            reason = choice.get("finish_reason")
            for piece in delta.get("tool_calls") or ():
                _add_call_part(parts, piece)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._unexpected(chunk, exc) from None
        return self._text(content, chunk), reason if isinstance(reason, str) else finish

    def _timeout(self, exc: httpx.TimeoutException) -> BackendError:
        if isinstance(exc, httpx.ReadTimeout):
            return BackendError(f"{self._where}: no answer within the read timeout of "
                                f"{self.read_timeout:g} s; a slow model can be given longer "
                                "with read_timeout in cx.toml")
        return BackendError(f"{self._where}: {_describe(exc)}")

    def _unexpected(self, data: Any, exc: Exception) -> BackendError:
        return BackendError(f"{self._where}: unexpected response shape ({_shape_problem(exc)}): "
                            f"{_excerpt(data, 120)}")


async def list_models(settings: BackendSettings, timeout: float = 2.0) -> list[str]:
    """The model ids the server offers (``GET /models``); raises ``BackendError`` saying why
    there is no answer. For ``cx backends``: one quick try, no retries."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    where = f"openai backend at {settings.base_url}"
    async with httpx.AsyncClient(base_url=settings.base_url + "/", headers=headers,
                                 timeout=timeout) as client:
        try:
            response = await client.get("models")
        except httpx.ReadTimeout:
            # llama-cpp-python's server lists its models only between answers.
            raise BackendError(f"{where}: the server accepted the connection but did not list "
                               f"its models within {timeout:g} s; it may be busy answering, "
                               "try again when it is idle") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"no server at {settings.base_url} ({_describe(exc)}): start "
                               "one, or set OPENAI_BASE_URL") from None
    if response.status_code in (401, 403):
        raise BackendError(f"{where}: the server refused the API key "
                           f"({response.status_code}); set OPENAI_API_KEY")
    if response.status_code >= 400:
        raise BackendError(f"{where}: GET /models answered {response.status_code} "
                           f"{_phrase(response.status_code)}")
    try:
        return sorted(str(item["id"]) for item in response.json()["data"])
    except (ValueError, KeyError, TypeError):
        raise BackendError(f"{where}: GET /models did not answer as the OpenAI API does; "
                           "is OPENAI_BASE_URL right (it usually ends in /v1)?") from None


# Streamed requests ask for the usage in a last chunk (OpenAI, vLLM, Ollama, llama.cpp's
# server; one that ignores it leaves the call's tokens uncounted).
_STREAMED = {"stream": True, "stream_options": {"include_usage": True}}


def _transcript(entries: Sequence[Entry], wires: Mapping[str, str]) -> list[dict[str, Any]]:
    """A model that acts's conversation since the prompt, as chat messages."""
    messages: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, Correction):
            messages.append({"role": "user", "content": entry.text})
        elif isinstance(entry, Reply):
            message: dict[str, Any] = {"role": "assistant", "content": entry.text or None}
            if entry.calls:
                message["tool_calls"] = [
                    {"id": call.id, "type": "function", "function": {
                        "name": wires.get(call.name, call.name), "arguments": call.text}}
                    for call in entry.calls]
            messages.append(message)
        else:
            messages.append({"role": "tool", "tool_call_id": entry.call.id,
                             "content": entry.content})
    return messages


def _function(name: str, description: str | None,
              parameters: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": dict(parameters)}
    if description is not None:
        function["description"] = description
    return function


def _add_call_part(parts: dict[int, dict[str, Any]], piece: Any) -> None:
    """One streamed piece of a tool call: the first brings its id and name, the others
    more of its arguments."""
    index = piece.get("index", 0)
    part = parts.setdefault(index if isinstance(index, int) else 0,
                            {"id": None, "function": {"name": "", "arguments": ""}})
    if piece.get("id"):
        part["id"] = piece["id"]
    function = piece.get("function") or {}
    name, arguments = function.get("name"), function.get("arguments")
    if isinstance(name, str) and not part["function"]["name"]:
        part["function"]["name"] = name
    if isinstance(arguments, str):
        part["function"]["arguments"] += arguments


def _arguments(text: str) -> tuple[Any, str | None]:
    """A tool call's arguments read from their JSON text, or why they cannot be."""
    if not text.strip():
        return {}, None  # a tool without parameters is often called so
    try:
        arguments = json.loads(text)
    except (ValueError, RecursionError):
        return None, f"the arguments are not valid JSON: {shown(text)}"
    if not isinstance(arguments, dict):
        return None, f"the arguments are not a JSON object: {shown(text)}"
    return arguments, None


def _total_tokens(data: Any) -> int | None:
    """The tokens an answer says its request used (``usage.total_tokens``), if it says."""
    usage = data.get("usage") if isinstance(data, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _per_token(embedding: Any) -> bool:
    """Is this one vector per token? A server whose model does no pooling (llama-cpp-python's
    with a model like Gemma 3) answers so."""
    return isinstance(embedding, list) and bool(embedding) and all(
        isinstance(token, list) for token in embedding)


def _vector(embedding: Any) -> list[float]:
    """One embedding: a list of numbers, or one per token, mean-pooled as the llama backend
    does. Raises ``ValueError``/``TypeError`` for anything else."""
    if _per_token(embedding):
        columns = zip(*embedding, strict=True)  # tokens of unequal length: ValueError
        vector = [sum(float(x) for x in column) / len(embedding) for column in columns]
    elif isinstance(embedding, list):
        vector = [float(x) for x in embedding]
    else:
        raise TypeError(f"an embedding is a list of numbers, not {type(embedding).__name__}")
    if not vector:
        raise ValueError("an empty embedding")
    return vector


def _shape_problem(exc: Exception) -> str:
    """What a response lacked, said without Python's names for it."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} where the OpenAI API has one" if exc.args else "a field missing"
    if isinstance(exc, IndexError):
        return "an empty list where the OpenAI API has an answer"
    return str(exc) or "a value of another kind than the OpenAI API's"


def _pieces(count: int) -> str:
    return f"{count} piece{'s' if count != 1 else ''}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _describe(exc: BaseException) -> str:
    kinds: dict[type[BaseException], str] = {
        httpx.ConnectError: "cannot connect",
        httpx.ConnectTimeout: "connecting timed out",
        httpx.RemoteProtocolError: "the connection dropped",
        httpx.ReadError: "the connection dropped while reading",
        httpx.WriteError: "the connection dropped while sending",
    }
    kind = kinds.get(type(exc), type(exc).__name__)
    return f"{kind}: {exc}" if str(exc) else kind


def _server_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body[:800].decode("utf-8", "replace").strip()[:200]
    if isinstance(data, dict) and "error" in data:
        return _error_text(data["error"])
    return _excerpt(data, 200)


def _is_json(response: httpx.Response) -> bool:
    kind: str = response.headers.get("content-type", "")
    return kind.partition(";")[0].strip().lower() == "application/json"


def _start(raw: bytes) -> str:
    """A body's first characters, to show what came instead of JSON."""
    return raw[:80].decode("utf-8", "replace")


def _excerpt(data: Any, length: int) -> str:
    """The start of *data* as JSON, for a message (it was parsed, so it serialises, unless
    it is nested deeper than the encoder goes)."""
    try:
        return json.dumps(data)[:length]
    except RecursionError:
        return "(JSON nested too deeply to show)"


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"  # what else JSON has: text and null are not asked about


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:200]
