"""What ``cx run`` records and shows about a run: the trace file (``--trace``), OpenTelemetry
(the standard ``OTEL_*`` variables, ``cxlang[otel]``) and the live status line (a terminal,
unless ``--quiet``). With none of them the runtime gets no observer and pays nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..runtime import Runtime
from ..runtime.observe import ChromeTrace, Sink, Span, otel_requested

if TYPE_CHECKING:
    from ..observe.progress import ProgressDisplay

__all__ = ["ObservationError", "RunObservation"]


class ObservationError(Exception):
    """The run cannot be observed as asked (a missing extra, an unknown exporter)."""


class RunObservation:
    """The sinks of one run, its root span and its status line."""

    def __init__(self, name: str, out: TextIO, *, trace: str | None, progress: bool) -> None:
        self.name = name
        self.sinks: list[Sink] = []
        self.out = out  # where the program prints: above the status line when it shows
        self.progress: ProgressDisplay | None = None
        self._run: AbstractContextManager[Span] | None = None
        if trace is not None:
            try:  # find out now, not after the run, that the file cannot be written
                Path(trace).write_text("", encoding="utf-8")
            except OSError as exc:
                raise ObservationError(f"cannot write the trace to {trace}: "
                                       f"{exc.strerror or exc}; choose another path") from None
            self.sinks.append(ChromeTrace(trace, title=f"cx run {name}"))
        if otel_requested():
            self.sinks.append(_opentelemetry())
        if progress:
            try:
                from ..observe.progress import ProgressDisplay  # noqa: PLC0415 - rich, on a tty
            except ImportError:
                pass  # no rich: no status line, the run itself is unaffected
            else:
                self.progress = ProgressDisplay(out)
                self.out = self.progress.out
                self.sinks.append(self.progress)

    def start(self, runtime: Runtime) -> None:
        """Open the run's root span (current from here on) and arm the status line."""
        if runtime.observer is not None:
            self._run = runtime.observer.span("run", self.name)
            self._run.__enter__()
        if self.progress is not None:
            self.progress.start()

    def stop(self) -> None:
        """Close the root span and the status line (before the runtime writes its sinks)."""
        if self.progress is not None:
            self.progress.stop()
        if self._run is not None:
            self._run.__exit__(None, None, None)
            self._run = None


def _opentelemetry() -> Sink:
    try:
        from ..runtime.observe.otel import from_environment  # noqa: PLC0415 - the extra
    except ImportError as exc:
        raise ObservationError(
            "OTEL_* variables ask for OpenTelemetry traces, but OpenTelemetry is not "
            f"installed ({exc.name} is missing): pip install 'cxlang[otel]', or unset "
            "OTEL_TRACES_EXPORTER") from None
    try:
        return from_environment()
    except ValueError as exc:
        raise ObservationError(str(exc)) from None
