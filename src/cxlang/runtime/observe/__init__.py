"""Observation: spans of what the runtime does, for trace files, tracing systems and displays.

:class:`Observer` is the seam the runtime reports to (``None`` by default: then it costs a
test or two per event and nothing else); sinks record its spans: :class:`ChromeTrace` (a file
for Perfetto), :mod:`.otel` (OpenTelemetry, an optional extra, imported only on request).
"""

import os
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from .chrome import ChromeTrace
from .observer import Observer
from .span import Propagator, Sink, Span, current_span

__all__ = ["ChromeTrace", "Observer", "Propagator", "Sink", "Span", "TraceSpec",
           "current_span", "make_observer", "otel_requested"]

_Target: TypeAlias = "str | os.PathLike[str] | Sink"
TraceSpec: TypeAlias = "Observer | _Target | Iterable[_Target] | None"


def make_observer(trace: TraceSpec) -> Observer | None:
    """The observer for ``Runtime(trace=...)``: a path is a Chrome trace file."""
    if trace is None or isinstance(trace, Observer):
        return trace
    single = isinstance(trace, str | os.PathLike) or hasattr(trace, "ended")
    targets: list[_Target] = [trace] if single else list(trace)  # type: ignore[list-item,arg-type]
    sinks = [ChromeTrace(t) if isinstance(t, str | os.PathLike) else t for t in targets]
    return Observer(sinks) if sinks else None


def otel_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard ``OTEL_*`` variables ask for traces to be exported."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
