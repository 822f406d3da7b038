"""Observer: the runtime's one observation seam.

The bus, the coordinator and the service invoker hold ``observer: Observer | None``; when it is
``None`` (the default) they pay one ``is None`` test at each of a handful of points and nothing
else. When set, they report the moments that matter and the observer turns them into a tree of
:class:`~.span.Span` objects for its sinks:

    run > service > call > branch > handler > service > ...
    handler --emit--> dispatch > handler

Parents come from the code's own context: the span running now is in a context variable, set
where a handler starts (so the copy a task, a thread or a process gets carries it) and around
service calls.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..handlers import Finished, Running, start_handler
from ..outcomes import BranchOutcome, Failure
from .span import Propagator, Sink, Span, SpanKind, _current

if TYPE_CHECKING:
    from ..context import ExecutionContext
    from ..events import Event
    from ..handlers import Subscription
    from ..pool import HandlerPool

__all__ = ["Observer"]

_now = time.monotonic


class _Dispatch:
    """An event's dispatch span, open until the last of its handlers finishes."""

    __slots__ = ("left", "span")

    def __init__(self, span: Span, handlers: int) -> None:
        self.span = span
        self.left = handlers


class _Call:
    """The spans of one parallel call; a branch's span starts with its first handler."""

    __slots__ = ("branches", "open", "span")

    def __init__(self, span: Span, names: Sequence[str]) -> None:
        self.span = span
        self.branches: dict[str, Span | None] = dict.fromkeys(names)
        self.open = len(names)


class Observer:
    """Turns the runtime's moments into spans for *sinks* (see the module docstring)."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = tuple(sinks)
        propagators = [s for s in self.sinks if isinstance(s, Propagator)]
        if len(propagators) > 1:
            raise ValueError("at most one sink may propagate traces (OpenTelemetry)")
        self.propagator: Propagator | None = propagators[0] if propagators else None
        self._ids = itertools.count(1)
        self._emits: dict[Event, tuple[Span | None, float]] = {}
        self._dispatches: dict[Event, _Dispatch] = {}
        self._calls: dict[str, _Call] = {}

    # Spans -----------------------------------------------------------------------------------

    def _open(self, kind: SpanKind, name: str, parent: Span | None, attrs: dict[str, Any],
              *, at: float | None = None) -> Span:
        span = Span(next(self._ids), kind, name, parent, _now() if at is None else at, attrs)
        span.propagator = self.propagator
        return span

    def _begin(self, span: Span) -> Span:
        for sink in self.sinks:
            sink.started(span)
        return span

    def _finish(self, span: Span, failure: Failure | None = None, *,
                at: float | None = None) -> None:
        span.end = _now() if at is None else at
        if failure is not None:
            span.fail(failure)
        for sink in self.sinks:
            sink.ended(span)

    @contextmanager
    def span(self, kind: SpanKind, name: str, **attrs: Any) -> Iterator[Span]:
        """A span around a block (a run, a service call), current inside it."""
        span = self._begin(self._open(kind, name, _current.get(), attrs))
        token = _current.set(span)
        entered = None if self.propagator is None else self.propagator.enter(span)
        try:
            yield span
        except asyncio.CancelledError:
            span.fail(Failure("cancelled", f"{kind} {name} was cancelled"))
            raise
        except BaseException as exc:
            span.fail(Failure.from_exception(exc))
            raise
        finally:
            if self.propagator is not None:
                self.propagator.leave(entered)
            _current.reset(token)
            self._finish(span)

    # Moments the bus reports -----------------------------------------------------------------

    def emitted(self, event: Event) -> None:
        """*event* was made: remember who emitted it and when, for the causal link."""
        self._emits[event] = (_current.get(), _now())

    def dispatching(self, event: Event, handlers: int) -> None:
        """The bus takes *event* off its queue and starts its *handlers* handlers now."""
        emitter, at = self._emits.pop(event, (None, 0.0))
        span = self._open("dispatch", event.name, emitter,
                          {"event_id": event.id, "depth": event.depth})
        span.cause, span.caused_at = emitter, at
        self._begin(span)
        if handlers:
            self._dispatches[event] = _Dispatch(span, handlers)
        else:
            self._finish(span)

    def start_handler(
        self,
        sub: Subscription,
        event: Event,
        context: ExecutionContext,
        pool: HandlerPool,
        finished: Finished,
        loop: asyncio.AbstractEventLoop,
        remote: Mapping[str, str] | None = None,
    ) -> Running | None:
        """:func:`~cxlang.runtime.handlers.start_handler` inside a handler span.

        *remote*: trace headers of a call from another process, the span's parent there.
        """
        dispatch: Span | None = None
        call = None if context.execution_id is None else self._calls.get(context.execution_id)
        if call is not None:
            parent: Span | None = self._branch_span(call, context.parameter or "")
        else:
            open_dispatch = self._dispatches.get(event)
            parent = dispatch = None if open_dispatch is None else open_dispatch.span
        span = self._open("handler", sub.name, parent,
                          {"event": event.name, "runs": sub.kind.value})
        if sub.entity is not None:
            span.attrs["entity"] = sub.entity
        if context.attempt > 1:  # each attempt is a span of its own; this says which
            span.attrs["attempt"] = context.attempt
        if dispatch is not None:  # the arrow goes from the emit to each handler it started
            span.cause, span.caused_at = dispatch.cause, dispatch.caused_at
        if remote:
            span.remote = dict(remote)
        self._begin(span)
        token = _current.set(span)
        entered = None if self.propagator is None else self.propagator.enter(span)
        end = _SpanEnd(self, span, event, finished)
        try:
            running = start_handler(sub, event, context, pool, end, loop)
            if isinstance(running, asyncio.Future):
                # A task cancelled before its first step never reports from inside: its
                # span ends with the task.
                running.add_done_callback(end.on_done)
            return running
        except BaseException as exc:
            end.close_span(exc)  # it failed at once: the caller reports it
            raise
        finally:
            if self.propagator is not None:
                self.propagator.leave(entered)
            _current.reset(token)

    def _handler_done(self, span: Span, event: Event, failure: Failure | None) -> None:
        self._finish(span, failure)
        dispatch = self._dispatches.get(event)
        if dispatch is not None and span.parent is dispatch.span:
            dispatch.left -= 1
            if not dispatch.left:
                del self._dispatches[event]
                self._finish(dispatch.span)

    # Moments the coordinator reports ---------------------------------------------------------

    def call_started(
        self, execution_id: str, branches: Sequence[tuple[str, Event, int]], *, delivery: bool
    ) -> None:
        """A parallel call starts its *branches* (name, event, handlers). A *delivery* (events
        emitted in parallel, waited for) is shown as dispatches, not as a call."""
        if delivery:
            for _, event, handlers in branches:
                self.dispatching(event, handlers)
            return
        for _, event, _ in branches:
            self._emits.pop(event, None)
        names = [name for name, _, _ in branches]
        span = self._begin(self._open("call", ", ".join(names), _current.get(),
                                      {"execution_id": execution_id, "parameters": names}))
        self._calls[execution_id] = _Call(span, names)

    def _branch_span(self, call: _Call, name: str, *, at: float | None = None) -> Span:
        span = call.branches.get(name)
        if span is None:
            span = self._open("branch", name, call.span,
                              {"call": call.span.id, "parameter": name}, at=at)
            span.cause, span.caused_at = call.span, call.span.start
            call.branches[name] = self._begin(span)
        return span

    def branch_finished(self, execution_id: str, outcome: BranchOutcome) -> None:
        call = self._calls.get(execution_id)
        if call is None:
            return  # a delivery: its dispatches end with their handlers
        span = self._branch_span(call, outcome.name, at=outcome.started)
        self._finish(span, outcome.failure)
        call.open -= 1
        if not call.open:
            del self._calls[execution_id]
            self._finish(call.span)

    # Lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """The runtime closed: sinks write out and flush."""
        for sink in self.sinks:
            sink.close()


def _failure_of(exc: BaseException) -> Failure:
    failure = getattr(exc, "failure", None)  # a BranchFailed from another process
    return failure if isinstance(failure, Failure) else Failure.from_exception(exc)


class _SpanEnd:
    """Closes a handler's span when the handler ends, then tells the one who started it."""

    __slots__ = ("ended", "event", "finished", "observer", "span")

    def __init__(self, observer: Observer, span: Span, event: Event, finished: Finished) -> None:
        self.observer = observer
        self.span = span
        self.event = event
        self.finished = finished
        self.ended = False

    def __call__(self, value: Any, error: BaseException | None) -> None:
        self.close_span(error)
        self.finished(value, error)

    def on_done(self, future: asyncio.Future[Any]) -> None:
        if not self.ended:
            self.close_span(asyncio.CancelledError() if future.cancelled() else
                            future.exception())

    def close_span(self, error: BaseException | None) -> None:
        if not self.ended:  # after a cancel a second report can come; the first one counts
            self.ended = True
            self.observer._handler_done(self.span, self.event, _ending(self.span, error))


def _ending(span: Span, error: BaseException | None) -> Failure | None:
    if error is None:
        return None
    if isinstance(error, asyncio.CancelledError):
        return Failure("cancelled", f"{span.name} was cancelled")
    return _failure_of(error)
