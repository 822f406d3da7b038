"""Runtime: the event bus, the coordinator and the pool behind one small object.

This is what ``import cxlang`` users hold. Every method is a thin door into one part; the parts
stay usable on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .bus import EventBus
from .coordinator import BranchStream, ParallelHandlerCoordinator
from .events import Event, check_event_name
from .handlers import Handler, Subscription
from .observe import TraceSpec, make_observer
from .outcomes import ParallelExecutionResult
from .pool import HandlerPool
from .resolver import HandlerParameterResolver, ParameterSpec
from .retry import Retry

if TYPE_CHECKING:
    from .distributed.credentials import FileCredentials
    from .distributed.transport import NatsTransport

__all__ = ["Runtime"]

H = TypeVar("H", bound=Handler)


class Runtime:
    """An event bus with parallel handler parameters.

    - ``max_queue``: events that may wait for dispatch before ``emit`` pushes back.
    - ``max_concurrency``: handlers that may run at once across all parallel calls (``None``:
      no bound).
    - ``default_timeout``: per-handler timeout of parallel calls, in seconds.
    - ``max_threads`` / ``max_processes``: sizes of the pools for plain and ``cpu_bound``
      handlers.
    - ``bus``: ``"nats://host:port"`` puts the bus on a NATS server, shared with other
      processes (``cxlang[nats]``; connect with ``await rt.connect()`` or ``async with``).
      ``group`` makes this runtime one of a group that shares events and calls, as workers do;
      ``durable`` stores events in JetStream until handled, ``ack_wait`` seconds at most each
      before they are handed out again; ``bus_credentials`` (a ``FileCredentials``) adds what
      a configuration file says identifies the process (see
      :mod:`cxlang.runtime.distributed.credentials`). See :mod:`cxlang.runtime.distributed`.
    - ``max_events`` / ``max_depth``: run limits (``None``: none). Past ``max_events`` events
      dispatched, or an emit ``max_depth`` causal hops from the first event, the bus stops and
      ``run_until_idle`` (and every later emit) raises :class:`LimitExceeded`. See
      :mod:`cxlang.runtime.limits`.
    - ``trace``: record spans of what runs: a path (a Chrome trace file for Perfetto, written
      by ``aclose()``), a sink such as ``cxlang.runtime.observe.otel.OpenTelemetry()``, or a
      list of them. See :mod:`cxlang.runtime.observe`.
    """

    def __init__(
        self,
        *,
        max_queue: int = 100_000,
        max_concurrency: int | None = None,
        default_timeout: float = 30.0,
        max_threads: int | None = None,
        max_processes: int | None = None,
        bus: str | None = None,
        group: str | None = None,
        durable: bool = False,
        ack_wait: float = 30.0,
        bus_credentials: FileCredentials | None = None,
        max_events: int | None = None,
        max_depth: int | None = None,
        trace: TraceSpec = None,
    ) -> None:
        self.pool = HandlerPool(
            max_concurrency, max_threads=max_threads, max_processes=max_processes
        )
        self.bus = EventBus(self.pool, max_queue=max_queue, max_events=max_events,
                            max_depth=max_depth)
        self.coordinator = ParallelHandlerCoordinator(self.bus, default_timeout=default_timeout)
        self.resolver = HandlerParameterResolver()
        self.observer = self.bus.observer = make_observer(trace)
        self.transport: NatsTransport | None = None
        if bus is not None:
            from .distributed import attach  # noqa: PLC0415 - only a distributed bus pays

            self.transport = attach(bus, self.bus, self.coordinator, group=group,
                                    durable=durable, handler_timeout=default_timeout,
                                    ack_wait=ack_wait, credentials=bus_credentials)
        elif group is not None or durable:
            raise ValueError("group= and durable= need a distributed bus: pass bus='nats://...'")

    # Handlers --------------------------------------------------------------------------------

    @overload
    def on(
        self, pattern: str, *, entity: str | None = ..., cpu_bound: bool = ..., inline: bool = ...,
        retry: Retry | None = ...,
    ) -> Callable[[H], H]: ...

    @overload
    def on(
        self,
        pattern: str,
        handler: Handler,
        *,
        entity: str | None = ...,
        cpu_bound: bool = ...,
        inline: bool = ...,
        retry: Retry | None = ...,
    ) -> Subscription: ...

    def on(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        entity: str | None = None,
        cpu_bound: bool = False,
        inline: bool = False,
        retry: Retry | None = None,
    ) -> Callable[[H], H] | Subscription:
        """Subscribe a handler to *pattern* (``a.b``; ``any`` matches one segment).

        As a decorator it returns the function unchanged; called with a handler it returns the
        :class:`Subscription`. ``async def`` handlers run on the loop (eagerly), plain functions
        in a thread unless ``inline=True``, ``cpu_bound=True`` functions in a worker process.
        ``retry``: the handler's own :class:`Retry` when it runs as a branch of a parallel call
        (it wins over the call's ``retry=``); events emitted or published run it once.
        """
        if handler is not None:
            return self.bus.subscribe(
                pattern, handler, entity=entity, cpu_bound=cpu_bound, inline=inline, retry=retry
            )

        def decorate(fn: H) -> H:
            self.bus.subscribe(pattern, fn, entity=entity, cpu_bound=cpu_bound, inline=inline,
                               retry=retry)
            return fn

        return decorate

    def off(self, handler: Handler | Subscription) -> int:
        """Unsubscribe a :class:`Subscription`, or every subscription of a function."""
        return self.bus.unsubscribe(handler)

    # Events ----------------------------------------------------------------------------------

    def emit(self, name: str, payload: dict[str, Any] | None = None) -> Event:
        """Queue *name* for dispatch and return at once (raises ``QueueFull`` at the bound)."""
        return self.bus.emit(name, payload)

    async def emit_async(self, name: str, payload: dict[str, Any] | None = None) -> Event:
        """Queue *name*, waiting for room if the queue is at its bound."""
        return await self.bus.emit_async(name, payload)

    async def publish(self, name: str, payload: dict[str, Any] | None = None) -> list[Any]:
        """Deliver *name* now and wait: its handlers' results, in subscription order."""
        (results,) = await self.emit_parallel([name], payload)
        return results

    async def emit_parallel(
        self, names: Iterable[str], payload: dict[str, Any] | None = None
    ) -> list[list[Any]]:
        """Deliver one payload to several events at once and wait for all their handlers."""
        return await self.deliver((name, payload) for name in names)

    async def deliver(
        self, events: Iterable[tuple[str, dict[str, Any] | None]]
    ) -> list[list[Any]]:
        """Deliver each (name, payload) now, all at once, and wait for their handlers; each
        event's handler results in subscription order."""
        pairs = list(events)
        for name, _ in pairs:
            check_event_name(name)
        made = [self.bus.make_event(name, payload) for name, payload in pairs]
        return await self.coordinator.emit_parallel(made)

    async def run_until_idle(self) -> None:
        """Wait until nothing is queued and no handler the bus started is running."""
        await self.bus.run_until_idle()

    # Parallel handler parameters -------------------------------------------------------------

    async def parallel(
        self,
        parameters: ParameterSpec,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        retry: Retry | None = None,
    ) -> ParallelExecutionResult:
        """Run each parameter's handlers at once over *payload*; one consolidated result.

        *parameters* maps a result name to an event name, e.g. ``{"analytics":
        "analytics.complete"}``. *timeout* is per handler, in seconds (``math.inf``: none).
        A failing or timed-out branch never costs the others their results; with
        ``fail_fast=True`` the first failure cancels the rest. *retry* runs a failed branch's
        handler again, each attempt with its own timeout (see :class:`Retry`); under
        ``fail_fast`` a branch fails, and stops the rest, only once its last attempt has.
        """
        # The call run here, not in a coroutine of the coordinator's: one coroutine less a call.
        coordinator = self.coordinator
        call = coordinator.prepare(self.resolver.resolve(parameters), payload, timeout,
                                   max_concurrency, fail_fast, retry)
        await call.run()
        return call.result(coordinator.mapper)

    async def parallel_each(
        self,
        branches: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        retry: Retry | None = None,
    ) -> ParallelExecutionResult:
        """Like :meth:`parallel`, but each branch ``name: (event, payload)`` gets a payload of
        its own, as the tool calls of one model turn each bring their arguments:
        ``await rt.parallel_each({"a": ("weather.lookup", {"city": "Paris"}), ...})``."""
        return await self.coordinator.run_each(branches, timeout=timeout,
                                               max_concurrency=max_concurrency,
                                               fail_fast=fail_fast, retry=retry)

    def as_completed(
        self,
        parameters: ParameterSpec,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        fail_fast: bool = False,
        retry: Retry | None = None,
    ) -> BranchStream:
        """``async for name, outcome in rt.as_completed(...)``: results as branches finish (a
        branch being retried finishes after its last attempt)."""
        return self.coordinator.stream(
            self.resolver.resolve(parameters), payload, timeout=timeout,
            max_concurrency=max_concurrency, fail_fast=fail_fast, retry=retry,
        )

    # Lifetime --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect a distributed bus (nothing to do for one in process); raises
        :class:`~cxlang.runtime.distributed.BusUnavailable` when the server cannot be reached."""
        if self.transport is not None:
            await self.transport.connect()

    async def aclose(self) -> None:
        """Refuse new work (``emit``, ``parallel``, ``publish``, ``as_completed`` then raise
        :class:`RuntimeClosed`), cancel what is in flight and wait for it (a thread handler is
        told through its context, not waited for: a thread cannot be interrupted), send what
        is still queued to the other processes, shut the pools down. Closing twice is fine."""
        if self.coordinator.closed:
            return
        self.bus.close()
        await self.coordinator.aclose()
        await self.bus.cancel_running()
        if self.transport is not None:
            await self.transport.close()
        self.pool.shutdown()
        if self.observer is not None:
            self.observer.close()  # writes the trace file, flushes exporters

    async def __aenter__(self) -> Runtime:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
