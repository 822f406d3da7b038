"""Spans, and the two seams behind the observer: sinks that record them, a propagator that
carries them across threads, processes and machines.

A :class:`Span` is one timed piece of a run: the run itself, an event's dispatch, a handler, a
parallel call, one of its branches, a service call. Times are ``time.monotonic()`` seconds, the
clock the coordinator already reads for branch timings, so the two agree.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Literal, Protocol, runtime_checkable

from ..outcomes import Failure

__all__ = ["Propagator", "Sink", "Span", "SpanKind", "current_span"]

SpanKind = Literal["run", "dispatch", "handler", "call", "branch", "service"]


class Span:
    """What happened, when, under what; sinks read it, the propagator may keep its own object
    for it in :attr:`native`.

    - ``parent``: the span this one runs under (``None`` for a root, or a remote parent given
      in ``remote`` as trace headers).
    - ``cause`` / ``caused_at``: the span that started this one from elsewhere (the emit of a
      handler's event, the call of a branch) and when: a causal link, drawn as an arrow.
    """

    __slots__ = ("attrs", "cause", "caused_at", "end", "failure", "id", "kind", "name",
                 "native", "parent", "propagator", "remote", "start")

    def __init__(
        self,
        id: int,
        kind: SpanKind,
        name: str,
        parent: Span | None,
        start: float,
        attrs: dict[str, Any],
    ) -> None:
        self.id = id
        self.kind = kind
        self.name = name
        self.parent = parent
        self.start = start
        self.end = start
        self.attrs = attrs
        self.failure: Failure | None = None
        self.cause: Span | None = None
        self.caused_at = 0.0
        self.remote: dict[str, str] | None = None
        self.native: Any = None
        self.propagator: Propagator | None = None

    def fail(self, failure: Failure) -> None:
        """Mark the span failed (the first failure stays)."""
        if self.failure is None:
            self.failure = failure

    def carrier(self) -> AbstractContextManager[object] | None:
        """A picklable context manager that makes this span the parent of whatever runs in it,
        in another process (``None`` when nothing propagates traces)."""
        return None if self.propagator is None else self.propagator.carrier(self)

    def headers(self) -> dict[str, str]:
        """This span as trace headers for a message to another process (W3C ``traceparent``)."""
        return {} if self.propagator is None else self.propagator.headers(self)

    def __repr__(self) -> str:
        return f"<Span {self.id} {self.kind} {self.name!r}>"


class Sink(Protocol):
    """Records spans: a trace file, a tracing system, a progress display."""

    def started(self, span: Span) -> None:
        """*span* began (its ``end`` and ``failure`` are not known yet)."""

    def ended(self, span: Span) -> None:
        """*span* finished; its ``end`` and ``failure`` are final."""

    def close(self) -> None:
        """The runtime closes: write out, flush."""


@runtime_checkable
class Propagator(Protocol):
    """A sink whose spans must follow the code: made current where a handler starts, so that
    threads (contextvars), processes (:meth:`carrier`) and NATS (:meth:`headers`) see them."""

    def enter(self, span: Span) -> object:
        """Make *span* current in this context; returns a token for :meth:`leave`."""

    def leave(self, token: object) -> None:
        """Undo :meth:`enter`."""

    def carrier(self, span: Span) -> AbstractContextManager[object]:
        """See :meth:`Span.carrier`."""

    def headers(self, span: Span) -> dict[str, str]:
        """See :meth:`Span.headers`."""


_current: ContextVar[Span | None] = ContextVar("cxlang_span", default=None)


def current_span() -> Span | None:
    """The span the running code is in (``None`` when nothing observes the runtime)."""
    return _current.get()
