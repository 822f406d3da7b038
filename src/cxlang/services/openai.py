"""The ``openai`` backend: any server that speaks the OpenAI HTTP API.

OpenAI itself, and locally Ollama, llama.cpp's server, vLLM, LM Studio. One ``httpx`` client
per backend is the connection pool every branch shares; a semaphore caps the requests in
flight (more wait their turn instead of overloading a local server); 429, 5xx and dropped
connections are retried with backoff (:mod:`.retry`); anything else fails at once with the
server's own message and what to do about it. A cancelled branch cancels its ``await``, and
httpx then closes the connection, so the server sees the request go away.

Every exchange runs in a task of its own. httpx (through anyio) ties its locks and cancel
scopes to the task that enters them, and a handler's first step may run in its caller's task
(the runtime's eager start) before it continues in a task of its own; an exchange that began
in one and ended in the other would break them. A task awaiting a task passes cancellation
on, so cancelling the branch still cancels the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

import httpx

from .backend import BackendError, BackendUnavailableError, ServiceRequest
from .config import BackendSettings
from .prompts import (
    Generation,
    chat_messages,
    classify_messages,
    generation,
    parse_yes_no,
)
from .retry import RetryPolicy, parse_retry_after
from .sse import sse_events

__all__ = ["OpenAIBackend", "list_models"]

logger = logging.getLogger("cxlang.services")

T = TypeVar("T")

# Failures worth another try: the request may never have reached the server, or the server
# said it is overloaded or restarting. A read timeout is not among them: the model is slow,
# and asking again only queues the same work twice.
_TRANSIENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadError, httpx.WriteError,
              httpx.RemoteProtocolError)


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


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
        self.base_url = settings.base_url
        self.read_timeout = settings.read_timeout
        self.retry = retry or RetryPolicy(max_retries=settings.max_retries,
                                          base_delay=settings.retry_delay,
                                          max_delay=max(8.0, settings.retry_delay))
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
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
        return await self._chat(chat_messages(request), generation(request))

    async def chat(self, request: ServiceRequest) -> str:
        return await self._chat(chat_messages(request), generation(request))

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        body = self._body(chat_messages(request), generation(request))
        body["stream"] = True
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
        data = await self._post("embeddings", {"model": self.embedding_model, "input": texts})
        try:
            items = sorted(data["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unexpected(data, exc) from None
        if len(vectors) != len(texts):
            raise BackendError(f"{self._where}: asked for {len(texts)} embeddings, "
                               f"got {len(vectors)}")
        return vectors

    async def classify(self, request: ServiceRequest) -> bool:
        options = generation(request)
        options = Generation(0.0 if options.temperature is None else options.temperature,
                             options.max_tokens or 8)
        return parse_yes_no(await self._chat(classify_messages(request), options))

    async def aclose(self) -> None:
        await self._client.aclose()

    # HTTP ------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"openai backend at {self.base_url}"

    def _body(self, messages: list[dict[str, str]], options: Generation) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.max_tokens is not None:
            body["max_tokens"] = options.max_tokens
        return body

    async def _chat(self, messages: list[dict[str, str]], options: Generation) -> str:
        data = await self._post("chat/completions", self._body(messages, options))
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise self._unexpected(data, exc) from None
        return content if isinstance(content, str) else ""

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async def attempt() -> Any:
            async with self._slots:
                response = await self._client.post(path, json=body)
            self._check(response)
            try:
                return response.json()
            except ValueError:
                raise BackendError(
                    f"{self._where}: the response to {path} is not valid JSON "
                    f"(it starts {response.text[:80]!r}); is OPENAI_BASE_URL an OpenAI-"
                    "compatible API?") from None

        return await self._with_retries(path, lambda: asyncio.ensure_future(attempt()))

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[str]:
        """Content deltas of a streamed chat completion. Retried only until the first piece:
        after that a retry would repeat text the caller already has."""
        for attempt in range(self.retry.max_retries + 1):
            started = False
            try:
                async with self._slots, self._client.stream(
                    "POST", "chat/completions", json=body
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        self._check(response)
                    async for event in sse_events(response.aiter_lines()):
                        if event.data.strip() == "[DONE]":
                            return
                        piece = self._delta(event.data)
                        if piece:
                            started = True
                            yield piece
                    return
            except (httpx.HTTPError, _RetryableError) as exc:
                if started and isinstance(exc, _TRANSIENT):
                    raise BackendError(f"{self._where}: the connection dropped in the middle "
                                       f"of a streamed answer ({_describe(exc)})") from None
                failure = self._retryable(exc)
            await self._backoff("chat/completions (stream)", attempt, failure)

    async def _with_retries(self, path: str, attempt: Callable[[], Awaitable[T]]) -> T:
        for number in range(self.retry.max_retries + 1):
            try:
                return await attempt()
            except (httpx.HTTPError, _RetryableError) as exc:
                failure = self._retryable(exc)
            await self._backoff(path, number, failure)
        raise AssertionError("unreachable: _backoff raises after the last attempt")

    def _retryable(self, exc: httpx.HTTPError | _RetryableError) -> _RetryableError:
        """What to retry after *exc*; raises the error to give up with at once instead."""
        if isinstance(exc, _RetryableError):
            return exc
        if isinstance(exc, _TRANSIENT):
            return _RetryableError(_describe(exc))
        if isinstance(exc, httpx.TimeoutException):
            raise self._timeout(exc) from None
        raise BackendError(f"{self._where}: {_describe(exc)}") from None

    async def _backoff(self, what: str, attempt: int, failure: _RetryableError) -> None:
        """Wait before the next attempt, or raise when there is none."""
        tries = attempt + 1
        if attempt >= self.retry.max_retries:
            raise BackendError(f"{self._where}: {failure.reason}; gave up after {tries} "
                               f"attempt{'s' if tries > 1 else ''}")
        after = failure.retry_after
        if after is not None and after > self.retry.max_retry_after:
            raise BackendError(f"{self._where}: {failure.reason} and asks to retry after "
                               f"{after:g} s, longer than cx waits "
                               f"({self.retry.max_retry_after:g} s); try again later")
        delay = self.retry.delay(attempt, after)
        logger.info("%s %s: %s; retry %d of %d in %.2f s", self._where, what, failure.reason,
                    tries, self.retry.max_retries, delay)
        await self.retry.sleep(delay)

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        reason = f"the server answered {status} {_phrase(status)}"
        detail = _server_message(response)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise _RetryableError(f"{reason}{': ' + detail if detail else ''}", retry_after)
        if status in (401, 403):
            advice = "set OPENAI_API_KEY to a key this server accepts"
        elif status == 404:
            advice = ("check OPENAI_BASE_URL (it usually ends in /v1) and the model name "
                      "(cx backends lists the server's models)")
        else:
            advice = "the request was refused as it is; check the call's properties"
        raise BackendError(f"{self._where}: {reason}{': ' + detail if detail else ''}; "
                           f"{advice}")

    def _delta(self, data: str) -> str:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise BackendError(f"{self._where}: a streamed event is not valid JSON "
                               f"({data[:80]!r})") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise BackendError(f"{self._where}: the server reported an error mid-stream: "
                               f"{_error_text(chunk['error'])}")
        try:
            choices = chunk["choices"]
            if not choices:  # a usage-only chunk
                return ""
            content = choices[0].get("delta", {}).get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._unexpected(chunk, exc) from None
        return content if isinstance(content, str) else ""

    def _timeout(self, exc: httpx.TimeoutException) -> BackendError:
        if isinstance(exc, httpx.ReadTimeout):
            return BackendError(f"{self._where}: no answer within the read timeout of "
                                f"{self.read_timeout:g} s; a slow model can be given longer "
                                "with read_timeout in cx.toml")
        return BackendError(f"{self._where}: {_describe(exc)}")

    def _unexpected(self, data: Any, exc: Exception) -> BackendError:
        return BackendError(f"{self._where}: unexpected response shape ({type(exc).__name__} "
                            f"{exc}): {json.dumps(data)[:120]}")


async def list_models(settings: BackendSettings, timeout: float = 2.0) -> list[str]:
    """The model ids the server offers (``GET /models``); raises ``BackendError`` saying why
    there is no answer. For ``cx backends``: one quick try, no retries."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    where = f"openai backend at {settings.base_url}"
    async with httpx.AsyncClient(base_url=settings.base_url + "/", headers=headers,
                                 timeout=timeout) as client:
        try:
            response = await client.get("models")
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


def _server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(data, dict) and "error" in data:
        return _error_text(data["error"])
    return json.dumps(data)[:200]


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error)[:200]
