"""A parallel call's trace crosses NATS: the serving process's handler span is a child of the
caller's remote unit (the W3C traceparent header of the call)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import cxlang
from cxlang.runtime.observe.otel import OpenTelemetry

from .nats_server import NatsServer


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


async def test_a_remote_handler_span_continues_the_callers_trace(
    nats_server: NatsServer,
) -> None:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    caller = cxlang.Runtime(bus=nats_server.url, trace=OpenTelemetry(provider))
    server = cxlang.Runtime(bus=nats_server.url, group="servers", trace=OpenTelemetry(provider))
    server.on("far.away", lambda event: "here", inline=True)
    try:
        await server.connect()
        await caller.connect()
        await until(lambda: bool(caller.bus.transport
                                 and caller.bus.transport.remote_handlers("far.away")))
        result = await caller.parallel({"far": "far.away"})
        assert result.payload["far"] == "here"
    finally:
        await caller.aclose()
        await server.aclose()
        provider.shutdown()
    spans = memory.get_finished_spans()
    (branch,) = [s for s in spans if s.name == "branch far"]
    handlers = [s for s in spans if s.name.startswith("handler ")]
    unit = next(s for s in handlers if s.parent and s.parent.span_id == branch.context.span_id)
    served = next(s for s in handlers if s.parent and s.parent.span_id == unit.context.span_id)
    assert served.context.trace_id == branch.context.trace_id
    assert served.attributes is not None and served.attributes["cx.event"] == "far.away"
