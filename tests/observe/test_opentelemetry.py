"""OpenTelemetry: the same spans, with the right parents, also from a thread and a process."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import cxlang
from cxlang.runtime.observe import otel_requested
from cxlang.runtime.observe.otel import OpenTelemetry

from .process_handlers import span_seen_here


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def _parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_spans_arrive_with_the_right_parents_from_a_thread_and_a_process(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    tracer = provider.get_tracer("test")
    threads: list[str] = []

    def in_a_thread(event: cxlang.Event) -> str:
        threads.append(threading.current_thread().name)
        with tracer.start_as_current_span("work in the thread"):
            return "done"

    async with cxlang.Runtime(trace=OpenTelemetry(provider), max_processes=1) as rt:
        rt.on("thread.x", in_a_thread)
        rt.on("process.x", span_seen_here, cpu_bound=True)
        with tracer.start_as_current_span("caller"):
            result = await rt.parallel({"t": "thread.x", "p": "process.x"}, {"n": 1})
    assert not result.failures
    assert threads and threads[0] != threading.main_thread().name

    spans = tuple(memory.get_finished_spans())
    caller = _by_name(spans, "caller")
    call = _by_name(spans, "call t, p")
    assert _parent_of(call) == caller.context.span_id  # the library user's own span
    for name, event in (("t", "thread.x"), ("p", "process.x")):
        branch = _by_name(spans, f"branch {name}")
        assert _parent_of(branch) == call.context.span_id
        (handler,) = [s for s in spans if s.name.startswith("handler ")
                      and s.attributes is not None and s.attributes["cx.event"] == event]
        assert _parent_of(handler) == branch.context.span_id
        assert handler.context.trace_id == caller.context.trace_id
    thread_handler = [s for s in spans if _parent_of(_by_name(spans, "work in the thread"))
                      == s.context.span_id]
    assert thread_handler and thread_handler[0].name.startswith("handler ")
    # In the worker process the handler's span was current: its context travelled along.
    seen = result.payload["p"]
    process_handler = [s for s in spans if s.context.span_id == seen["span_id"]]
    assert process_handler and process_handler[0].name.startswith("handler ")
    assert seen["trace_id"] == caller.context.trace_id


async def test_failures_become_error_statuses(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter

    def fails(event: cxlang.Event) -> None:
        raise ValueError("boom")

    async with cxlang.Runtime(trace=OpenTelemetry(provider)) as rt:
        rt.on("fails.x", fails, inline=True)
        await rt.parallel({"f": "fails.x"})
    branch = _by_name(tuple(memory.get_finished_spans()), "branch f")
    assert branch.status.status_code is trace.StatusCode.ERROR
    assert branch.attributes is not None and branch.attributes["cx.failure"] == "error"


async def test_an_emit_becomes_a_child_of_the_emitting_handler(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, memory = exporter
    async with cxlang.Runtime(trace=OpenTelemetry(provider)) as rt:
        rt.on("first", lambda event: rt.emit("second"), inline=True)
        rt.on("second", lambda event: None, inline=True)
        rt.emit("first")
        await rt.run_until_idle()
    spans = tuple(memory.get_finished_spans())
    first = [s for s in spans if s.attributes and s.attributes.get("cx.event") == "first"]
    second = _by_name(spans, "dispatch second")
    assert _parent_of(second) == first[0].context.span_id


def test_the_standard_variables_turn_it_on() -> None:
    assert not otel_requested({})
    assert otel_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not otel_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert otel_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not otel_requested({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})
