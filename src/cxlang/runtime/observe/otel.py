"""OpenTelemetry: the runtime's spans as OpenTelemetry spans, and their context carried along.

Imported only when OpenTelemetry is asked for (``cxlang[otel]``). The spans keep the observer's
tree; a span with no parent here takes the caller's current OpenTelemetry span, so a library
user's own span around ``rt.parallel(...)`` becomes the call's parent. A handler's span is the
current OpenTelemetry span wherever the handler runs: on the loop and in a thread (contextvars
are copied there), in a worker process (:class:`TraceContext` travels with the job) and in
another process on NATS (the ``traceparent`` header of the call).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..._version import __version__
from .span import Span

__all__ = ["OpenTelemetry", "TraceContext", "from_environment"]

_W3C = TraceContextTextMapPropagator()


class OpenTelemetry:
    """A sink and propagator that sends every span to an OpenTelemetry tracer provider (the
    global one unless *tracer_provider* is given)."""

    def __init__(self, tracer_provider: Any = None, *, owned: bool = False) -> None:
        self.tracer = trace.get_tracer("cxlang", __version__, tracer_provider=tracer_provider)
        self.provider = tracer_provider
        self._owned = owned  # made by from_environment(): shut it down (flush) on close
        # Span times are monotonic; OpenTelemetry wants epoch nanoseconds.
        self._offset = time.time_ns() - time.monotonic_ns()

    def _ns(self, t: float) -> int:
        return int(t * 1e9) + self._offset

    def started(self, span: Span) -> None:
        parent = span.parent
        if parent is not None and parent.native is not None:
            ctx: Any = trace.set_span_in_context(parent.native)
        elif span.remote is not None:
            ctx = _W3C.extract(span.remote)
        else:
            ctx = None  # the current context: the caller's own span, if any
        cause = span.cause
        links = [Link(cause.native.get_span_context(), {"cx.link": "emit"})] \
            if cause is not None and cause is not parent and cause.native is not None else None
        attributes = {"cx.kind": span.kind, "cx.span_id": span.id}
        attributes.update({f"cx.{k}": _attribute(v) for k, v in span.attrs.items()})
        span.native = self.tracer.start_span(
            f"{span.kind} {span.name}", context=ctx, attributes=attributes, links=links,
            start_time=self._ns(span.start))

    def ended(self, span: Span) -> None:
        native = span.native
        if native is None:
            return
        if span.failure is not None:
            native.set_attribute("cx.failure", span.failure.kind)
            native.set_status(Status(StatusCode.ERROR, span.failure.message))
        native.end(end_time=self._ns(span.end))

    def close(self) -> None:
        if self._owned and self.provider is not None:
            self.provider.shutdown()  # flushes the batch processors

    # Propagation -----------------------------------------------------------------------------

    def enter(self, span: Span) -> object:
        return otel_context.attach(trace.set_span_in_context(span.native))

    def leave(self, token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def headers(self, span: Span) -> dict[str, str]:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span.native))
        return carrier

    def carrier(self, span: Span) -> TraceContext:
        return TraceContext(self.headers(span))


class TraceContext:
    """A span's W3C trace context, picklable: ``with`` it, code in another process runs under
    that span."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)
        self._token: object = None

    def __getstate__(self) -> dict[str, str]:
        return self.headers

    def __setstate__(self, state: dict[str, str]) -> None:
        self.headers = state
        self._token = None

    def __enter__(self) -> TraceContext:
        self._token = otel_context.attach(_W3C.extract(self.headers))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]


def from_environment(environ: Mapping[str, str] | None = None) -> OpenTelemetry:
    """The sink the standard ``OTEL_*`` variables ask for.

    A tracer provider already installed (``opentelemetry-instrument cx run ...``) is used as it
    is; otherwise one is made with the resource of ``OTEL_SERVICE_NAME`` /
    ``OTEL_RESOURCE_ATTRIBUTES`` and a batch processor per exporter named in
    ``OTEL_TRACES_EXPORTER`` (default ``otlp``; exporters are found by their entry points).
    """
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - the SDK only here
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    env = os.environ if environ is None else environ
    installed = trace.get_tracer_provider()
    if isinstance(installed, TracerProvider):
        return OpenTelemetry(installed)
    provider = TracerProvider(resource=Resource.create())
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            known = sorted(e.name for e in entry_points(group="opentelemetry_traces_exporter"))
            hint = " (pip install opentelemetry-exporter-otlp)" if name == "otlp" else ""
            raise ValueError(f"OTEL_TRACES_EXPORTER names {name!r}, which is not installed"
                             f"{hint}; installed: {', '.join(known) or 'none'}")
        exporter = next(iter(found)).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return OpenTelemetry(provider, owned=True)


def _attribute(value: Any) -> Any:
    """OpenTelemetry attributes are scalars or lists of them."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return str(value)
