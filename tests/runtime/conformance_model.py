"""The model behind the coordinator's conformance suite: scenarios, instrumented handlers, checks.

A *scenario* is drawn from one integer seed (:func:`generate`): a runtime (its budget, its
thread and process pools, its default timeout), one parallel call (``rt.parallel`` or
``rt.as_completed``, a per-handler timeout, a per-call cap, fail-fast or not), what each
handler does (its kind: task, inline coroutine, inline ``def``, thread, process; and how it
ends) and what, if anything, cancels the call from outside (``asyncio.wait_for``,
``asyncio.timeout``, ``task.cancel()``, ``rt.aclose()``, closing the stream early), at a
random moment.

:func:`run` plays a scenario on an event loop of its own, in a thread of its own, and the
caller's thread is the watchdog: a scenario whose loop is still busy after a hard bound is a
hang, reported with its seed, whatever the code under test does. Inside the loop every wait on
the code under test is bounded too (``asyncio.wait`` with a timeout, which never cancels what
it waits for), so a call that never ends is reported as such and abandoned, not awaited.

Every handler records in a shared :class:`Tracker` when it started, when it ended and how
(returned, raised, cancelled, swallowed its cancellation, was closed), and, for a handler that
calls ``rt.parallel`` itself, when it was waiting for that nested call (it lends its budget
slot then). Process handlers leave the same record in files (:mod:`.conformance_handlers`).
:func:`check` then compares what the call reported with what really happened, branch by branch,
and checks the invariants that hold whatever the timing: see the module docstring of
``test_conformance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cxlang

from . import conformance_handlers

_monotonic = time.monotonic

LOOP_KINDS = ("task", "inline_coro", "inline_def")
COROUTINE_KINDS = ("task", "inline_coro")


# Failures handlers raise -------------------------------------------------------------------


class Fault(ValueError):  # noqa: N818 - what the scenarios call it
    """An ordinary handler failure."""


class Boom(BaseException):
    """Not an Exception: the agreed semantics are a task group's (the call cancels the other
    branches, then this propagates out of ``rt.parallel``)."""


class BadStr(Exception):  # noqa: N818 - named for what it does wrong
    """An exception whose ``__str__`` itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("this exception's __str__ fails")


def cancel_flag() -> bool:
    """``current_context().cancelled``, where the runtime has it (False where it does not)."""
    return getattr(cxlang.current_context(), "cancelled", False) is True


HAS_CANCEL_FLAG = isinstance(getattr(cxlang.ExecutionContext, "cancelled", None), property)


# Scenarios ---------------------------------------------------------------------------------


@dataclass
class Unit:
    """One subscription: a handler of one kind that ends in one way."""

    uid: str
    kind: str  # task, inline_coro, inline_def, thread, process
    behaviour: str
    d: float = 0.0  # how long it works (sleeps) before it ends
    f: float = 0.0  # how long it awaits in ``finally``, for finally_await
    mode: str = ""  # coop threads: "return" or "raise" when they see the cancel flag
    nested: list[Branch] = field(default_factory=list)  # for behaviour "nested"
    nested_timeout: float | None = None
    nested_cap: int | None = None

    @property
    def value(self) -> str:
        return f"value-{self.uid}"

    def describe(self) -> str:
        text = f"{self.uid} {self.kind} {self.behaviour}"
        if self.d:
            text += f" d={self.d:.3f}"
        if self.f:
            text += f" f={self.f:.3f}"
        if self.mode:
            text += f" mode={self.mode}"
        if self.nested:
            inner = "; ".join(f"{b.name}<-[{', '.join(u.describe() for u in b.units)}]"
                              for b in self.nested)
            text += (f" nested(timeout={self.nested_timeout}, cap={self.nested_cap}: "
                     f"{inner})")
        return text


@dataclass
class Branch:
    name: str
    event: str
    units: list[Unit]


@dataclass
class Cancel:
    kind: str  # none, wait_for, timeout, task_cancel, aclose, stream_close
    at: float = 0.0  # seconds after the call started
    after: int = 0  # stream_close: close after this many branches

    def describe(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "stream_close":
            return f"stream_close after {self.after} branch(es)"
        return f"{self.kind} at {self.at:.4f} s"


@dataclass
class Scenario:
    seed: int
    runtime_cap: int | None
    max_threads: int | None
    processes: bool
    default_timeout: float
    timeout: float | None  # per call; None: the runtime's default
    call_cap: int | None
    fail_fast: bool
    api: str  # parallel or as_completed
    cancel: Cancel
    branches: list[Branch]

    @property
    def effective_timeout(self) -> float:
        return self.default_timeout if self.timeout is None else self.timeout

    def units(self) -> Iterator[Unit]:
        """Every unit, the nested ones too."""
        for branch in self.branches:
            for unit in branch.units:
                yield unit
                for inner in unit.nested:
                    yield from inner.units

    def describe(self) -> str:
        lines = [
            f"seed {self.seed}: Runtime(max_concurrency={self.runtime_cap}, "
            f"max_threads={self.max_threads}, max_processes={2 if self.processes else None}, "
            f"default_timeout={self.default_timeout}); {self.api}(timeout={self.timeout}, "
            f"max_concurrency={self.call_cap}, fail_fast={self.fail_fast}); "
            f"cancel: {self.cancel.describe()}",
        ]
        for branch in self.branches:
            units = ", ".join(u.describe() for u in branch.units) or "no subscriber"
            lines.append(f"  {branch.name} <- {branch.event}: [{units}]")
        return "\n".join(lines)


PROCESS_SHARE = 0.04  # of scenarios; they pay for a process pool each


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    names = list(table)
    return rng.choices(names, weights=[table[n] for n in names])[0]


def generate(seed: int) -> Scenario:
    """The scenario of *seed* (the same seed always gives the same scenario)."""
    rng = random.Random(seed)
    processes = rng.random() < PROCESS_SHARE
    nested = not processes and rng.random() < 0.12
    api = "as_completed" if rng.random() < 0.25 else "parallel"

    default_timeout = 30.0
    if nested:
        # Timeouts far above the nested work, so a nested parent that times out is a deadlock.
        timeout: float | None = rng.choice([2.0, None])
    elif processes and rng.random() < 0.7:
        timeout = rng.choice([0.1, 0.15, 0.2])  # so that process handlers may hang
    else:
        r = rng.random()
        if r < 0.55:
            timeout = rng.choice([0.05, 0.1, 0.15, 0.2])
        elif r < 0.7:
            timeout = None
            default_timeout = rng.choice([0.1, 0.2])
        elif r < 0.8:
            timeout = math.inf
        else:
            timeout = None
    effective = default_timeout if timeout is None else timeout

    cancel_kind = _weighted(rng, {"none": 45, "wait_for": 10, "timeout": 10,
                                  "task_cancel": 15, "aclose": 10, "stream_close": 10})
    if cancel_kind == "stream_close" and api != "as_completed":
        cancel_kind = "none"
    r = rng.random()
    at = 0.0 if r < 0.15 else rng.uniform(0, 0.01) if r < 0.4 else rng.uniform(0.01, 0.3)
    cancel = Cancel(cancel_kind, at)
    # A handler may wait for ever only if something is sure to stop it.
    hang_ok = effective <= 0.5 or cancel_kind in ("wait_for", "timeout", "task_cancel", "aclose")

    runtime_cap = (rng.randint(1, 2) if rng.random() < 0.7 else None) if nested else \
        (rng.randint(1, 4) if rng.random() < 0.5 else None)
    call_cap = rng.randint(1, 3) if rng.random() < 0.4 else None
    max_threads = rng.randint(1, 3) if rng.random() < 0.4 else None
    fail_fast = rng.random() < 0.35

    counter = iter(range(1000))
    n_branches = rng.randint(1, 4 if processes else 5)
    branches = []
    for i in range(n_branches):
        n_units = rng.choices([0, 1, 2, 3], weights=[5, 75, 15, 5])[0]
        units = [_unit(rng, f"h{next(counter)}", hang_ok, nested, effective, counter, i)
                 for _ in range(n_units)]
        branches.append(Branch(f"p{i}", f"e{i}.go", units))
    if processes:
        # One to three process handlers, at most one per function and event.
        taken: set[tuple[str, str]] = set()
        for _ in range(rng.randint(1, 3)):
            branch = rng.choice(branches)
            behaviour = _weighted(rng, {"proc_return": 4, "proc_raise": 1.5, "proc_crash": 2,
                                        "proc_hang": 2.5 if effective <= 0.5 else 0})
            if (branch.event, behaviour) in taken:
                continue
            taken.add((branch.event, behaviour))
            d = rng.uniform(0, 0.02) if rng.random() < 0.6 else rng.uniform(0.05, 0.25)
            branch.units.insert(rng.randint(0, len(branch.units)),
                                Unit(f"h{next(counter)}", "process", behaviour,
                                     d=d if behaviour in ("proc_return", "proc_raise") else 0))
    if cancel_kind == "stream_close":
        cancel.after = rng.randint(1, max(1, n_branches - 1))
    return Scenario(seed, runtime_cap, max_threads, processes, default_timeout, timeout,
                    call_cap, fail_fast, api, cancel, branches)


def _duration(rng: random.Random) -> float:
    return rng.uniform(0, 0.02) if rng.random() < 0.5 else rng.uniform(0.05, 0.25)


def _unit(rng: random.Random, uid: str, hang_ok: bool, nested: bool, effective: float,
          counter: Iterator[int], branch_index: int) -> Unit:
    kind = _weighted(rng, {"task": 30, "inline_coro": 25, "inline_def": 15, "thread": 30})
    if kind in COROUTINE_KINDS:
        behaviour = _weighted(rng, {
            "return_now": 10, "return_after": 14, "raise_now": 6, "raise_after": 6,
            "cancel_now": 5, "swallow": 8, "finally_await": 8, "boom_now": 1.5,
            "boom_after": 1.5, "badstr_now": 2, "badstr_after": 2,
            "hang": 8 if hang_ok else 0, "nested": 25 if nested else 0})
    elif kind == "inline_def":
        behaviour = _weighted(rng, {"return_now": 6, "raise_now": 3, "boom_now": 0.6,
                                    "badstr_now": 1})
    else:
        behaviour = _weighted(rng, {"return_now": 4, "return_after": 8, "raise_after": 4,
                                    "boom_after": 0.6, "badstr_after": 1, "coop": 6})
    unit = Unit(uid, kind, behaviour)
    if behaviour in ("return_after", "raise_after", "swallow", "finally_await", "boom_after",
                     "badstr_after", "coop"):
        unit.d = _duration(rng)
        if behaviour == "coop":
            unit.d = rng.uniform(0.1, 0.3)
            unit.mode = rng.choice(["return", "raise"])
    if behaviour == "finally_await":
        unit.f = rng.uniform(0.001, 0.03)
    if behaviour == "nested":
        unit.nested_timeout = rng.choice([None, 1.0])
        unit.nested_cap = rng.choice([None, None, 1])
        inner = []
        for j in range(rng.randint(1, 3)):
            inner_kind = _weighted(rng, {"task": 4, "inline_coro": 3, "inline_def": 2})
            inner_behaviour = _weighted(rng, {"return_now": 3, "raise_now": 1,
                                              "return_after": 0 if inner_kind == "inline_def"
                                              else 4})
            inner_unit = Unit(f"h{next(counter)}", inner_kind, inner_behaviour,
                              d=rng.uniform(0, 0.02) if inner_behaviour == "return_after" else 0)
            inner.append(Branch(f"n{j}", f"n{uid}.{j}", [inner_unit]))
        unit.nested = inner
    return unit


# Tracking what really runs ------------------------------------------------------------------


class Run:
    """One run of one handler, as the handler itself saw it."""

    __slots__ = ("call", "closed", "end", "how", "kind", "lends", "pid", "saw_cancel",
                 "saw_flag", "start", "uid", "value")

    def __init__(self, uid: str, kind: str, call: str | None, start: float) -> None:
        self.uid = uid
        self.kind = kind
        self.call = call
        self.start = start
        self.end: float | None = None
        # returned, raised, badstr, boom, cancelled, closed; None while it runs
        self.how: str | None = None
        self.value: Any = None
        self.saw_cancel = False  # caught a CancelledError from outside
        self.saw_flag = False  # saw current_context().cancelled set
        self.closed = False  # got GeneratorExit: closed, not cancelled
        self.lends: list[list[float]] = []  # [start, end] of waits for a nested call
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"<run {self.uid} {self.kind} {self.how}>"


class Tracker:
    """Every run of every handler of one scenario (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[Run] = []

    def begin(self, unit: Unit) -> Run:
        run = Run(unit.uid, unit.kind, cxlang.current_context().execution_id, _monotonic())
        with self.lock:
            self.runs.append(run)
        return run

    @staticmethod
    def finish(run: Run, how: str, value: Any = None) -> None:
        run.how = how
        run.value = value
        run.end = _monotonic()

    def snapshot(self) -> list[Run]:
        with self.lock:
            return list(self.runs)


def _finish_on(tracker: Tracker, run: Run, exc: BaseException) -> None:
    if isinstance(exc, GeneratorExit):
        run.closed = True
        tracker.finish(run, "closed")
    elif isinstance(exc, asyncio.CancelledError):
        tracker.finish(run, "cancelled")
    elif isinstance(exc, Boom):
        tracker.finish(run, "boom")
    elif isinstance(exc, BadStr):
        tracker.finish(run, "badstr")
    else:
        tracker.finish(run, "raised", type(exc).__name__)


def make_handler(unit: Unit, tracker: Tracker, rt: cxlang.Runtime,
                 notes: list[tuple[str, str]]) -> Callable[[cxlang.Event], Any]:
    """The instrumented handler for *unit* (a process unit gets its module-level function)."""
    if unit.kind == "process":
        return conformance_handlers.PROCESS_HANDLERS[unit.behaviour]
    if unit.kind in COROUTINE_KINDS:

        async def coroutine_handler(event: cxlang.Event) -> Any:
            run = tracker.begin(unit)
            try:
                value = await _coroutine_body(unit, run, rt, notes)
            except BaseException as exc:
                _finish_on(tracker, run, exc)
                raise
            tracker.finish(run, "returned", value)
            return value

        handler: Callable[[cxlang.Event], Any] = coroutine_handler
    else:

        def plain_handler(event: cxlang.Event) -> Any:
            run = tracker.begin(unit)
            try:
                value = _plain_body(unit, run)
            except BaseException as exc:
                _finish_on(tracker, run, exc)
                raise
            tracker.finish(run, "returned", value)
            return value

        handler = plain_handler
    handler.__qualname__ = handler.__name__ = f"{unit.behaviour}_{unit.uid}"
    return handler


async def _coroutine_body(unit: Unit, run: Run, rt: cxlang.Runtime,
                          notes: list[tuple[str, str]]) -> Any:
    b = unit.behaviour
    if b == "return_now":
        return unit.value
    if b == "return_after":
        await asyncio.sleep(unit.d)
        return unit.value
    if b == "raise_now":
        raise Fault(unit.uid)
    if b == "raise_after":
        await asyncio.sleep(unit.d)
        raise Fault(unit.uid)
    if b == "cancel_now":
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future  # raises CancelledError at once, without suspending
    if b == "swallow":
        try:
            await asyncio.sleep(unit.d)
        except asyncio.CancelledError:
            run.saw_cancel = True
            run.saw_flag = cancel_flag()
            return f"swallowed-{unit.uid}"
        return unit.value
    if b == "finally_await":
        try:
            await asyncio.sleep(unit.d)
        except asyncio.CancelledError:
            run.saw_cancel = True
            run.saw_flag = cancel_flag()
            raise
        except GeneratorExit:
            run.closed = True
            raise
        finally:
            await asyncio.sleep(unit.f)
        return unit.value
    if b == "boom_now":
        raise Boom(unit.uid)
    if b == "boom_after":
        await asyncio.sleep(unit.d)
        raise Boom(unit.uid)
    if b == "badstr_now":
        raise BadStr(unit.uid)
    if b == "badstr_after":
        await asyncio.sleep(unit.d)
        raise BadStr(unit.uid)
    if b == "hang":
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            run.saw_cancel = True
            run.saw_flag = cancel_flag()
            raise
    if b == "nested":
        params = {branch.name: branch.event for branch in unit.nested}
        lend = [_monotonic(), math.inf]
        run.lends.append(lend)
        try:
            res = await rt.parallel(params, timeout=unit.nested_timeout,
                                    max_concurrency=unit.nested_cap)
        finally:
            lend[1] = _monotonic()
        for branch in unit.nested:
            (inner,) = branch.units
            outcome = next((o for o in res.outcomes if o.name == branch.name), None)
            if outcome is None:
                notes.append(("lost", f"nested call of {unit.uid} has no outcome for "
                                      f"{branch.name}"))
            elif inner.behaviour == "raise_now":
                if outcome.failure is None or outcome.failure.kind != "error":
                    notes.append(("wrong-outcome", f"nested {inner.uid} raised, reported "
                                                   f"{outcome!r}"))
            elif outcome.failure is not None or outcome.value != inner.value:
                notes.append(("nested-deadlock" if outcome.failure is not None
                              and outcome.failure.kind in ("timeout", "cancelled")
                              else "wrong-outcome",
                              f"nested {inner.uid} returned {inner.value!r}, reported "
                              f"{outcome!r}"))
        return unit.value
    raise AssertionError(f"unknown behaviour {b}")


def _plain_body(unit: Unit, run: Run) -> Any:
    b = unit.behaviour
    if b == "return_now":
        return unit.value
    if b == "return_after":
        time.sleep(unit.d)
        return unit.value
    if b == "raise_now":
        raise Fault(unit.uid)
    if b == "raise_after":
        time.sleep(unit.d)
        raise Fault(unit.uid)
    if b == "boom_now":
        raise Boom(unit.uid)
    if b == "boom_after":
        time.sleep(unit.d)
        raise Boom(unit.uid)
    if b == "badstr_now":
        raise BadStr(unit.uid)
    if b == "badstr_after":
        time.sleep(unit.d)
        raise BadStr(unit.uid)
    if b == "coop":
        until = _monotonic() + unit.d
        while _monotonic() < until:
            time.sleep(0.005)
            if cancel_flag():
                run.saw_flag = True
                if unit.mode == "raise":
                    check = getattr(cxlang, "check_cancelled", None)
                    if check is not None:
                        check()
                    raise asyncio.CancelledError("saw the cancel flag")
                return f"stopped-{unit.uid}"
        return unit.value
    raise AssertionError(f"unknown behaviour {b}")


def load_process_runs(directory: Path, scenario: Scenario) -> list[Run]:
    """The runs process handlers recorded in *directory*."""
    by_key = {}
    for branch in scenario.branches:
        for unit in branch.units:
            if unit.kind == "process":
                by_key[(branch.event, unit.behaviour)] = unit
    runs: dict[str, Run] = {}
    for path in sorted(directory.glob("*.start")):
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text())
            unit = by_key.get((entry["event"], entry["fn"]))
            uid = unit.uid if unit is not None else f"{entry['event']}/{entry['fn']}"
            run = Run(uid, "process", entry["call"], entry["t"])
            run.pid = entry["pid"]
            end = path.with_suffix(".end")
            if end.exists():
                run.end = json.loads(end.read_text())["t"]
                run.how = {"proc_return": "returned", "proc_raise": "raised",
                           "proc_crash": "crashed"}.get(entry["fn"], "returned")
            runs[path.stem] = run
    return list(runs.values())


# Running a scenario --------------------------------------------------------------------------


@dataclass
class Report:
    """What one scenario did and which invariants it broke."""

    scenario: Scenario
    violations: list[tuple[str, str]] = field(default_factory=list)
    abandoned: bool = False
    duration: float = 0.0
    loop_errors: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    unraisable: list[str] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)

    def fail(self, tag: str, message: str) -> None:
        self.violations.append((tag, message))

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.loop_errors.append(f"{context.get('message')} {exc!r:.200}")

    def tags(self) -> list[str]:
        return sorted({tag for tag, _ in self.violations})

    def explain(self) -> str:
        scenario = self.scenario
        lines = [scenario.describe(), "violations:"]
        lines += [f"  [{tag}] {message}" for tag, message in self.violations]
        lines.append(f"replay: CX_CONFORMANCE_SEEDS={scenario.seed} python -m pytest "
                     f"tests/runtime/test_conformance.py (cxlang from {cxlang.__file__})")
        return "\n".join(lines)


class _LogRecorder(logging.Handler):
    def __init__(self, report: Report) -> None:
        super().__init__(logging.WARNING)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.report.logged.append(f"{record.name}: {record.getMessage():.300}")


@contextlib.contextmanager
def _captured(report: Report) -> Iterator[None]:
    """Record what asyncio would write to stderr: its logger, warnings, unraisable errors."""
    recorder = _LogRecorder(report)
    loggers = [logging.getLogger("asyncio"), logging.getLogger("concurrent.futures")]
    for logger in loggers:
        logger.addHandler(recorder)

    def show(message: Any, category: Any, filename: str, lineno: int, *args: Any) -> None:
        report.warned.append(f"{category.__name__}: {message} ({filename}:{lineno})")

    def unraisable(info: Any) -> None:
        report.unraisable.append(f"{info.err_msg or 'Exception ignored'}: "
                                 f"{info.exc_value!r:.200} in {info.object!r:.100}")

    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show
            yield
    finally:
        sys.unraisablehook = old_hook
        for logger in loggers:
            logger.removeHandler(recorder)


def run(scenario: Scenario, hard_bound: float) -> Report:
    """Play *scenario* on a loop of its own in a thread of its own; this thread watches."""
    report = Report(scenario)
    directory = Path(tempfile.mkdtemp(prefix="cx-conformance-"))

    def play() -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(report.loop_exception)
        try:
            loop.run_until_complete(_play(scenario, report, directory))
        except BaseException as exc:  # the harness must say what broke
            report.fail("harness", "the scenario itself raised: "
                        + "".join(traceback.format_exception(exc)))
        if not report.abandoned:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    started = _monotonic()
    with _captured(report):
        thread = threading.Thread(target=play, name=f"conformance-{scenario.seed}",
                                  daemon=True)
        thread.start()
        thread.join(hard_bound)
        if thread.is_alive():
            report.abandoned = True
            report.fail("hang", f"the scenario's event loop was still busy after {hard_bound:g}"
                                " s (hard watchdog): " + _stack_of(thread))
        else:
            gc.collect(1)  # what the young generations hold: tasks destroyed while pending
    report.duration = _monotonic() - started
    for path in directory.glob("*.start"):
        with contextlib.suppress(OSError, ValueError):
            report.pids.add(json.loads(path.read_text())["pid"])
    _kill_leftovers(report, directory)
    shutil.rmtree(directory, ignore_errors=True)
    if not report.abandoned:
        for text in report.loop_errors:
            report.fail("stderr", f"the loop's exception handler was called: {text}")
        for text in report.logged:
            report.fail("stderr", f"logged: {text}")
        for text in report.warned:
            report.fail("stderr", f"warning: {text}")
        for text in report.unraisable:
            report.fail("stderr", f"unraisable: {text}")
    return report


def _stack_of(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or 0)
    if frame is None:
        return "(no stack)"
    return "where it is:\n" + "".join(traceback.format_stack(frame)[-8:])


def _kill_leftovers(report: Report, directory: Path) -> None:
    """Kill worker processes that still run one of this scenario's jobs (hung ones), or all of
    this scenario's workers if it was abandoned. Only pids the scenario's own handlers wrote."""
    for path in directory.glob("*.start"):
        with contextlib.suppress(OSError, ValueError):
            pid = json.loads(path.read_text())["pid"]
            if report.abandoned or not path.with_suffix(".end").exists():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


@dataclass
class CallState:
    start: float = 0.0
    end: float = 0.0
    loop_running_at_end: list[str] = field(default_factory=list)
    loop_running_after_close: list[str] = field(default_factory=list)
    threads_running_at_end: set[str] = field(default_factory=set)
    cancelling_at_return: int = 0
    returned: bool = False
    seen: list[tuple[str, Any]] = field(default_factory=list)
    closed_early: bool = False
    stream_result_error: str | None = None
    cancel_fired: bool = False  # task_cancel or aclose went off while the call ran
    aclose_task: asyncio.Task[None] | None = None


def hold_time(unit: Unit, effective: float, cancel_at: float) -> float:
    """An upper bound of how long *unit* keeps its slot, for the call's deadline."""
    b = unit.behaviour
    if unit.kind == "process":
        natural = {"proc_hang": 1000.0, "proc_crash": 1.0}.get(b, unit.d + 0.05)
        return min(natural, effective + 0.2)
    if unit.kind == "thread":
        return unit.d + 0.02
    natural = {"hang": 1000.0, "nested": 0.4}.get(b, unit.d + unit.f + 0.01)
    return min(natural, effective + unit.f + 0.05, cancel_at + unit.f + 0.05)


def expected_duration(scenario: Scenario) -> float:
    cancel_at = scenario.cancel.at if scenario.cancel.kind in (
        "wait_for", "timeout", "task_cancel", "aclose") else math.inf
    total = sum(hold_time(u, scenario.effective_timeout, cancel_at)
                for b in scenario.branches for u in b.units)
    return min(total, 60.0) + (0.5 if scenario.processes else 0.1)


# Past its expected end plus this, a call is abandoned as hung.
SOFT_MARGIN = float(os.environ.get("CX_CONFORMANCE_SOFT", "6"))


async def _bounded(awaitable: Any, bound: float) -> tuple[bool, Any]:
    """Wait at most *bound* seconds without cancelling what is waited for: (done, task)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=bound)
    return bool(done), task


async def _play(scenario: Scenario, report: Report, directory: Path) -> None:
    loop = asyncio.get_running_loop()
    tracker = Tracker()
    notes: list[tuple[str, str]] = []
    rt = cxlang.Runtime(max_concurrency=scenario.runtime_cap, max_threads=scenario.max_threads,
                        max_processes=2 if scenario.processes else None,
                        default_timeout=scenario.default_timeout)
    plan: dict[str, Any] = {}
    for branch in scenario.branches:
        for unit in branch.units:
            if unit.kind == "process":
                plan[f"{branch.event}/{unit.behaviour}"] = {"d": unit.d, "value": unit.value}
    subscribe_all = [(b.event, u) for b in scenario.branches for u in b.units]
    subscribe_all += [(b.event, u) for unit in scenario.units() for b in unit.nested
                      for u in b.units]
    for event, unit in subscribe_all:
        rt.on(event, make_handler(unit, tracker, rt, notes),
              inline=unit.kind in ("inline_coro", "inline_def"),
              cpu_bound=unit.kind == "process")
    health = Unit("health", "task", "return_now")
    rt.on("health.check", make_handler(health, tracker, rt, notes))
    if scenario.processes:
        rt.on("health.process", conformance_handlers.proc_return, cpu_bound=True)
        warm_up = getattr(rt.pool, "warm_up_processes", None)
        if warm_up is not None:
            warm_up()
    payload = {"conformance": {"dir": str(directory), "plan": plan}}

    state = CallState()
    before = asyncio.all_tasks()
    call_task = loop.create_task(_call(scenario, rt, payload, tracker, state))
    ours: set[asyncio.Task[Any]] = {call_task}
    timer = None
    if scenario.cancel.kind == "task_cancel":
        def cancel_the_call() -> None:
            state.cancel_fired = not call_task.done()
            call_task.cancel()
        timer = loop.call_later(scenario.cancel.at, cancel_the_call)
    elif scenario.cancel.kind == "aclose":
        def close_the_runtime() -> None:
            state.cancel_fired = not call_task.done()
            state.aclose_task = loop.create_task(_close(rt, tracker, state))
            ours.add(state.aclose_task)
        timer = loop.call_later(scenario.cancel.at, close_the_runtime)

    expected = expected_duration(scenario)
    done, _ = await _bounded(call_task, expected * 1.5 + SOFT_MARGIN)
    if not done:
        report.abandoned = True
        running = [r.uid for r in tracker.snapshot() if r.end is None]
        report.fail("hang", f"the call had not ended {expected * 1.5 + SOFT_MARGIN:.1f} s "
                            f"after it started (expected within {expected:.2f} s); handlers "
                            f"still running: {running}; pool.in_use={rt.pool.in_use}")
        return
    elapsed = state.end - state.start
    if elapsed > expected * 1.5 + 1.0:
        report.fail("late", f"the call took {elapsed:.2f} s, expected at most {expected:.2f} s")
    if timer is not None:
        timer.cancel()  # the call ended first: close at the end as usual
    closed = state.aclose_task is not None  # during the call or just after it

    # What the call gave back.
    result: Any = None
    exc: BaseException | None = None
    if call_task.cancelled():
        exc = asyncio.CancelledError()
    elif call_task.exception() is not None:
        exc = call_task.exception()
    else:
        result = call_task.result()

    # Threads and process jobs that outlive the call: wait for their real end.
    thread_bound = max((u.d for u in scenario.units() if u.kind in ("thread", "process")),
                       default=0) + 2.0
    until = _monotonic() + thread_bound
    while _monotonic() < until:
        runs = tracker.snapshot() + load_process_runs(directory, scenario)
        if all(r.end is not None for r in runs
               if r.kind == "thread" or (r.kind == "process" and not _is_hang(scenario, r)
                                         and r.pid is not None and _alive(r.pid))):
            break
        await asyncio.sleep(0.005)
    # The loop hears of those ends (a thread's end comes through call_soon_threadsafe).
    if any(u.kind in ("thread", "process") for u in scenario.units()):
        await asyncio.sleep(0.02)
    for _ in range(3):
        await asyncio.sleep(0)
    if any(r.kind == "thread" and r.end is None for r in tracker.snapshot()):
        report.fail("thread", "a thread handler was still running "
                              f"{thread_bound:.1f} s after the call ended")

    hung_process = any(_is_hang(scenario, r) for r in load_process_runs(directory, scenario))
    if not closed and not hung_process and rt.pool.in_use != 0:
        report.fail("budget-leak", f"rt.pool.in_use == {rt.pool.in_use} after the call and "
                                   "every thread ended (expected 0)")
    left = [t for t in asyncio.all_tasks() if t not in before and t not in ours
            and not t.done()]
    if left:
        report.fail("task-leak", f"{len(left)} task(s) left behind: "
                                 f"{[t.get_coro() for t in left][:4]}")

    # The runtime still works: a small call after the scenario's call.
    if not closed:
        params = {"check": "health.check"}
        if scenario.processes:
            params["process"] = "health.process"
        health_call = rt.parallel(params, {"conformance": {"dir": str(directory), "plan": {}}},
                                  timeout=math.inf)
        done, task = await _bounded(health_call, 10.0 if scenario.processes else 3.0)
        if not done:
            report.abandoned = True
            report.fail("follow-up-hang", "a follow-up call with one quick handler did not end "
                        f"(pool.in_use={rt.pool.in_use}, budget {scenario.runtime_cap})")
            return
        if task.exception() is not None:
            report.fail("follow-up", f"a follow-up call raised {task.exception()!r}")
        else:
            follow = task.result()
            if follow.failures:
                report.fail("follow-up", f"a follow-up call failed: {follow.failures}")

    # Close the runtime (or wait for the close the scenario started).
    closer = state.aclose_task if state.aclose_task is not None else \
        _close(rt, tracker, state)
    done, task = await _bounded(closer, 10.0)
    if not done:
        report.abandoned = True
        report.fail("aclose-hang", "rt.aclose() had not returned after 10 s")
        return
    if task.exception() is not None:
        report.fail("aclose", f"rt.aclose() raised {task.exception()!r}")
    if scenario.cancel.kind == "aclose":
        after = rt.parallel({"check": "health.check"}, timeout=0.5)
        done, task = await _bounded(after, 3.0)
        if not done:
            report.abandoned = True
            report.fail("aclose", "rt.parallel after rt.aclose() did not end")
            return
        if task.exception() is None or not isinstance(task.exception(), cxlang.RuntimeClosed):
            got = task.exception() if task.exception() is not None else task.result()
            report.fail("aclose", f"rt.parallel after rt.aclose() gave {got!r:.200}, "
                                  "expected RuntimeClosed")
    process_runs = load_process_runs(directory, scenario)
    for r in process_runs:
        if r.end is None and r.pid is not None and _alive(r.pid):
            report.fail("process-leak", f"process handler {r.uid} (pid {r.pid}) still runs "
                                        "after rt.aclose() returned")

    for tag, message in notes:
        report.fail(tag, message)
    runs = tracker.snapshot() + process_runs
    check(scenario, report, state, runs, result, exc)


async def _close(rt: cxlang.Runtime, tracker: Tracker, state: CallState) -> None:
    await rt.aclose()
    state.loop_running_after_close = [r.uid for r in tracker.snapshot()
                                      if r.end is None and r.kind in LOOP_KINDS]


def _is_hang(scenario: Scenario, run: Run) -> bool:
    return run.kind == "process" and run.end is None and any(
        u.uid == run.uid and u.behaviour == "proc_hang" for u in scenario.units())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def _call(scenario: Scenario, rt: cxlang.Runtime, payload: dict[str, Any],
                tracker: Tracker, state: CallState) -> Any:
    state.start = _monotonic()
    try:
        if scenario.cancel.kind == "wait_for":
            return await asyncio.wait_for(_call_body(scenario, rt, payload, state),
                                          scenario.cancel.at)
        if scenario.cancel.kind == "timeout":
            async with asyncio.timeout(scenario.cancel.at):
                return await _call_body(scenario, rt, payload, state)
        return await _call_body(scenario, rt, payload, state)
    finally:
        state.end = _monotonic()
        for r in tracker.snapshot():
            if r.end is None and r.kind in LOOP_KINDS:
                state.loop_running_at_end.append(r.uid)
            elif r.end is None and r.kind == "thread":
                state.threads_running_at_end.add(r.uid)


async def _call_body(scenario: Scenario, rt: cxlang.Runtime, payload: dict[str, Any],
                     state: CallState) -> Any:
    params = {b.name: b.event for b in scenario.branches}
    options: dict[str, Any] = {"timeout": scenario.timeout,
                               "max_concurrency": scenario.call_cap,
                               "fail_fast": scenario.fail_fast}
    if scenario.api == "parallel":
        res = await rt.parallel(params, payload, **options)
        state.cancelling_at_return = _cancelling()
        state.returned = True
        return res
    stream = rt.as_completed(params, payload, **options)
    async with stream:
        async for name, outcome in stream:
            state.seen.append((name, outcome))
            if scenario.cancel.kind == "stream_close" and len(state.seen) >= scenario.cancel.after:
                state.closed_early = True
                break
    state.cancelling_at_return = _cancelling()
    state.returned = True
    try:
        return stream.result
    except RuntimeError as exc:
        if not state.closed_early:
            raise
        state.stream_result_error = str(exc)
        return None


def _cancelling() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


# Checking ----------------------------------------------------------------------------------


def _boom_in(exc: BaseException | None) -> bool:
    if isinstance(exc, Boom):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_boom_in(e) for e in exc.exceptions)
    return False


def check(scenario: Scenario, report: Report, state: CallState, runs: list[Run], result: Any,
          exc: BaseException | None) -> None:
    """Compare what the call reported with what the handlers did."""
    fail = report.fail
    by_uid: dict[str, list[Run]] = {}
    for r in runs:
        by_uid.setdefault(r.uid, []).append(r)
    for uid, its_runs in by_uid.items():
        if len(its_runs) > 1 and uid != "health":
            fail("twice", f"handler {uid} ran {len(its_runs)} times")
    first = {uid: rs[0] for uid, rs in by_uid.items()}
    units = list(scenario.units())

    # No loop handler outlives its call; none is closed instead of cancelled.
    if state.loop_running_at_end:
        fail("outlived", f"handlers still running when the call ended: "
                         f"{state.loop_running_at_end}")
    if state.loop_running_after_close:
        fail("outlived-close", f"handlers still running when rt.aclose() returned: "
                               f"{state.loop_running_after_close}")
    for r in runs:
        if r.closed:
            fail("closed", f"handler {r.uid} was closed (GeneratorExit) instead of cancelled: "
                           "its `except CancelledError` never ran")

    # The cancel flag: set for a coroutine that the runtime cancelled.
    if HAS_CANCEL_FLAG:
        for r in runs:
            if r.kind in COROUTINE_KINDS and r.saw_cancel and not r.saw_flag:
                fail("cancel-flag", f"handler {r.uid} was cancelled but "
                                    "current_context().cancelled was False in its except")
        for unit in units:
            r = first.get(unit.uid)
            # Its call had given up on it while it ran: it polls the flag every 5 ms.
            if unit.behaviour == "coop" and r is not None and not r.saw_flag and \
                    unit.uid in state.threads_running_at_end and \
                    r.end is not None and r.end - state.end > 0.25:
                fail("cancel-flag", f"thread handler {unit.uid} ran on "
                                    f"{r.end - state.end:.2f} s after its call ended without "
                                    "ever seeing current_context().cancelled")

    # How the call ended.
    cancel = scenario.cancel.kind
    boom_loop = any(r.how == "boom" and r.kind in LOOP_KINDS for r in runs)
    boom_any = any(r.how == "boom" for r in runs)
    caller_cancel = cancel in ("wait_for", "timeout") or (
        cancel == "task_cancel" and state.cancel_fired)
    closing = cancel == "aclose" and state.cancel_fired
    if exc is not None:
        allowed = False
        if _boom_in(exc):
            allowed = boom_any
        elif isinstance(exc, TimeoutError):
            allowed = cancel in ("wait_for", "timeout")
        elif isinstance(exc, asyncio.CancelledError):
            allowed = cancel == "task_cancel" and state.cancel_fired
        elif isinstance(exc, cxlang.RuntimeClosed):
            allowed = closing
        if not allowed:
            tag = "unasked-cancel" if isinstance(exc, asyncio.CancelledError) else \
                "boom" if _boom_in(exc) else "raised"
            fail(tag, "the call raised " + "".join(
                traceback.format_exception(exc)).strip()[-1500:])
        return
    if state.cancelling_at_return:
        fail("swallowed-cancel", "the call returned normally although its task was being "
                                 f"cancelled (cancelling()={state.cancelling_at_return})")
    if boom_loop:
        fail("boom", "a handler raised Boom (a BaseException) but the call returned a result "
                     "instead of propagating it")
    if cancel == "task_cancel" and state.cancel_fired:
        fail("swallowed-cancel", "the caller's task was cancelled during the call, which "
                                 "returned normally")
    if caller_cancel and cancel in ("wait_for", "timeout") and \
            state.end - state.start > scenario.cancel.at + 2.0:
        fail("late", f"the caller's {cancel} of {scenario.cancel.at:.3f} s ended the call only "
                     f"after {state.end - state.start:.2f} s")

    outcomes = None if result is None else list(result.outcomes)
    names = [b.name for b in scenario.branches]
    if scenario.api == "as_completed":
        seen_names = [name for name, _ in state.seen]
        if len(set(seen_names)) != len(seen_names):
            fail("exactly-once", f"the stream gave a branch twice: {seen_names}")
        if not state.closed_early and sorted(seen_names) != sorted(names):
            fail("exactly-once", f"the stream gave {seen_names}, expected each of {names}")
        if outcomes is not None:
            final = {o.name: o for o in outcomes}
            for name, outcome in state.seen:
                mine = final.get(name)
                if mine is not None and (mine.failure != outcome.failure
                                         or (mine.failure is None
                                             and mine.value != outcome.value)):
                    fail("inconsistent", f"the stream gave {outcome!r} for {name}, its result "
                                         f"{mine!r}")
    if outcomes is None:
        return
    got = [o.name for o in outcomes]
    if got != names:
        fail("exactly-once", f"outcomes {got}, expected each branch once: {names}")

    # Was a fail-fast stop (or a close) possible? Only a branch's own failure starts one.
    own_failure = False
    for outcome in outcomes:
        elements = outcome.value if isinstance(outcome.value, list) else [outcome.failure]
        for element in elements:
            if isinstance(element, cxlang.Failure) and element.kind in (
                    "error", "timeout", "no_handler"):
                own_failure = True
    own_failure = own_failure or any(
        u.behaviour == "cancel_now" and u.uid in first for u in units)
    stop = (scenario.fail_fast and own_failure) or closing or state.closed_early
    crash = any(r.how == "crashed" for r in runs)
    context = _Expect(scenario, first, stop, crash, closing, state)

    for branch, outcome in zip(scenario.branches, outcomes, strict=False):
        if outcome.name != branch.name:
            continue
        if not branch.units:
            if outcome.failure is None or outcome.failure.kind != "no_handler":
                fail("wrong-outcome", f"{branch.name} has no subscriber: {outcome!r}")
            continue
        if len(branch.units) == 1:
            element: Any = outcome.failure if outcome.failure is not None else _Ok(outcome.value)
            context.check(branch.units[0], element, report)
            if outcome.failure is None and result.payload.get(branch.name) != outcome.value:
                fail("payload", f"payload[{branch.name!r}] is {result.payload.get(branch.name)!r}"
                                f", its outcome {outcome!r}")
            continue
        values = outcome.value
        if isinstance(values, list) and len(values) == len(branch.units):
            for unit, value in zip(branch.units, values, strict=True):
                context.check(unit, value if isinstance(value, cxlang.Failure) else _Ok(value),
                              report)
            if outcome.failure is not None and not any(
                    isinstance(v, cxlang.Failure) for v in values):
                fail("wrong-outcome", f"{branch.name} failed with {outcome.failure!r} but every "
                                      f"one of its handlers succeeded: {values!r}")
        else:
            succeeded = [u.uid for u in branch.units if context.must_succeed(u)]
            if succeeded:
                fail("lost", f"{branch.name} has {len(branch.units)} subscribers and "
                             f"{succeeded} returned, but its value is {values!r} "
                             f"({outcome.failure!r}): their results are lost")
            elif outcome.failure is None:
                fail("wrong-outcome", f"{branch.name}: value {values!r} is not one per "
                                      "subscriber")

    # Caps, threads included.
    _check_caps(scenario, report, runs)


class _Ok:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"value {self.value!r}"


class _Expect:
    """Which outcomes each unit may have, given what it did and what could cancel it."""

    def __init__(self, scenario: Scenario, runs: dict[str, Run], stop: bool, crash: bool,
                 closing: bool, state: CallState) -> None:
        self.scenario = scenario
        self.runs = runs
        self.stop = stop
        self.crash = crash
        self.closing = closing
        self.state = state
        self.timed = scenario.effective_timeout != math.inf

    def must_succeed(self, unit: Unit) -> bool:
        ok, _ = self.allowed(unit)
        run = self.runs.get(unit.uid)
        return bool(ok) and run is not None and run.how == "returned"

    def allowed(self, unit: Unit) -> tuple[set[Any], set[str]]:
        run = self.runs.get(unit.uid)
        how = None if run is None else run.how
        stop, timed = self.stop, self.timed
        cancels = ({"timeout"} if timed else set()) | ({"cancelled"} if stop else set())
        if self.closing:
            cancels |= {"cancelled", "error"}
        ok: set[Any] = set()
        kinds: set[str] = set()
        if unit.kind in LOOP_KINDS:
            if run is None or how is None or how == "closed":
                kinds |= cancels
            elif how == "returned" and not run.saw_cancel:
                ok.add(run.value)
            elif how == "returned":  # swallowed its cancellation
                kinds |= cancels
                if stop:
                    ok.add(run.value)
            elif how == "cancelled" and unit.behaviour == "cancel_now":
                kinds |= {"cancelled", "error"}
            elif how == "cancelled":
                kinds |= cancels
            elif how in ("raised", "badstr"):
                kinds.add("error")
            if unit.behaviour == "nested" and "timeout" in kinds:
                kinds.discard("timeout")  # its work takes a fraction of its timeout
            return ok, kinds
        if unit.kind == "thread":
            kinds |= cancels
            if unit.uid in self.state.threads_running_at_end:
                return ok, kinds
            if run is not None and how == "returned" and not run.saw_flag:
                ok.add(run.value)
            elif how in ("raised", "badstr"):
                kinds.add("error")
            return ok, kinds
        # process
        kinds |= cancels | ({"error"} if self.crash else set())
        if how == "returned":
            ok.add(unit.value)
        elif how in ("raised", "crashed"):
            kinds.add("error")
        return ok, kinds

    def check(self, unit: Unit, element: Any, report: Report) -> None:
        ok, kinds = self.allowed(unit)
        run = self.runs.get(unit.uid)
        did = "never started" if run is None else f"ended: {run.how}" if run.how else \
            "was still running"
        if run is not None and run.saw_cancel:
            did += " (after seeing CancelledError)"
        if isinstance(element, _Ok):
            if element.value not in ok:
                tag = "swallowed-timeout" if run is not None and run.saw_cancel else \
                    "wrong-outcome"
                report.fail(tag, f"{unit.describe()} {did}, reported {element!r}; allowed: "
                                 f"values {sorted(map(repr, ok))}, failures {sorted(kinds)}")
            return
        failure: cxlang.Failure = element
        if failure.kind not in kinds:
            tag = "wrong-outcome"
            if unit.kind == "process" and unit.behaviour == "proc_hang":
                tag = "process"
            elif unit.behaviour == "nested" and failure.kind == "timeout":
                tag = "nested-deadlock"
            elif run is None and not kinds and not ok:
                tag = "lost"
            report.fail(tag, f"{unit.describe()} {did}, reported {failure.kind} "
                             f"({failure.message!r:.200}); allowed: values "
                             f"{sorted(map(repr, ok))}, failures {sorted(kinds)}")
        if unit.kind == "thread" and unit.uid in self.state.threads_running_at_end and \
                "running" not in failure.message:
            report.fail("thread-message", f"{unit.describe()} was still running when the call "
                                          f"ended, but its failure says {failure.message!r}")


def _check_caps(scenario: Scenario, report: Report, runs: list[Run]) -> None:
    """The most handlers ever running at once, from their own start and end readings."""
    def peak(intervals: list[tuple[float, float]]) -> int:
        points = [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals]
        points.sort(key=lambda p: (p[0], p[1]))  # at a tie, an end comes before a start
        now = best = 0
        for _, step in points:
            now += step
            best = max(best, now)
        return best

    def span(r: Run) -> float:
        return math.inf if r.end is None else r.end

    # A process job with no recorded end hung, crashed or was terminated (the runtime may kill
    # a cancelled job's worker): when it really ended is unknown, so it is left out.
    counted = [r for r in runs if not (r.kind == "process" and r.end is None)]
    if scenario.runtime_cap is not None:
        intervals: list[tuple[float, float]] = []
        for r in counted:
            edges = [r.start]
            for lend in r.lends:  # a handler waiting for its nested call lends its slot
                edges += [lend[0], lend[1]]
            edges.append(span(r))
            intervals += [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]
        top = peak(intervals)
        if top > scenario.runtime_cap:
            report.fail("cap", f"{top} handlers ran at once; Runtime(max_concurrency="
                               f"{scenario.runtime_cap})")
    main_units = {u.uid for b in scenario.branches for u in b.units}
    if scenario.call_cap is not None:
        calls: dict[str | None, list[tuple[float, float]]] = {}
        for r in counted:
            if r.uid in main_units:
                calls.setdefault(r.call, []).append((r.start, span(r)))
        if len(calls) > 1:
            report.fail("context", f"the call's handlers saw {len(calls)} execution ids")
        for spans in calls.values():
            top = peak(spans)
            if top > scenario.call_cap:
                report.fail("cap", f"{top} handlers of the call ran at once; "
                                   f"max_concurrency={scenario.call_cap}")
    if scenario.max_threads is not None:
        top = peak([(r.start, span(r)) for r in runs if r.kind == "thread"])
        if top > scenario.max_threads:
            report.fail("cap", f"{top} thread handlers ran at once; max_threads="
                               f"{scenario.max_threads}")
