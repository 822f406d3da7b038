"""ProgramHost: what compiled CX code calls (``__cx__``) and what wires it to the runtime.

The generated code reaches the outside world only through these methods: emitting events,
calling services, creating entities and printing. Handler failures are reported here with the
CX source position, found from the traceback's frames in the program's own code object.

Some emitted events are requests the runtime answers (``vector.*``, ``local.llm.*``: see
:mod:`cxlang.services.served_events`); the first emit of a family nothing here answers
(``realtime.*``) gets a notice on stderr, once, unless the program handles that event itself.

A failure that nothing in the program handles is reported too, as Node.js reports an unhandled
promise rejection, and makes the run exit 1: a service call that failed while no handler is
subscribed to its error event, or a parallel handler parameter that failed (an error, a
timeout, no handler) while neither that event has a handler nor the program reads ``_errors``
of the call's result (in the function around the call, or in a handler of its completion
events). Handled failures stay quiet; ``--log-level info`` lists every one.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import re
import sys
import traceback
from collections import Counter
from collections.abc import Coroutine, Iterator
from types import CodeType, FrameType
from typing import Any, TextIO

from .. import runtime as runtime_package
from ..compiler import PRELUDE, CompiledProgram, CxRuntimeError, Entity, display
from ..compiler.prelude import bounded_prelude, size_of, too_large
from ..compiler.sites import CallSite
from ..runtime import Event, Failure, QueueFull, Runtime, Subscription
from ..runtime.limits import LimitExceeded
from ..runtime.outcomes import describe
from ..services import ServiceInvoker
from ..services.controls import ControlValueError
from ..services.invoker import ServiceFailure
from ..services.served_events import ServedEvents, ServedFailure, unserved_family
from ..syntax import Span

__all__ = ["ProgramHost"]

_ENTITY = "\0entity\0"  # in a description, where the instance (or its type) goes
logger = logging.getLogger("cxlang.program")

CONSOLE_WRITE = "system.console.write"
BRANCHES_SHOWN = 5  # failed parameters of one call reported one by one; the rest counted
SHUTDOWN = "system.shutdown"
START = "system.start"


class ProgramHost:
    """One running program: its globals, its entities, its spawned service calls."""

    def __init__(
        self,
        program: CompiledProgram,
        runtime: Runtime,
        services: ServiceInvoker,
        out: TextIO,
        err: TextIO,
        *,
        max_payload: int | None = None,
        max_calls: int | None = None,
    ) -> None:
        self.program = program
        self.runtime = runtime
        self.services = services
        self.out = out
        self.err = err
        self.errors = 0
        self.started = False
        self.shutdown: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.halted: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # limit
        self.max_payload = max_payload
        self.max_calls = max_calls
        self.in_flight = 0  # service calls started and not yet ended
        self.calls: set[asyncio.Task[Any]] = set()
        self.over = False  # the run has ended: what fails from here on is its teardown
        self._in_top_level = False
        self._queue_full_at: set[tuple[str, int]] = set()  # where a full queue was reported
        self._instances: dict[str, int] = {}
        self.served = ServedEvents(runtime, services.memory, services.backend)
        self._unserved_told: set[str] = set()  # families whose notice was written
        self.namespace: dict[str, Any] = {
            "__builtins__": {},
            **(PRELUDE if max_payload is None else bounded_prelude(max_payload)),
            **program.constants, "__cx__": self,
        }
        for code in program.codes:
            exec(code, self.namespace)  # defines the program's functions, runs nothing
        runtime.bus.failure_listeners.append(self._handler_failed)
        runtime.bus.limit_listeners.append(self._limit_reached)
        runtime.bus.describe_failure = self._describe_failure
        runtime.bus.failure_of = self._branch_failure
        # The host's own handlers, named in system.error as a CX program knows them.
        self._builtin_handlers = {
            runtime.on(CONSOLE_WRITE, self._console_write, inline=True):
                f"the console (the built-in handler of {CONSOLE_WRITE})",
            runtime.on(SHUTDOWN, self._shutdown, inline=True):
                f"the built-in handler of {SHUTDOWN}",
        }
        handlers = [*program.handlers,
                    *(h for entity in program.entities.values() for h in entity.handlers)]
        # Name the generated functions as CX source does: "handler at file:line", not cx_on_0.
        for info in handlers:
            self.namespace[info.function].__qualname__ = \
                f"handler at {program.source.name}:{info.line}"
        self.codes = frozenset(c for code in program.codes for c in _code_objects(code))
        self._functions = self._describe_functions()
        self._reading_errors = frozenset(self.namespace[info.function].__code__
                                         for info in handlers if info.reads_errors)
        # Compiled handlers use no task-bound API (services run their I/O in tasks of their
        # own), so they take the cheapest start: inline, with a task only once they wait.
        self.subscriptions: list[Subscription] = [
            runtime.on(handler.pattern, self.namespace[handler.function], inline=True)
            for handler in program.handlers
        ]

    async def run_top_level(self) -> None:
        self._in_top_level = True
        try:
            await self.namespace[self.program.main]()
        except Exception as exc:
            self.report(exc, "at the top level")
        finally:
            self._in_top_level = False

    # Called by compiled code -----------------------------------------------------------------

    def payload(self, event: Event) -> dict[str, Any]:
        """A handler's own copy of its event's payload, so branches cannot disturb each other."""
        return dict(event.payload)

    def print(self, *values: Any) -> None:
        self.out.write(_printable(" ".join(display(v) for v in values)) + "\n")

    async def emit(self, name: str, payload: Any) -> None:
        if payload is None:
            payload = {}
        elif not isinstance(payload, dict):
            payload = {"payload": payload}  # `emit x, "text"`: handlers read event.payload
        if self.max_payload is not None and \
                (size := size_of(payload, self.max_payload)) > self.max_payload:
            raise too_large(f"the payload of {name!r}", size, self.max_payload)
        if name == START:
            self.started = True
        route = self.served.route(name)
        family = None if route is not None else unserved_family(name)
        if route is None and (family is None or family in self._unserved_told):
            await self.runtime.emit_async(name, payload)
            return
        span = self._emitted_at(sys._getframe(1))  # now: after an await, no caller frame
        await self.runtime.emit_async(name, payload)
        if route is not None:
            self.spawn(self.served.serve(name, dict(payload), route,
                                         functools.partial(self._served_failed, span)))
        elif family is not None and not self.runtime.bus.handlers_for(name):
            self._unserved_told.add(family)
            self._write_at(span, f"notice: nothing in this runtime serves {family}.* events, "
                           f"so {name} gets no answer (told once; the run goes on)")

    def spawn(self, call: Coroutine[Any, Any, Any]) -> None:
        """Run a service statement in the background (fire-and-forget), but keep track of it;
        past ``max_calls`` of them not yet ended, the run stops."""
        if self.max_calls is not None and len(self.calls) >= self.max_calls:
            call.close()  # never started: nothing of it ran
            self._too_many_calls("a service statement")
        task = asyncio.get_running_loop().create_task(call)
        self.calls.add(task)
        task.add_done_callback(self._call_done)

    async def service(
        self,
        name: str,
        properties: dict[str, Any],
        site: CallSite,
        completions: list[tuple[str, dict[str, Any] | None]],
    ) -> Any:
        """Run a service call; its failures are judged (handled or not) by :meth:`_failed_at`.

        A control value the call does not take is the program's mistake: reported at the call,
        whose value is then null, as a failed call's is. Past ``max_calls`` calls in flight
        the run stops (a fan-out through parallel parameters that call themselves)."""
        if self.max_calls is not None and self.in_flight >= self.max_calls:
            self._too_many_calls(f"the {name} call at {site.where(self.program.source.name)}")
        self.in_flight += 1
        try:
            return await self.services.call(
                name, properties, site.parameters, completions,
                functools.partial(self._failed_at, site))
        except ControlValueError as exc:
            self.report_at(site, f"runtime error in the {name} call: {exc}")
            return None
        finally:
            self.in_flight -= 1

    def _emitted_at(self, frame: FrameType) -> Span | None:
        """Where the program's code running in *frame* is (an emit), if it is the program's."""
        if frame.f_code not in self.codes:
            return None
        line, end_line, column, end_column = next(
            itertools.islice(frame.f_code.co_positions(), frame.f_lasti // 2, None))
        if line is None:
            return None
        return Span(line, (column or 0) + 1, end_line or line, (end_column or column or 0) + 1)

    def _served_failed(self, span: Span | None, failure: ServedFailure) -> None:
        """Report a request the runtime could not serve, unless the program handles that."""
        if failure.handled or self.over:
            return
        self.errors += 1
        self._write_at(span, f"runtime error: {failure.request} failed: {failure.message} "
                       f"(nothing handles it: add on {failure.failed})")

    def _write_at(self, span: Span | None, text: str) -> None:
        source = self.program.source
        self.err.write((source.diagnostic(text, span).render() if span is not None
                        else f"{source.name}: {text}") + "\n")
        self.err.flush()

    def _too_many_calls(self, starting: str) -> None:
        assert self.max_calls is not None
        limit = LimitExceeded("calls", f"{self.max_calls:,} service calls were in flight when "
                              f"{starting} began (a fan-out through handlers that call "
                              "services which call them again)", self.max_calls)
        self.runtime.bus.trip(limit)
        raise limit.again()

    async def new(self, type_name: str, args: list[Any]) -> Entity:
        info = self.program.entities[type_name]
        config = args[0] if args else {}
        if not isinstance(config, dict):
            raise CxRuntimeError(f"new {type_name}(...) takes an object of properties")
        count = self._instances[type_name] = self._instances.get(type_name, 0) + 1
        instance = Entity(type_name, f"{type_name}#{count}", {})
        if info.fields is not None:
            await self.namespace[info.fields](instance)
        instance.properties.update(config)
        # Handlers first, so events that realize emits already reach this instance.
        for handler in info.handlers:
            bound = functools.partial(self.namespace[handler.function], instance)
            self.subscriptions.append(
                self.runtime.on(handler.pattern, bound, entity=instance.id, inline=True))
        if info.realize is not None:
            await self.namespace[info.realize](instance, config)
        return instance

    # Lifetime --------------------------------------------------------------------------------

    async def until_idle(self) -> None:
        """Wait until no event is queued, no handler runs and no service call is in flight."""
        bus = self.runtime.bus
        while True:
            try:
                await bus.run_until_idle()
            except LimitExceeded:
                return  # the run is over: run_program reports the limit
            if self.calls:
                await asyncio.wait(list(self.calls))
            elif bus.idle:
                return

    def still_running(self) -> list[str]:
        """What keeps the run going, each kind once with its count (there may be thousands)."""
        bus = self.runtime.bus
        counts = Counter(bus.running_handlers())
        running = ["the top level"] if self._in_top_level else []
        running += [what if n == 1 else f"{what} x {n:,}" for what, n in counts.most_common(5)]
        if len(counts) > 5:
            running.append(f"{sum(counts.values()) - sum(n for _, n in counts.most_common(5)):,}"
                           " more")
        if self.calls:
            running.append(f"{len(self.calls):,} service call(s)")
        if not counts and not bus.idle:  # handlers that end at once, and events still queued
            running.append(f"events still queued ({bus.handled:,} handled so far)")
        return running

    def where(self, frame: FrameType) -> str:
        """The part of the program running in *frame*, one of its own, as its source names it:
        ``handler at prog.cx:3 (on tick.go)``, ``realize of Sensor#1 at prog.cx:7``."""
        for running in _outwards(frame):
            known = self._functions.get(running.f_code)
            if known is None:
                continue  # code nested in a function (a comprehension, say)
            described, entity = known
            if entity is None:
                return described
            instance = running.f_locals.get("v_self")
            return described.replace(_ENTITY, instance.id if isinstance(instance, Entity)
                                     else entity)
        return f"the program at {self.program.source.name}:{frame.f_lineno}"

    def halt(self) -> None:
        """Stop the run now, on purpose: no handler of the program starts any more, no event is
        dispatched, and what fails from here on is not reported."""
        self.over = True
        for sub in self.subscriptions:
            sub.cancel()
        self.runtime.bus.close()

    def _describe_functions(self) -> dict[CodeType, tuple[str, str | None]]:
        """Each generated function's code: what the source calls it, and its entity type."""
        source = self.program.source.name
        described: dict[CodeType, tuple[str, str | None]] = {
            self.namespace[self.program.main].__code__: ("the top level", None)}
        for handler in self.program.handlers:
            described[self.namespace[handler.function].__code__] = \
                (f"handler at {source}:{handler.line} (on {handler.pattern})", None)
        for entity in self.program.entities.values():
            for handler in entity.handlers:
                described[self.namespace[handler.function].__code__] = (
                    f"handler at {source}:{handler.line} (on {handler.pattern}) of {_ENTITY}",
                    entity.name)
            for part, function in (("realize", entity.realize), ("the fields", entity.fields)):
                if function is not None:
                    code = self.namespace[function].__code__
                    described[code] = (f"{part} of {_ENTITY} at {source}:{code.co_firstlineno}",
                                       entity.name)
        return described

    # Reporting -------------------------------------------------------------------------------

    def _console_write(self, event: Event) -> None:
        self.out.write(_printable(display(event.payload.get("text"))) + "\n")

    def _shutdown(self, event: Event) -> None:
        if not self.shutdown.done():
            self.shutdown.set_result(None)
            # The run ends here: events still queued or emitted later reach no CX handler
            # (those of system.shutdown itself still run, they were started with this one).
            for sub in self.subscriptions:
                sub.cancel()

    def _limit_reached(self, exc: LimitExceeded) -> None:
        if not self.halted.done():
            self.halted.set_result(None)

    def _call_done(self, task: asyncio.Task[Any]) -> None:
        self.calls.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.report(exc, "in a service call")

    def _failed_at(self, site: CallSite, failure: ServiceFailure) -> None:
        """Report *failure* of the call at *site* unless the program handles it."""
        where = site.where(self.program.source.name)
        for name, branch in failure.branches.items():
            logger.info("%s at %s: parameter %r failed (%s): %s", failure.service, where, name,
                        branch.kind, branch.message)
        if self.over:
            return
        if failure.message is not None:
            if not failure.error_handled:
                self.report_at(site, f"{failure.service} failed: {failure.message} "
                               f"({self._unhandled(failure, reads_errors=False)})")
            return
        if failure.error_handled or site.reads_errors or any(
                self._reads_errors(target) for target in failure.completions):
            return
        self._report_branches(site, failure)

    def _report_branches(self, site: CallSite, failure: ServiceFailure) -> None:
        # A cancelled sibling (fail-fast) only echoes the failure that stopped it.
        failed = {name: f for name, f in failure.branches.items() if f.kind != "cancelled"} \
            or dict(failure.branches)
        advice = self._unhandled(failure, reads_errors=True)
        for name, branch in list(failed.items())[:BRANCHES_SHOWN]:
            what = f"the {failure.service} call's parameter {name!r}"
            if branch.kind == "error" and _raised_in_program(branch, self.program.source.name):
                assert branch.exception is not None
                self.report(branch.exception, f"in {what} at {site.where(self.program.source.name)}"
                            f" ({advice})")
            else:
                self.report_at(site, f"{what} failed ({_KINDS[branch.kind]}): {branch.message} "
                               f"({advice})", name)
        if len(failed) > BRANCHES_SHOWN:
            self.report_at(site, f"and {len(failed) - BRANCHES_SHOWN:,} more of the "
                           f"{failure.service} call's parameters failed")

    def _unhandled(self, failure: ServiceFailure, *, reads_errors: bool) -> str:
        """Why the report, and the ways to handle it instead."""
        ways = [f"on {failure.error_event}"] if failure.error_event else []
        if reads_errors:
            readers = " or ".join(failure.completions)
            ways.append("read _errors of the call's result" +
                        (f" in on {readers}" if readers else ""))
        return "nothing handles it" + (f": add {', or '.join(ways)}" if ways else "")

    def _reads_errors(self, event_name: str) -> bool:
        """Does a handler that event reaches read ``_errors``?"""
        for sub in self.runtime.bus.handlers_for(event_name):
            function = getattr(sub.callback, "func", sub.callback)  # an entity's: a partial
            if getattr(function, "__code__", None) in self._reading_errors:
                return True
        return False

    def _describe_failure(self, sub: Subscription, exc: BaseException) -> tuple[str, str, str]:
        """What ``system.error`` tells the program of a failed handler: the handler as the
        source names it (the generated functions carry "handler at prog.cx:3" as their name),
        the kind of error and the message, in CX words rather than Python's."""
        return (self._builtin_handlers.get(sub, sub.name), *self._error_words(exc))

    def _branch_failure(self, exc: Exception) -> Failure:
        """A parallel parameter's exception as ``_errors`` shows it to the program: a CX error
        as it reads; anything else is a fault of cxlang, whose Python text goes to the debug
        log only."""
        if getattr(exc, "message_is_complete", False):
            return Failure.from_exception(exc)
        logger.debug("internal error in a parallel parameter's handler", exc_info=exc)
        return Failure("error", _INTERNAL, exc)

    def _error_words(self, exc: BaseException) -> tuple[str, str]:
        """The kind of *exc* and its message, as a CX program is told them."""
        if isinstance(exc, QueueFull):
            # The library's advice (emit_async, max_queue) means nothing to a CX program.
            return "event queue full", (
                f"event queue full ({self.runtime.bus.max_queue:,} events waiting): the "
                "program emits faster than its handlers finish")
        if getattr(exc, "message_is_complete", False):  # CX errors, and those of other nodes
            return "runtime error", describe(exc)
        # A Python exception here is a fault of cxlang, not of the program. Its Python text
        # means nothing to a CX user: it goes to the debug log (report), where the user is sent.
        return "internal error", _INTERNAL

    def _handler_failed(self, event: Event, sub: Subscription, exc: BaseException) -> None:
        self.report(exc, f"in a handler of {sub.pattern.text!r} (handling {event.name!r})")

    def report_at(self, site: CallSite, text: str, parameter: str | None = None) -> None:
        """Print a run-time error at a service call (at one of its parameters, if given):
        ``file:line:col: text``."""
        if self.over:
            return
        self.errors += 1
        span = site.parameter_spans.get(parameter, site.span) if parameter else site.span
        self.err.write(self.program.source.diagnostic(text, span).render() + "\n")
        self.err.flush()

    def report(self, exc: BaseException, where: str) -> None:
        """Print a run-time error at its CX position: ``file:line:col: message``.

        A limit reached (or memory exhausted) is no error of the program's code: it stops the
        run, which reports it once. Nor is what happens to the program as its run is stopped (a
        cancellation, the time limit's interrupt, a handler that finds the runtime closed)."""
        if self.over or not isinstance(exc, Exception):
            return
        if isinstance(exc, MemoryError):
            # The frames it unwound hold what filled memory: let it go now, so that stopping
            # the run (which allocates) does not run out too.
            traceback.clear_frames(exc.__traceback__)
            exc = LimitExceeded("memory", "the process ran out of memory", 0,
                                "set a lower --max-memory, so that the watchdog stops the run "
                                "first")
        elif isinstance(exc, RecursionError) and _through_the_runtime(exc):
            # Handlers that call services whose handlers call services, none of them waiting,
            # nest on Python's stack; it runs out long before --max-depth.
            exc = LimitExceeded("depth", "service calls nested in each other's handlers too "
                                "deeply to run without waiting (Python's stack is exhausted)",
                                0, "end the chain, or let it wait (an AI call, await)")
        elif isinstance(exc, RecursionError):
            # Anything else that recursed in the program's own frame: a value too deep for
            # an operation that still uses Python's stack.
            exc = CxRuntimeError("a value nested too deeply (thousands of levels) for this "
                                 "operation").with_traceback(exc.__traceback__)
        if isinstance(exc, LimitExceeded):
            self.runtime.bus.trip(exc)
            return
        self.errors += 1
        source = self.program.source
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename == source.name and f.lineno]
        if isinstance(exc, QueueFull):
            place = (where, frames[-1].lineno or 0) if frames else (where, 0)
            if place in self._queue_full_at:
                return  # every emit there fails alike until the queue drains: said once
            self._queue_full_at.add(place)
        kind, message = self._error_words(exc)
        if kind == "internal error":
            logger.debug("internal error %s", where, exc_info=exc)
            text = f"{_INTERNAL_OF} {where}: {_INTERNAL_ADVICE}"
        else:
            text = f"runtime error {where}: {message}"
        if frames:
            frame = frames[-1]
            line = frame.lineno or 1
            column = (frame.colno or 0) + 1
            end = (frame.end_colno or frame.colno or 0) + 1
            span = Span(line, column, frame.end_lineno or line, end)
            self.err.write(source.diagnostic(text, span).render() + "\n")
        else:
            self.err.write(f"{source.name}: {text}\n")
        self.err.flush()


_INTERNAL_OF = "internal error of cxlang (not a mistake in the program)"
_INTERNAL_ADVICE = "run again with --log-level debug for the details, and please report it"
_INTERNAL = f"{_INTERNAL_OF}: {_INTERNAL_ADVICE}"

_KINDS = {"error": "an error", "timeout": "timed out", "no_handler": "no handler",
          "cancelled": "cancelled"}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(text: str) -> str:
    """*text* as it can be written: a surrogate pair (``"\\uD83D\\uDE00"`` in CX source) as
    the character it encodes, a lone surrogate as U+FFFD, which no encoding refuses to write."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


_RUNTIME_FILES = os.path.dirname(runtime_package.__file__ or "") + os.sep


def _through_the_runtime(exc: RecursionError) -> bool:
    """Did *exc* strike inside a service call the program's code made (the runtime's code is
    on its way), rather than in an operation on the program's values?"""
    return any(frame.filename.startswith(_RUNTIME_FILES)
               for frame in traceback.extract_tb(exc.__traceback__))


def _raised_in_program(failure: Failure, filename: str) -> bool:
    """Did the failure's exception come from the program's own code (it has a position)?"""
    exc = failure.exception
    return exc is not None and any(frame.filename == filename
                                   for frame in traceback.extract_tb(exc.__traceback__))


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    """*code* and every function or comprehension compiled inside it."""
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _code_objects(constant)


def _outwards(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back
