"""Services: the AI services as Python coroutines, for code that uses cxlang as a library.

A CX program calls ``think { ... }`` and hears back through events (``thinking.complete``,
``thinking.error``). Python code has ``await`` for that: each method returns the answer and
raises what fails (:class:`BackendError`, its message saying what to do), and emits no event.
The calls go through the same :class:`ServiceInvoker`, backends, prompts and memory as a
program's, so an answer means the same from either face.

A call with ``parallel=`` is a parallel call's source step, as a CX call with handler
parameters is: the model call, then the handlers over the call's payload plus ``result``, all
at once (:meth:`cxlang.Runtime.parallel`); it returns their consolidated result, whose partial
failures are data (``res.failures``), not exceptions.

``schema=`` and ``tools=`` make the model act, as in CX (:mod:`.tools`): ``schema=`` takes a
shape (shorthand or JSON Schema, a dict) and gives the object that fits, or a dataclass or
Pydantic model and gives an instance of it (:mod:`.python_types`); ``tools=`` names events
whose handlers on the runtime the model may call, several at once.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack, overload

from ..runtime import ParallelExecutionResult, Runtime
from ..runtime.resolver import ParameterSpec
from .backend import Backend
from .config import BackendSettings, load_settings
from .invoker import ServiceInvoker
from .memory import Memory
from .python_types import answer_type
from .registry import create_backend

__all__ = ["ModelOptions", "Services", "ToolSpec"]

_CX_NAMES = {"max_tokens": "maxTokens", "max_steps": "maxSteps",
             "schema_retries": "schemaRetries"}

T = TypeVar("T")

ToolSpec = str | Mapping[str, Any]
"""A tool: an event name (``"weather.lookup"``), or ``{"event": ..., "description": ...,
"parameters": {...}}``."""


class ModelOptions(TypedDict, total=False):
    """How a call asks the model, each optional (``None`` too leaves the default)."""

    system: str | None  # instructions instead of the service's own
    context: str | None  # background given with the prompt
    temperature: float | None
    max_tokens: int | None  # the answer's length (default: max_tokens in cx.toml, 256)
    recall: int | None  # learnt texts given to the model (default 3, 0 for none)
    tools: Sequence[ToolSpec] | None  # events whose handlers the model may call
    max_steps: int | None  # model turns, tool calls between them (default 8)
    schema_retries: int | None  # asking again for an answer that does not fit (default 1)


class Services:
    """``think``, ``chat``, ``is``, ``learn`` and streamed text on one backend, for *runtime*.

    The backend comes from the keywords, over *settings* when given, else over what ``cx run``
    reads (``CX_BACKEND``/``CX_MODEL``/``OPENAI_BASE_URL``/``OPENAI_API_KEY``, then the nearest
    ``cx.toml`` or ``[tool.cx]``), else ``local``. ``latency`` (seconds) slows the ``local``
    backend down like a real model. The Services own the backend: ``aclose()`` (or leaving
    ``async with``) closes its connections; the runtime stays open, it is the caller's.

    Every method is a coroutine (``stream`` an async iterator): await it from your own
    coroutines or from ``async def`` handlers. Cancelling the awaiting task cancels the model
    request. Options are keyword-only and ``None`` leaves the default: ``system`` (instructions),
    ``context`` (background), ``temperature``, ``max_tokens`` (the answer's length), ``recall``
    (learnt texts given to the model, default 3, ``0`` for none).

    ``record="calls.jsonl"`` writes every model call and its answer to that file;
    ``replay="calls.jsonl"`` answers every call from such a file and never asks a model (a
    call that is not in it raises :class:`BackendError`); ``cache="dir"`` answers identical
    calls from that directory across runs: as ``cx run --record/--replay/--cache``.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        backend: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        embedding_model: str | None = None,
        settings: BackendSettings | None = None,
        latency: float = 0.0,
        record: str | os.PathLike[str] | None = None,
        replay: str | os.PathLike[str] | None = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        chosen: dict[str, Any] = {key: value for key, value in (
            ("backend", backend), ("model", model), ("api_key", api_key),
            ("embedding_model", embedding_model),
            ("base_url", None if base_url is None else base_url.rstrip("/")),
        ) if value is not None}
        if backend is not None:
            chosen["source"] = "Services(backend=...)"
        self.runtime = runtime
        self.settings = replace(load_settings() if settings is None else settings, **chosen)
        self.backend: Backend = create_backend(
            self.settings.backend, latency=latency, settings=self.settings,
            record=None if record is None else Path(record),
            replay=None if replay is None else Path(replay),
            cache=None if cache is None else Path(cache))
        self._invoker = ServiceInvoker(runtime, self.backend)
        self._closed = False

    @property
    def memory(self) -> Memory:
        """What :meth:`learn` stored, shared by every later call of these Services."""
        return self._invoker.memory

    # Text ------------------------------------------------------------------------------------

    @overload
    async def think(self, prompt: str, *, schema: type[T], timeout: float | None = None,
                    max_concurrency: int | None = None, fail_fast: bool = False,
                    **options: Unpack[ModelOptions]) -> T: ...

    @overload
    async def think(self, prompt: str, *, schema: Mapping[str, Any],
                    timeout: float | None = None, max_concurrency: int | None = None,
                    fail_fast: bool = False, **options: Unpack[ModelOptions]) -> Any: ...

    @overload
    async def think(self, prompt: str, *, timeout: float | None = None,
                    max_concurrency: int | None = None, fail_fast: bool = False,
                    **options: Unpack[ModelOptions]) -> str: ...

    @overload
    async def think(
        self,
        prompt: str,
        *,
        parallel: ParameterSpec,
        schema: Any = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        **options: Unpack[ModelOptions],
    ) -> ParallelExecutionResult: ...

    async def think(
        self,
        prompt: str,
        *,
        parallel: ParameterSpec | None = None,
        schema: Any = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        **options: Unpack[ModelOptions],
    ) -> Any:
        """The model's answer to *prompt*.

        With ``schema=`` the answer is an object that fits it (a dict; an instance for a
        dataclass or Pydantic model); with ``tools=["weather.lookup", ...]`` the model may
        call those events' handlers on the runtime, several at once, each under ``timeout``
        (seconds, per handler), ``max_concurrency`` and ``fail_fast``, before it answers.

        With ``parallel={"name": "event.name", ...}`` the answer is a parallel call's source
        step: the handlers then run at once over ``{"prompt": ..., "result": answer}`` (with
        the options that were set, as a CX call's handlers see them), and the consolidated
        result is returned. ``timeout`` (seconds, per handler), ``max_concurrency`` and
        ``fail_fast`` are :meth:`cxlang.Runtime.parallel`'s.
        """
        properties = _properties(options, prompt=prompt)
        return await self._text("think", properties, schema, parallel, timeout,
                                max_concurrency, fail_fast)

    @overload
    async def chat(
        self,
        message: str | None = None,
        *,
        schema: type[T],
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> T: ...

    @overload
    async def chat(
        self,
        message: str | None = None,
        *,
        schema: Mapping[str, Any],
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> Any: ...

    @overload
    async def chat(
        self,
        message: str | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> str: ...

    @overload
    async def chat(
        self,
        message: str | None = None,
        *,
        parallel: ParameterSpec,
        schema: Any = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> ParallelExecutionResult: ...

    async def chat(
        self,
        message: str | None = None,
        *,
        parallel: ParameterSpec | None = None,
        schema: Any = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> Any:
        """The assistant's reply to *message*, after the history in ``messages``
        (``[{"role": "user", "content": "hi"}, ...]``); without *message* it answers the
        history's last turn. ``schema=``, ``tools=``, ``parallel=`` and their options as in
        :meth:`think`."""
        history = _history("chat", "message", message, messages)
        properties = _properties(options, message=message, messages=history)
        return await self._text("chat", properties, schema, parallel, timeout,
                                max_concurrency, fail_fast)

    def stream(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
        **options: Unpack[ModelOptions],
    ) -> AsyncIterator[str]:
        """``async for piece in svc.stream(prompt)``: what :meth:`think` would answer, in
        pieces as the model produces them; with ``messages=``, what :meth:`chat` would."""
        self._check_open()
        service = "think" if messages is None else "chat"
        history = _history("stream", "prompt", prompt, messages)
        properties = _properties(options, prompt=prompt, messages=history)
        return self._invoker.stream_answer(service, properties)

    # Judgement and memory --------------------------------------------------------------------

    async def is_(
        self,
        statement: str,
        *,
        data: object = None,
        context: str | None = None,
        recall: int | None = None,
    ) -> bool:
        """Does *statement* hold, given *data* and *context*? The model's yes or no (CX's
        ``is``; ``is`` itself is a Python keyword). The ``local`` backend, which cannot judge,
        answers by a fixed rule (:mod:`cxlang.services.local`)."""
        self._check_open()
        properties = _properties({"context": context, "recall": recall}, evaluate=statement,
                                 data=data)
        return bool(await self._invoker.answer("is", properties))

    async def learn(self, text: str) -> None:
        """Keep *text* in :attr:`memory`: later calls are given the learnt texts closest to
        their prompt (their ``recall``)."""
        self._check_open()
        await self._invoker.answer("learn", {"data": text})

    # Lifetime --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the backend's connections (and model); later calls raise. Closing twice is
        fine."""
        if not self._closed:
            self._closed = True
            await self.backend.aclose()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _text(
        self,
        service: str,
        properties: dict[str, Any],
        schema: Any,
        parallel: ParameterSpec | None,
        timeout: float | None,
        max_concurrency: int | None,
        fail_fast: bool,
    ) -> Any:
        tools = properties.get("tools")
        if parallel is None and tools is None and (timeout is not None
                                                   or max_concurrency is not None
                                                   or fail_fast):
            raise TypeError(f"{service}(): timeout, max_concurrency and fail_fast steer the "
                            "handlers of parallel= and tools=; to bound the model call itself, "
                            "await it inside `async with asyncio.timeout(seconds):`")
        self._check_open()
        if tools is not None:
            # As a CX call's: each tool call's handlers (and each model turn) within timeout.
            properties["tools"] = [{"event": tool} if isinstance(tool, str) else dict(tool)
                                   for tool in tools]
            properties.update({key: value for key, value in (
                ("timeout", None if timeout is None else timeout * 1000),
                ("maxConcurrency", max_concurrency), ("failFast", fail_fast or None),
            ) if value is not None})
        shape, made = answer_type(schema)
        if shape is not None:
            properties["schema"] = shape
        result = made(await self._invoker.answer(service, properties))
        if parallel is None:
            return result if schema is not None else str(result)
        # The payload a CX call's handlers get, so one handler serves both faces.
        return await self.runtime.parallel(
            parallel, {**properties, "result": result}, timeout=timeout,
            max_concurrency=max_concurrency, fail_fast=fail_fast)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("these Services are closed (aclose() or the end of their "
                               "`async with`); make a new cxlang.Services(...) to call again")


def _properties(options: Mapping[str, object], **text: object) -> dict[str, Any]:
    """A call's properties as a CX call names them (``max_tokens`` is ``maxTokens:``), without
    the options left unset."""
    unknown = options.keys() - ModelOptions.__annotations__.keys()
    if unknown:  # **options takes any keyword at run time: a typo must not pass unseen
        key = min(unknown)
        close = difflib.get_close_matches(key, ModelOptions.__annotations__, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"unexpected keyword argument {key!r}{hint} (the options are "
                        f"{', '.join(ModelOptions.__annotations__)})")
    named = {_CX_NAMES.get(key, key): value for key, value in options.items()}
    return {key: value for key, value in {**text, **named}.items() if value is not None}


def _history(
    method: str, what: str, text: str | None, messages: Sequence[Mapping[str, str]] | None
) -> list[dict[str, str]] | None:
    """The chat history as the prompts take it; refused when there is nothing to answer."""
    if text is None and not messages:
        raise ValueError(f"{method}() needs a {what}, or messages=[{{'role': 'user', "
                         "'content': ...}] whose last turn it answers")
    return None if messages is None else [dict(turn) for turn in messages]
