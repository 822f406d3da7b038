"""A small OpenAI-compatible HTTP server on loopback, for the backend's tests.

Real sockets, real HTTP/1.1 (keep-alive, chunked server-sent events), its own event loop in a
thread, so both ``cx run`` (which starts its own loop) and async tests can talk to it. It
records every exchange with its own timestamps and notices when a client goes away mid-request.
Faults are injected per request by a key: a request whose text contains the key gets the fault.

Replies: ``echo: <last user message>`` unless ``reply(key, text)`` says otherwise, cut to
``max_tokens`` words (``finish_reason`` "length") as a real server cuts tokens; embeddings are
bag-of-words counts, so texts that share words are similar. Streams are framed as
llama-cpp-python's server frames them: a chunk with the role, one per piece, one with the
``finish_reason`` and an empty delta, then ``data: [DONE]``.

A model that acts: ``turns(key, ...)`` scripts the next answers about *key*, one per request,
each a text or a list of tool calls ``(function name, arguments text)``, sent as
``tool_calls`` (streamed as OpenAI streams them: id and name first, the arguments in two
pieces). ``refuse_json_schema`` makes the server refuse ``response_format`` ``json_schema``
with a 400, as servers that know only ``json_object`` do.

A server with limits: past ``max_in_flight`` requests at once, it refuses more with a 429 and
``Retry-After: busy_retry_after``, as a provider or a proxy in front of a local model does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DIMENSIONS = 32


@dataclass(frozen=True)
class Fault:
    """``status``: answer that status (with ``error`` as the body's error object, if given);
    ``delay``: answer normally after ``seconds``; ``malformed``: 200 with a body that is not
    JSON; ``drop``: close the connection without answering; ``drop_mid_stream``: stream two
    pieces, then close; ``hold``: stream one piece, then wait until ``release()``;
    ``cut_short``: stream ``pieces`` pieces, then end without a finish_reason, with
    ``data: [DONE]`` if ``done``, else by ending the body; ``empty_stream``: 200 and a stream
    with no event at all; ``per_token``: embeddings as one vector per token; ``answer``: 200
    with ``data`` as the JSON body.

    Hostile ones: ``raw``: 200 with ``body`` as is, of Content-Type ``content_type`` (and
    Content-Encoding ``encoding``, if given, whatever the request accepted);
    ``redirect``: ``status`` with a Location of ``location``; ``drip``: the usual answer (plain
    or streamed), a byte every ``seconds``; ``forever``: 200 and a chunked event stream
    (whatever the request asked for) sending ``body`` every ``seconds`` until the client
    goes."""

    kind: str
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0
    error: dict[str, Any] | None = None
    pieces: int = 0
    done: bool = True
    data: Any = None
    body: bytes = b""
    content_type: str = "application/json"
    encoding: str = ""
    location: str = ""


def status(code: int, retry_after: str | None = None,
           error: dict[str, Any] | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after, error=error)


def cut_short(pieces: int, *, done: bool = True) -> Fault:
    return Fault("cut_short", pieces=pieces, done=done)


def answer(data: Any) -> Fault:
    return Fault("answer", data=data)


def delay(seconds: float) -> Fault:
    return Fault("delay", seconds=seconds)


def raw(body: bytes, content_type: str = "application/json", encoding: str = "") -> Fault:
    return Fault("raw", body=body, content_type=content_type, encoding=encoding)


def redirect(location: str, code: int = 307) -> Fault:
    return Fault("redirect", status=code, location=location)


def drip(seconds: float) -> Fault:
    return Fault("drip", seconds=seconds)


def forever(body: str, seconds: float) -> Fault:
    return Fault("forever", body=body.encode(), seconds=seconds)


MALFORMED = Fault("malformed")
DROP = Fault("drop")
DROP_MID_STREAM = Fault("drop_mid_stream")
HOLD = Fault("hold")
# llama-cpp-python's server, streaming a prompt too long for the context: 200, then nothing.
EMPTY_STREAM = Fault("empty_stream")
# llama-cpp-python's server with a model that does no pooling (Gemma 3): a vector per token.
PER_TOKEN = Fault("per_token")
# Streams that never end, each byte of which resets a client's read timeout: keep-alive
# comments, deltas without content, and text without end (a few MB a second: enough to pass
# a small cap at once, too little to exhaust the memory of a client without one in a test).
PINGS = forever(": ping\n\n", 0.02)
EMPTY_DELTAS = forever("data: " + json.dumps({"choices": [{"index": 0, "delta": {}}]}) + "\n\n",
                       0.02)
ENDLESS = forever("data: " + json.dumps({"choices": [{"index": 0, "delta": {
    "content": "x" * 4000}}]}) + "\n\n", 0.001)


@dataclass
class Exchange:
    """One request as the server saw it; times are the server's ``time.monotonic()``."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    text: str
    connection: int
    started: float
    ended: float | None = None
    outcome: str = "open"  # ok, status 500, malformed, dropped, disconnected

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.ended = time.monotonic()


@dataclass
class OpenAIServer:
    models: list[str] = field(default_factory=lambda: ["test-model", "test-embed"])
    api_key: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    port: int = 0
    refuse_json_schema: bool = False
    stream_usage: bool = True  # answer stream_options.include_usage, as OpenAI does
    max_in_flight: int | None = None
    busy_retry_after: str = "0.05"

    def __post_init__(self) -> None:
        self._scripted: list[tuple[str, Fault]] = []
        self._always: list[tuple[str, Fault]] = []
        self._replies: list[tuple[str, str]] = []
        self._turns: list[tuple[str, Answer]] = []
        self._connections = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._released: asyncio.Event | None = None
        self._in_flight = 0
        self.most_in_flight = 0  # the most requests it answered at once

    # Control, from the test's thread -----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def fail(self, key: str, *faults: Fault) -> None:
        """The next requests about *key* get these faults, one each, in order."""
        self._scripted.extend((key, fault) for fault in faults)

    def always(self, key: str, fault: Fault) -> None:
        self._always.append((key, fault))

    def reply(self, key: str, text: str) -> None:
        self._replies.append((key, text))

    def turns(self, key: str, *answers: Answer) -> None:
        """The next requests about *key* get these answers, one each, in order."""
        self._turns.extend((key, answer) for answer in answers)

    def chats(self) -> list[dict[str, Any]]:
        """The bodies of the chat requests, in order."""
        return [e.body for e in self.exchanges if e.path == "/v1/chat/completions"]

    def release(self) -> None:
        """Let held streams go on."""
        self._loop.call_soon_threadsafe(self._release_now)

    def about(self, key: str) -> list[Exchange]:
        return [e for e in self.exchanges if key in e.text]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll a condition the server's thread makes true (bounded: the test fails, not hangs)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # Serving ------------------------------------------------------------------------------------

    async def _start(self) -> None:
        self._released = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _release_now(self) -> None:
        assert self._released is not None
        self._released.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = next(self._connections)
        try:
            while await self._one(reader, writer, connection):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   connection: int) -> bool:
        """Serve one request; False when the connection is done."""
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else None
        exchange = Exchange(method, path, headers, body, _text_of(body), connection,
                            time.monotonic())
        self.exchanges.append(exchange)
        return await self._within_limit(exchange, reader, writer)

    async def _within_limit(self, exchange: Exchange, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> bool:
        """Answer, or refuse with a 429 if ``max_in_flight`` requests are being answered."""
        if self.max_in_flight is not None and self._in_flight >= self.max_in_flight:
            await _send_json(exchange, writer, 429,
                             {"error": {"message": "too many requests at once"}},
                             {"Retry-After": self.busy_retry_after})
            return True
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            return await self._answer(exchange, reader, writer)
        finally:
            self._in_flight -= 1

    def _fault_for(self, text: str) -> Fault | None:
        for i, (key, fault) in enumerate(self._scripted):
            if key in text:
                del self._scripted[i]
                return fault
        return next((fault for key, fault in self._always if key in text), None)

    async def _answer(self, exchange: Exchange, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be closed."""
        if self.api_key and exchange.headers.get("authorization") != f"Bearer {self.api_key}":
            await _send_json(exchange, writer, 401,
                             {"error": {"message": "Incorrect API key provided"}})
            return True
        fault = self._fault_for(exchange.text)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "delay" and await _client_left(reader, fault.seconds):
            exchange.finish("disconnected")
            return False
        if kind == "drop":
            exchange.finish("dropped")
            return False
        if fault is not None and kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            error = fault.error or {"message": f"injected {fault.status}"}
            await _send_json(exchange, writer, fault.status, {"error": error}, extra)
            return True
        if fault is not None and kind == "answer":
            await _send_json(exchange, writer, 200, fault.data)
            return True
        if fault is not None and kind == "raw":
            await _send(exchange, writer, 200, fault.body, fault.content_type,
                        {"Content-Encoding": fault.encoding} if fault.encoding else None)
            return True
        if fault is not None and kind == "redirect":
            await _send(exchange, writer, fault.status, b"", "text/html",
                        {"Location": fault.location})
            return True
        if fault is not None and kind == "forever":
            return await _forever(exchange, reader, writer, fault)
        if kind == "malformed":
            await _send(exchange, writer, 200, b'{"choices": [ this is not json',
                        "application/json", outcome="malformed")
            return True
        if exchange.path == "/v1/models" and exchange.method == "GET":
            await _send_json(exchange, writer, 200, {"object": "list", "data": [
                {"id": m, "object": "model"} for m in self.models]})
        elif exchange.path == "/v1/embeddings":
            inputs = exchange.body["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            embed = _per_token_embedding if kind == "per_token" else _embedding
            await _send_json(exchange, writer, 200, {
                "object": "list", "model": exchange.body["model"],
                "data": [{"index": i, "embedding": embed(t)} for i, t in enumerate(inputs)]})
        elif exchange.path == "/v1/chat/completions":
            streamed = bool(exchange.body.get("stream"))
            format_type = (exchange.body.get("response_format") or {}).get("type")
            if self.refuse_json_schema and format_type == "json_schema":
                await _send_json(exchange, writer, 400, {"error": {
                    "message": "response_format type json_schema is not supported"}})
                return True
            scripted = self._turn_for(exchange.text)
            if isinstance(scripted, list):
                return await _tool_calls(exchange, writer, scripted, streamed)
            text = self._reply_for(exchange.body) if scripted is None else scripted
            words, finish = _capped(text, exchange.body.get("max_tokens"))
            if fault is not None and kind == "drip":
                events = [_event({"content": word}, None) for word in words]
                whole = "".join(events) + _event({}, finish) + "data: [DONE]\n\n" if streamed \
                    else json.dumps(_completion(exchange.body, "".join(words), finish))
                return await _drip(exchange, reader, writer, fault.seconds, whole.encode(),
                                   "text/event-stream" if streamed else "application/json")
            if streamed:
                return await self._stream(exchange, reader, writer, words, finish, fault)
            await _send_json(exchange, writer, 200,
                             _completion(exchange.body, "".join(words), finish))
        else:
            await _send_json(exchange, writer, 404,
                             {"error": {"message": f"no route {exchange.path}"}})
        return True

    def _turn_for(self, text: str) -> Answer | None:
        for i, (key, answer) in enumerate(self._turns):
            if key in text:
                del self._turns[i]
                return answer
        return None

    def _reply_for(self, body: dict[str, Any]) -> str:
        everything = _text_of(body)
        for key, text in self._replies:
            if key in everything:
                return text
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return f"echo: {users[-1] if users else ''}"

    async def _stream(self, exchange: Exchange, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, words: list[str], finish: str,
                      fault: Fault | None) -> bool:
        kind = fault.kind if fault is not None else None
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        if kind == "empty_stream":
            exchange.finish("empty")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        _write_chunk(writer, _event({"role": "assistant"}, None))
        for number, piece in enumerate(words):
            if kind == "drop_mid_stream" and number == 2:
                exchange.finish("dropped")
                return False
            if fault is not None and kind == "cut_short" and number == fault.pieces:
                break
            _write_chunk(writer, ": keep-alive\n\n" + _event({"content": piece}, None))
            await writer.drain()
            if kind == "hold" and number == 0 and \
                    await self._client_left_before_release(reader):
                exchange.finish("disconnected")
                return False
        if kind == "cut_short":
            exchange.finish("cut short")
            if fault is not None and fault.done:
                _write_chunk(writer, "data: [DONE]\n\n")
        else:
            # Finished before the last bytes: the client may look as soon as they land.
            exchange.finish("ok")
            wants_usage = (exchange.body.get("stream_options") or {}).get("include_usage")
            usage = _usage_event(exchange.body, "".join(words)) \
                if wants_usage and self.stream_usage else ""
            _write_chunk(writer, _event({}, finish) + usage + "data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _client_left_before_release(self, reader: asyncio.StreamReader) -> bool:
        assert self._released is not None
        released = asyncio.ensure_future(self._released.wait())
        eof = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({released, eof}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (released, eof):
            waiter.cancel()
        await asyncio.gather(released, eof, return_exceptions=True)
        return eof in done


Answer = str | list[tuple[str, str]]
"""A scripted answer: a text, or tool calls as (function name, arguments text)."""


async def _tool_calls(exchange: Exchange, writer: asyncio.StreamWriter,
                      calls: list[tuple[str, str]], streamed: bool) -> bool:
    """Answer with tool calls, ids ``call_1``, ``call_2``..., finish_reason tool_calls."""
    whole = [{"id": f"call_{n}", "type": "function",
              "function": {"name": name, "arguments": arguments}}
             for n, (name, arguments) in enumerate(calls, 1)]
    if not streamed:
        await _send_json(exchange, writer, 200, {
            "id": "chatcmpl-test", "object": "chat.completion", "model": exchange.body["model"],
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": whole}}]})
        return True
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    _write_chunk(writer, _event({"role": "assistant"}, None))
    for index, call in enumerate(whole):
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        half = len(arguments) // 2
        pieces = [{"index": index, "id": call["id"], "type": "function",
                   "function": {"name": name, "arguments": ""}},
                  {"index": index, "function": {"arguments": arguments[:half]}},
                  {"index": index, "function": {"arguments": arguments[half:]}}]
        for piece in pieces:
            _write_chunk(writer, _event({"tool_calls": [piece]}, None))
            await writer.drain()
    exchange.finish("ok")
    _write_chunk(writer, _event({}, "tool_calls") + "data: [DONE]\n\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def _text_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    inputs = body.get("input", "")
    return "\n".join(inputs) if isinstance(inputs, list) else str(inputs)


def _capped(text: str, max_tokens: int | None) -> tuple[list[str], str]:
    """The reply's words (a word is a token here) up to *max_tokens*, and the finish reason."""
    words = re.findall(r"\S+\s*", text)
    if max_tokens is not None and len(words) > max_tokens:
        return words[:max_tokens], "length"
    return words, "stop"


def _completion(body: dict[str, Any], content: str, finish: str) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": _usage(body, content)}


def _usage(body: dict[str, Any], content: str) -> dict[str, int]:
    """Tokens as this server counts them: words, of the messages in and of the answer out."""
    prompt, completion = len(_text_of(body).split()), len(content.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _usage_event(body: dict[str, Any], content: str) -> str:
    """The last chunk of a stream asked for its usage: no choices, only the usage."""
    chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": [],
             "usage": _usage(body, content)}
    return f"data: {json.dumps(chunk)}\n\n"


def _event(delta: dict[str, Any], finish: str | None) -> str:
    """One streamed chunk, framed as llama-cpp-python's server frames it."""
    chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "logprobs": None,
                          "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n"


def _embedding(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[_dimension(word)] += 1.0
    return vector


def _per_token_embedding(text: str) -> list[list[float]]:
    """A start-of-text token, then one per word: their mean ranks texts as ``_embedding``."""
    tokens = [[0.0] * DIMENSIONS]
    for word in re.findall(r"[a-z]+", text.lower()):
        tokens.append([0.0] * DIMENSIONS)
        tokens[-1][_dimension(word)] = 1.0
    return tokens


def _dimension(word: str) -> int:
    return hashlib.sha256(word.encode()).digest()[0] % DIMENSIONS


async def _client_left(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait *seconds*, unless the client closes the connection first (then True)."""
    eof = asyncio.ensure_future(reader.read(1))
    done, _ = await asyncio.wait({eof}, timeout=seconds)
    if done:
        return True
    eof.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await eof
    return False


async def _drip(exchange: Exchange, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter, seconds: float, body: bytes, kind: str) -> bool:
    """Send *body* a byte every *seconds*: each byte resets the client's read timeout."""
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode())
    for byte in body:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            exchange.finish("disconnected")
            return False
        if await _client_left(reader, seconds):
            exchange.finish("disconnected")
            return False
    exchange.finish("ok")
    return True


async def _forever(exchange: Exchange, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, fault: Fault) -> bool:
    """A chunked event stream that never ends: *fault.body* every *fault.seconds*."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    while True:
        try:
            writer.write(f"{len(fault.body):x}\r\n".encode() + fault.body + b"\r\n")
            await writer.drain()
        except ConnectionError:
            break
        if await _client_left(reader, fault.seconds):
            break
    exchange.finish("disconnected")
    return False


async def _send(exchange: Exchange, writer: asyncio.StreamWriter, code: int, body: bytes,
                kind: str, extra: dict[str, str] | None = None, outcome: str = "") -> None:
    # Finished before the bytes go out: the client may look at the exchange as soon as they land.
    exchange.finish(outcome or ("ok" if code == 200 else f"status {code}"))
    head = [f"HTTP/1.1 {code} {'OK' if code == 200 else 'Error'}",
            f"Content-Type: {kind}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()


async def _send_json(exchange: Exchange, writer: asyncio.StreamWriter, code: int, data: Any,
                     extra: dict[str, str] | None = None) -> None:
    await _send(exchange, writer, code, json.dumps(data).encode(), "application/json", extra)


def _write_chunk(writer: asyncio.StreamWriter, text: str) -> None:
    data = text.encode()
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
