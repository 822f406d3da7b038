"""ServiceInvoker: one service call, in the order the language decides.

1. Run the service itself (the model call), giving the source payload: the call's properties
   plus ``result``.
2. If the call has parallel handler parameters, run them all at once over that payload
   (:meth:`cxlang.Runtime.parallel`), giving the consolidated payload.
3. Emit to every completion event (the call's ``handlers``, else the service's default). With
   parameters these emissions run in parallel and are waited for (:meth:`cxlang.Runtime.deliver`);
   without, they are queued in order, each with the call's properties + ``result`` + its own
   custom payload (the plain, backward-compatible path).
4. If a parameter failed or timed out, also emit the service's error event with
   ``{failedHandlers, errors}``.

Around the model call: ``learn`` stores text in the run's :class:`Memory`; later calls get the
texts most similar to their prompt (``recall: N``, default 3, ``0`` for none); ``stream: true``
emits ``<completion event>.chunk`` events as the text arrives, before the completion event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..runtime import Failure, Runtime
from ..runtime.observe import current_span
from ..runtime.resolver import HandlerParameters
from .backend import Backend, BackendError, ServiceRequest
from .memory import Memory
from .registry import SERVICES, ServiceSpec

__all__ = ["Completion", "ServiceInvoker"]

Completion = tuple[str, Mapping[str, Any] | None]
"""A completion event's name and its custom payload (``done { tag: "x" }``)."""

logger = logging.getLogger("cxlang.services")


class ServiceInvoker:
    """Runs service calls against one backend on one runtime."""

    def __init__(
        self, runtime: Runtime, backend: Backend, *, max_concurrency: int | None = None
    ) -> None:
        self.runtime = runtime
        self.backend = backend
        self.max_concurrency = max_concurrency  # for calls that set no maxConcurrency
        self.memory = Memory()

    async def call(
        self,
        service: str,
        properties: dict[str, Any],
        parameters: HandlerParameters,
        completions: Sequence[Completion],
    ) -> Any:
        """Run one call; its value is the consolidated payload with parameters, else ``result``.

        A backend failure is not raised: it emits the service's error event and the value is
        ``None``, like any other failure the program can handle with an ``on`` handler.
        """
        observer = self.runtime.observer
        if observer is None:
            return await self._call(service, properties, parameters, completions)
        with observer.span("service", service):  # traced: a span around the whole call
            return await self._call(service, properties, parameters, completions)

    async def _call(
        self,
        service: str,
        properties: dict[str, Any],
        parameters: HandlerParameters,
        completions: Sequence[Completion],
    ) -> Any:
        spec = SERVICES[service]
        try:
            timeout = _milliseconds(properties.get("timeout"), "timeout")
            cap = _positive_int(properties.get("maxConcurrency"), "maxConcurrency")
            outcome = await self._ask(spec, properties, completions)
        except Exception as exc:
            self._fail(spec, properties, exc)
            return None
        if outcome is _CONDITION_FAILED:
            return False
        result, source = outcome
        if not parameters:
            self._emit_in_order(spec, source, completions)
            return result
        consolidated = await self.runtime.parallel(
            parameters, source,
            timeout=timeout,
            max_concurrency=cap or self.max_concurrency,
            fail_fast=properties.get("failFast") is True,
        )
        if consolidated.has_partial_failures and spec.error is not None:
            failures = consolidated.failures
            self.runtime.emit(spec.error, {
                "failedHandlers": list(failures),
                "errors": {name: f.to_payload() for name, f in failures.items()},
            })
        await self.runtime.deliver(
            (name, _with(consolidated.payload, custom))
            for name, custom in self._targets(spec, completions))
        return consolidated.payload

    async def _ask(
        self, spec: ServiceSpec, properties: dict[str, Any], completions: Sequence[Completion]
    ) -> Any:
        """Ask the backend; the service's result and the source payload for its handlers."""
        request = ServiceRequest(spec.name, properties)
        if spec.kind in ("complete", "chat", "condition"):
            request = await self._with_memories(request)
        source = {k: v for k, v in properties.items() if k != "handlers"}
        if spec.kind == "timer":
            duration = properties.get("durationMs", 0)
            if not _is_number(duration) or duration < 0:
                raise ValueError(f"await needs durationMs: a number >= 0, got {duration!r}")
            await asyncio.sleep(duration / 1000)
            result: Any = duration
        elif spec.kind == "condition":
            holds = await self.backend.classify(request)
            if holds != (spec.name == "is"):
                return _CONDITION_FAILED
            data = properties.get("data")
            if isinstance(data, Mapping):
                source = {**source, **data}
            result = True  # the call's handlers fire: `is` holds, or `not` does not hold
        elif spec.kind == "learn":
            text = request.prompt
            (vector,) = await self.backend.embed([text])
            self.memory.add(text, vector)
            result = {"learned": text, "memories": len(self.memory)}
        elif properties.get("stream") is True:
            result = await self._stream(spec, request, completions)
        elif spec.kind == "chat":
            result = await self.backend.chat(request)
        else:
            result = await self.backend.complete(request)
        source["result"] = result
        return result, source

    async def _with_memories(self, request: ServiceRequest) -> ServiceRequest:
        """The request with the learnt texts most similar to it, if anything was learnt."""
        count = request.properties.get("recall", DEFAULT_RECALL)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"recall must be a whole number >= 0 (how many learnt texts to "
                             f"give the model), got {count!r}")
        if not count or not len(self.memory):
            return request
        query = request.text("evaluate") or request.prompt
        (vector,) = await self.backend.embed([query])
        return replace(request, memories=tuple(self.memory.recall(vector, count)))

    async def _stream(
        self, spec: ServiceSpec, request: ServiceRequest, completions: Sequence[Completion]
    ) -> str:
        """The whole text; each piece also goes to ``<target>.chunk`` as it arrives."""
        names = [f"{name}.chunk" for name, _ in self._targets(spec, completions)]
        pieces: list[str] = []
        async for piece in self.backend.stream(request):
            for name in names:
                await self.runtime.emit_async(
                    name, {"chunk": piece, "index": len(pieces), "service": spec.name})
            pieces.append(piece)
        return "".join(pieces)

    def _targets(
        self, spec: ServiceSpec, completions: Sequence[Completion]
    ) -> Sequence[Completion]:
        if completions:
            return completions
        return [(spec.completion, None)] if spec.completion else []

    def _emit_in_order(
        self, spec: ServiceSpec, source: dict[str, Any], completions: Sequence[Completion]
    ) -> None:
        for name, custom in self._targets(spec, completions):
            self.runtime.emit(name, _with(source, custom))

    def _fail(self, spec: ServiceSpec, properties: dict[str, Any], exc: Exception) -> None:
        if isinstance(exc, BackendError):
            message = str(exc)  # written for the user already: what failed and what to do
        else:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        logger.warning("%s failed: %s", spec.name, message)
        span = current_span()
        if span is not None and span.kind == "service":
            span.fail(Failure("error", message))
        if spec.error is not None:
            payload = {k: v for k, v in properties.items() if k != "handlers"}
            payload.update(error=message, service=spec.name)
            self.runtime.emit(spec.error, payload)


_CONDITION_FAILED = object()
DEFAULT_RECALL = 3  # learnt texts given to a call; a handful helps, many drown the prompt


def _with(payload: dict[str, Any], custom: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**payload, **custom} if custom else dict(payload)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _milliseconds(value: Any, key: str) -> float | None:
    """A ``timeout:`` in milliseconds as seconds (``None`` when the call sets none)."""
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{key} must be a positive number of milliseconds, got {value!r}")
    return float(value) / 1000


def _positive_int(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a whole number of at least 1, got {value!r}")
    return value

