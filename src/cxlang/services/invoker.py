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

Nothing fails silently: the control values are checked first (a wrong one raises
:class:`.controls.ControlValueError`, a mistake of the program's), and every failure, of the
service or of a parameter, goes to the call's ``on_failure`` with whether a handler is
subscribed to the service's error event, so the program can tell handled failures from
unhandled ones.

Around the model call: ``learn`` stores text in the run's :class:`Memory`; later calls get the
texts most similar to their prompt (``recall: N``, default 3, ``0`` for none); ``stream: true``
emits ``<completion event>.chunk`` events as the text arrives, before the completion event.

A call's ``retry:`` runs a failed parallel handler parameter again (:class:`cxlang.Retry`);
the model call itself is not retried here (the backends retry their requests themselves).

A call's ``timeout:`` (milliseconds) bounds its parallel handler parameters, each, and also
its own model call (recalling memories, and a stream with its chunk events, included; a
timer's wait is no model call): a model call cut by it fails like any other failure of the
service, with a message saying so. ``execute`` asks no model: it stops its command at that
timeout itself (:mod:`.execute`).

A call with ``schema:`` or ``tools:`` is a model that acts (:mod:`.tools`): several model
turns with tool calls between them. There the timeout bounds each model turn and each tool
call, not the whole conversation, and the call's events also carry ``toolCalls``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..runtime import Failure, Runtime, waiting
from ..runtime.observe import current_span
from ..runtime.outcomes import describe
from ..runtime.resolver import HandlerParameters
from .backend import Backend, BackendError, PieceSink, Reply, ServiceRequest, Turn
from .controls import ControlValueError, check_controls, retry_policy
from .execute import run_command
from .memory import Memory
from .registry import ACTING, SERVICES, ServiceSpec
from .timer import await_duration
from .tools import Acted, Acting

__all__ = ["Completion", "ServiceFailure", "ServiceInvoker"]

Completion = tuple[str, Mapping[str, Any] | None]
"""A completion event's name and its custom payload (``done { tag: "x" }``)."""


@dataclass(frozen=True, slots=True)
class ServiceFailure:
    """What failed in one call: the service itself (``message``), or some of its parallel
    handler parameters (``branches``, by name, in declaration order)."""

    service: str
    error_event: str | None  # the service's error event, which was emitted (None: it has none)
    error_handled: bool  # a handler is subscribed to that event
    completions: tuple[str, ...]  # the events the call's result went to
    message: str | None = None
    branches: Mapping[str, Failure] = field(default_factory=dict)


FailureReport = Callable[[ServiceFailure], None]
T = TypeVar("T")

logger = logging.getLogger("cxlang.services")


class ServiceInvoker:
    """Runs service calls against one backend on one runtime."""

    def __init__(
        self, runtime: Runtime, backend: Backend, *, max_concurrency: int | None = None,
        allow_execute: bool = False,
    ) -> None:
        self.runtime = runtime
        self.backend = backend
        self.max_concurrency = max_concurrency  # for calls that set no maxConcurrency
        self.allow_execute = allow_execute  # cx run --allow-execute: `execute` runs commands
        self.memory = Memory()

    async def call(
        self,
        service: str,
        properties: dict[str, Any],
        parameters: HandlerParameters,
        completions: Sequence[Completion],
        on_failure: FailureReport | None = None,
    ) -> Any:
        """Run one call; its value is the consolidated payload with parameters, else ``result``.

        A backend failure is not raised: it emits the service's error event and the value is
        ``None``, like any other failure the program can handle with an ``on`` handler. That
        failure, and those of parameters, also go to *on_failure*. A control value the call
        does not accept raises :class:`.controls.ControlValueError` before anything runs.
        """
        check_controls(properties)
        acting = self._acting(SERVICES[service], properties)
        observer = self.runtime.observer
        if observer is None:
            return await self._call(service, properties, parameters, completions, on_failure,
                                    acting)
        with observer.span("service", service):  # traced: a span around the whole call
            return await self._call(service, properties, parameters, completions, on_failure,
                                    acting)

    async def _call(
        self,
        service: str,
        properties: dict[str, Any],
        parameters: HandlerParameters,
        completions: Sequence[Completion],
        on_failure: FailureReport | None,
        acting: Acting | None,
    ) -> Any:
        spec = SERVICES[service]
        try:
            with self._waiting_for_model(spec):
                outcome = await self._ask(spec, properties, completions, acting)
        except MemoryError:
            raise  # no failure of the service's: the run is out of memory, and stops for it
        except Exception as exc:
            message = self._fail(spec, properties, exc)
            if on_failure is not None:
                on_failure(ServiceFailure(spec.name, spec.error, self._handled(spec),
                                          self._target_names(spec, completions), message))
            return None
        if outcome is _CONDITION_FAILED:
            return False
        result, source = outcome
        if not parameters:
            self._emit_in_order(spec, source, completions)
            return result
        timeout = properties.get("timeout")
        consolidated = await self.runtime.parallel(
            parameters, source,
            timeout=None if timeout is None else timeout / 1000,
            max_concurrency=properties.get("maxConcurrency") or self.max_concurrency,
            fail_fast=properties.get("failFast") is True,
            retry=retry_policy(properties.get("retry")),
        )
        if consolidated.has_partial_failures:
            failures = consolidated.failures
            if spec.error is not None:
                self.runtime.emit(spec.error, {
                    "failedHandlers": list(failures),
                    "errors": {name: f.to_payload() for name, f in failures.items()},
                })
            if on_failure is not None:
                on_failure(ServiceFailure(spec.name, spec.error, self._handled(spec),
                                          self._target_names(spec, completions),
                                          branches=failures))
        await self.runtime.deliver(
            (name, _with(consolidated.payload, custom))
            for name, custom in self._targets(spec, completions))
        return consolidated.payload

    def _acting(self, spec: ServiceSpec, properties: dict[str, Any]) -> Acting | None:
        """The call's ``schema:`` and ``tools:`` (:mod:`.tools`), checked before it runs: a
        wrong one raises :class:`ControlValueError`, as a wrong control value does."""
        acting = Acting.of(properties, self.max_concurrency)
        if acting is not None and spec.name not in ACTING:
            raise ControlValueError(f"{spec.name} takes no schema: or tools:; they are for "
                                    f"{', '.join(ACTING)}")
        return acting

    async def _ask(
        self, spec: ServiceSpec, properties: dict[str, Any], completions: Sequence[Completion],
        acting: Acting | None,
    ) -> Any:
        """:meth:`_ask_backend`, within the call's ``timeout:`` if it sets one: a model that
        does not answer (or a server that trickles) must not hold the call past it. A model
        that acts has each of its turns bounded instead (:meth:`_act`)."""
        timeout = properties.get("timeout")  # checked: a number > 0
        # execute applies its timeout itself
        if timeout is None or spec.kind in _NO_MODEL or acting is not None:
            return await self._ask_backend(spec, properties, completions, acting)
        return await self._within(timeout, self._ask_backend(spec, properties, completions,
                                                             acting))

    async def _within(self, timeout: float, asked: Awaitable[T]) -> T:
        """*asked*, unless the model takes longer than *timeout* milliseconds."""
        # In a task of its own, waited for with asyncio.wait: the caller may be a handler's
        # first step, which runs in no task, where asyncio.timeout cannot be used.
        asking = asyncio.ensure_future(asked)
        try:
            await asyncio.wait({asking}, timeout=timeout / 1000)
        finally:
            if not asking.done():  # the deadline passed, or the caller was cancelled
                asking.cancel()
                await asyncio.wait({asking})
        if asking.cancelled():
            raise BackendError(f"{self.backend.name} backend: the model did not answer within "
                               f"the call's timeout: of {timeout:.10g} ms; give the call a "
                               "longer timeout:")
        return asking.result()

    async def _ask_backend(
        self, spec: ServiceSpec, properties: dict[str, Any], completions: Sequence[Completion],
        acting: Acting | None,
    ) -> Any:
        """Ask the backend; the service's result and the source payload for its handlers."""
        request = ServiceRequest(spec.name, properties)
        if spec.kind in ("complete", "chat", "condition"):
            request = await self._with_memories(request)
        source = {k: v for k, v in properties.items() if k != "handlers"}
        if spec.kind == "timer":
            duration = await_duration(properties)
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(duration / 1000)
            source["requestedDurationMs"] = duration
            source["actualDurationMs"] = round(
                (asyncio.get_running_loop().time() - started) * 1000, 3)
            result: Any = duration
        elif spec.kind == "execute":
            result = await run_command(properties, allowed=self.allow_execute)
            source.update(result)  # upstream's handlers read event.output, event.success
        elif spec.kind == "condition":
            holds = await self.backend.classify(request)
            if holds == (spec.name == "not"):
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
        elif acting is not None:
            acted = await self._act(spec, request, completions, acting)
            result = acted.result
            if acted.tool_calls is not None:
                source["toolCalls"] = acted.tool_calls
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
        count = request.properties.get("recall")
        if count is None:
            count = DEFAULT_RECALL
        if not count or not len(self.memory):
            return request
        query = request.text("evaluate") or request.prompt
        (vector,) = await self.backend.embed([query])
        return replace(request, memories=tuple(self.memory.recall(vector, count)))

    # The Python face (cxlang.Services): values and exceptions where a program gets events.

    async def answer(self, service: str, properties: dict[str, Any]) -> Any:
        """The model call alone: the service's result (for ``is``/``not``, whether their
        handlers would fire). What fails is raised, and no event is emitted: a Python caller
        takes the value, or the exception, from the ``await``."""
        check_controls(properties)
        spec = SERVICES[service]
        acting = self._acting(spec, properties)
        observer = self.runtime.observer
        with nullcontext() if observer is None else observer.span("service", service), \
                self._waiting_for_model(spec):
            outcome = await self._ask(spec, properties, (), acting)
        return False if outcome is _CONDITION_FAILED else outcome[0]

    async def stream_answer(self, service: str, properties: dict[str, Any]) -> AsyncIterator[str]:
        """The text of a ``think``-like or ``chat`` call in pieces as the model produces them,
        given the learnt texts like any call; raises what fails and emits nothing, as
        :meth:`answer`."""
        check_controls(properties)
        request = await self._with_memories(ServiceRequest(service, properties))
        async for piece in self.backend.stream(request):
            yield piece

    async def _stream(
        self, spec: ServiceSpec, request: ServiceRequest, completions: Sequence[Completion]
    ) -> str:
        """The whole text; each piece also goes to ``<target>.chunk`` as it arrives."""
        pieces: list[str] = []
        chunk = self._chunks(spec, completions)
        async for piece in self.backend.stream(request):
            await chunk(piece)
            pieces.append(piece)
        return "".join(pieces)

    def _chunks(self, spec: ServiceSpec, completions: Sequence[Completion]) -> PieceSink:
        """Where a streamed call's pieces go: ``<target>.chunk`` events, numbered across the
        whole call (every turn of a model that acts)."""
        names = [f"{name}.chunk" for name, _ in self._targets(spec, completions)]
        count = 0

        async def chunk(piece: str) -> None:
            nonlocal count
            for name in names:
                await self.runtime.emit_async(
                    name, {"chunk": piece, "index": count, "service": spec.name})
            count += 1

        return chunk

    async def _act(
        self, spec: ServiceSpec, request: ServiceRequest, completions: Sequence[Completion],
        acting: Acting,
    ) -> Acted:
        """The turns of a model that acts (:mod:`.tools`): each turn within the call's
        ``timeout:`` and, traced, a span of its own."""
        timeout = request.properties.get("timeout")
        pieces = self._chunks(spec, completions) if request.properties.get("stream") is True \
            else None
        turns = 0

        async def turn(given: Turn) -> Reply:
            nonlocal turns
            turns += 1
            asked = self.backend.act(request, given, pieces)
            observer = self.runtime.observer
            with nullcontext() if observer is None else \
                    observer.span("service", f"{spec.name} turn {turns}"):
                return await (asked if timeout is None else self._within(timeout, asked))

        return await acting.run(self.runtime, turn)

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

    def _waiting_for_model(self, spec: ServiceSpec) -> AbstractContextManager[None]:
        """A handler calling a model waits for it, and its timeout counts that wait: the
        timeout's message says so (see :func:`cxlang.runtime.waiting`)."""
        if spec.kind in _NO_MODEL:
            return nullcontext()
        return waiting(f"the {self.backend.name} backend's model")

    def _target_names(self, spec: ServiceSpec,
                      completions: Sequence[Completion]) -> tuple[str, ...]:
        return tuple(name for name, _ in self._targets(spec, completions))

    def _handled(self, spec: ServiceSpec) -> bool:
        """Is a handler subscribed to *spec*'s error event (here, or on the shared bus)?"""
        return spec.error is not None and bool(self.runtime.bus.handlers_for(spec.error))

    def _fail(self, spec: ServiceSpec, properties: dict[str, Any], exc: Exception) -> str:
        """Emit the service's error event for *exc*; the message said to the program."""
        if isinstance(exc, BackendError):
            message = str(exc)  # written for the user already: what failed and what to do
        else:
            # No backend error: a fault of cxlang's own. Said as such, without Python's names
            # (the log at debug level has the traceback).
            logger.debug("%s failed inside cxlang", spec.name, exc_info=exc)
            detail = describe(exc) or "no message"
            message = (f"the {spec.name} service failed inside cxlang ({detail}); this is a bug "
                       "of cxlang's, please report it")
        # Whether this is news is the program's to say (on_failure): handled, it stays quiet.
        logger.info("%s failed: %s", spec.name, message)
        span = current_span()
        if span is not None and span.kind == "service":
            span.fail(Failure("error", message))
        if spec.error is not None:
            payload = {k: v for k, v in properties.items() if k != "handlers"}
            payload.update(error=message, service=spec.name)
            self.runtime.emit(spec.error, payload)
        return message


_CONDITION_FAILED = object()
_NO_MODEL = ("timer", "execute")  # kinds whose call asks no model
DEFAULT_RECALL = 3  # learnt texts given to a call; a handful helps, many drown the prompt


def _with(payload: dict[str, Any], custom: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**payload, **custom} if custom else dict(payload)


