"""A handler for the process-pool tracing test: module-level, so worker processes import it."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

import cxlang


def span_seen_here(event: cxlang.Event) -> dict[str, Any]:
    """The OpenTelemetry span current in the worker process: the handler's, if it travelled."""
    context = trace.get_current_span().get_span_context()
    return {"trace_id": context.trace_id, "span_id": context.span_id}
