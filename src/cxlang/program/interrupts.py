"""Stopping a run whose code keeps the event loop from running: the time and memory limits'
signals.

``asyncio.timeout`` and the memory watchdog's trip both need the event loop to get a turn, and a
CX loop that never waits (``while (true) {}``) never gives it one. A signal gets through: its
handler runs on the main thread between two bytecodes of whatever is running. Raising right
there could leave asyncio's bookkeeping half done (a callback taken off the ready queue and
never run, a task that then never ends) or drop a call the program made but has not awaited
yet ("coroutine ... was never awaited"). So the handler only sets a trace function, which raises
at the start of the program's next source line, or at the back edge of the loop it is in (a
``while (true) {}`` never starts another line): only the program's own code can keep the loop
from its turn, and at those points nothing is half done. The prelude's loops over a value
(writing or comparing one, :data:`~cxlang.compiler.prelude.INTERRUPTIBLE`) are the program's
code for this: a huge value keeps the loop as long, and their lines leave nothing half done.

A late turn is not always a stuck program: a collection of garbage among a flood of suspended
handlers can hold the loop for a few hundred milliseconds. The time limit's alarm therefore
stops the program only when it finds the same frame of the program's code running twice in a
row, :data:`GRACE` apart; if the loop is still going :data:`PATIENCE` past the limit (by the
clock: that collection also holds back the alarms), it is stopped at the program's next line
if the program's code is running (a fan-out that never waits runs in ever new frames of it),
else after its current turn. The memory watchdog's signal comes only after the loop has failed to
act on the limit for a while, and memory may be growing fast: it stops the program at once.

What is raised derives from ``SystemExit``, because asyncio lets ``SystemExit`` and
``KeyboardInterrupt`` out of callbacks and task steps and out of the loop; any other exception
there is logged ("Exception in callback ...") or kept in its task. Just before raising, the run
is stopped on purpose: the program's handlers unsubscribed, every other task cancelled and
asyncio's error reports for the loop turned off, so that closing the loop runs none of the
program's code and prints nothing ("Task was destroyed but it is pending!").
"""

from __future__ import annotations

import asyncio
import contextlib
import dis
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any

from ..compiler.prelude import INTERRUPTIBLE
from ..runtime.limits import LimitExceeded
from .exit_codes import ExitCode
from .host import ProgramHost

__all__ = ["GRACE", "PATIENCE", "Interrupts", "MemoryLimitReached", "RunInterrupted",
           "TimeLimitReached"]

GRACE = 0.25  # past the time limit, the event loop's own timeout gets this long to end the run
PATIENCE = 2.0  # past the time limit, a loop that is only slow gets this long, then is stopped
_BACK_EDGE = dis.opmap["JUMP_BACKWARD"]  # a loop's jump to its next iteration


class RunInterrupted(SystemExit):
    """The run was stopped by a signal; ``code`` is its exit code."""


class TimeLimitReached(RunInterrupted):
    def __init__(self) -> None:
        super().__init__(ExitCode.TIME_LIMIT)
        self.running: list[str] = []  # what was running, in the program's own terms


class MemoryLimitReached(RunInterrupted):
    def __init__(self, limit: LimitExceeded) -> None:
        super().__init__(ExitCode.LIMIT)
        self.limit = limit


class Interrupts:
    """The SIGALRM (time limit) and SIGUSR1 (memory watchdog) handlers of one run: installed
    by :meth:`install` around the event loop, live while :meth:`armed`; they stop the run at
    most once (:attr:`stopped`)."""

    def __init__(self) -> None:
        self.installed = False
        self.stopped: RunInterrupted | None = None
        self._host: ProgramHost | None = None  # set while armed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._codes: frozenset[CodeType] = frozenset()
        self._stoppable: frozenset[CodeType] = frozenset()  # where a line may raise the stop
        self._pending: RunInterrupted | None = None  # raised at the program's next line
        self._seen: FrameType | None = None  # the program's frame running at the last alarm
        self._limit_at = math.inf  # when the time limit ran out (time.monotonic)
        self._memory: LimitExceeded | None = None
        self._lock = threading.Lock()  # the watchdog's thread against install's end
        self._traced: list[FrameType] = []
        self._tracing = False
        self._trace_before: Any = None

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        """Install the handlers for the run, if this is the main thread (the only one that
        receives signals) of a system that has them."""
        if threading.current_thread() is not threading.main_thread() or \
                not hasattr(signal, "setitimer"):
            yield
            return
        previous = {signal.SIGALRM: signal.signal(signal.SIGALRM, self._alarm),
                    signal.SIGUSR1: signal.signal(signal.SIGUSR1, self._memory_signal)}
        self.installed = True
        try:
            yield
        finally:
            self._disarm()
            self.installed = False
            with self._lock:
                pass  # a signal the watchdog sent before this arrives while our handler is in
            for number, handler in previous.items():
                signal.signal(number, handler)

    @contextlib.contextmanager
    def armed(self, host: ProgramHost, timeout: float) -> Iterator[None]:
        """While the program runs: the time limit's alarm (at *timeout* + :data:`GRACE`, then
        every :data:`GRACE`) and the memory watchdog's signal may stop it."""
        if not self.installed:
            yield
            return
        self._loop = asyncio.get_running_loop()
        self._codes = host.codes
        self._stoppable = host.codes | INTERRUPTIBLE  # the prelude's long loops, called by it
        self._host = host
        if math.isfinite(timeout):
            self._limit_at = time.monotonic() + timeout
            signal.setitimer(signal.ITIMER_REAL, timeout + GRACE, GRACE)
        try:
            yield
        finally:
            self._disarm()

    def memory(self, exc: LimitExceeded) -> None:
        """The memory watchdog's interrupt, called on its thread: stop the run even if the loop
        never gets a turn to trip the bus."""
        with self._lock:
            if self._host is None:
                return  # the run is over, or this is not the main thread's run
            self._memory = exc
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def _disarm(self) -> None:
        self._host = None  # first: a signal from here on finds nothing to stop
        if self.installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self._pending = self._seen = None
        self._untrace()

    # Signal handlers (on the main thread, between two bytecodes of anything) -----------------

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._host is None or self.stopped is not None:
            return
        if self._pending is not None:
            self._stop_loop()  # the program ran no line in a whole GRACE: it is not running
            return
        running = self._program_frame(frame)
        if running is not None and running is self._seen:
            self._pending = TimeLimitReached()
            self._trace(frame)
        elif time.monotonic() - self._limit_at > PATIENCE:  # by the clock: a collection of
            # garbage among millions of objects can hold back alarms for seconds
            self._pending = TimeLimitReached()
            if running is None:
                self._stop_loop()
            else:  # the program's code runs on in ever new frames (a fan-out that never waits)
                self._trace(frame)
        else:
            self._seen = running

    def _memory_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._host is None or self.stopped is not None or self._memory is None:
            return
        if self._pending is None:
            self._pending = MemoryLimitReached(self._memory)
            self._trace(frame)
        else:
            self._stop_loop()

    def _program_frame(self, frame: FrameType | None) -> FrameType | None:
        """The innermost frame of the program's own code on the stack, if any."""
        while frame is not None and frame.f_code not in self._codes:
            frame = frame.f_back
        return frame

    def _stop_loop(self) -> None:
        """End the loop after its current turn: what it runs now is not the program's code,
        and a turn ends."""
        host, loop, stop = self._host, self._loop, self._pending
        if host is None or loop is None or stop is None:
            return
        if isinstance(stop, TimeLimitReached):
            stop.running = host.still_running()
        self._stop(host, loop, stop)
        loop.stop()

    # Tracing: raise at the program's next line ----------------------------------------------

    def _trace(self, frame: FrameType | None) -> None:
        self._trace_before = sys.gettrace()
        self._tracing = True
        while frame is not None:  # the program's frames on the stack now
            if frame.f_code in self._stoppable:
                self._follow(frame)
            frame = frame.f_back
        sys.settrace(self._call)  # and those it calls or resumes from now on

    def _follow(self, frame: FrameType) -> None:
        frame.f_trace = self._line
        frame.f_trace_opcodes = True  # to see the back edge of a loop on a single line
        self._traced.append(frame)

    def _call(self, frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code not in self._stoppable:
            return None
        self._follow(frame)
        return self._line

    def _line(self, frame: FrameType, event: str, arg: object) -> Any:
        stop, host, loop = self._pending, self._host, self._loop
        at_a_safe_point = event == "line" or \
            (event == "opcode" and frame.f_code.co_code[frame.f_lasti] == _BACK_EDGE)
        if not at_a_safe_point or stop is None or host is None or loop is None:
            return self._line
        if isinstance(stop, TimeLimitReached):
            line = (self._program_frame(frame) or frame).f_lineno  # the source's, not the prelude's
            stop.running = [f"{host.where(frame)}, computing at line {line} without a "
                            "pause (a loop that never waits?)"]
        self._stop(host, loop, stop)
        raise stop  # Python turns tracing off as this leaves the trace function

    def _untrace(self) -> None:
        if not self._tracing:
            return
        self._tracing = False
        for frame in self._traced:
            frame.f_trace = None
            frame.f_trace_opcodes = False
        self._traced.clear()
        sys.settrace(self._trace_before)  # a debugger's or coverage's, if there was one

    # Stopping --------------------------------------------------------------------------------

    def _stop(self, host: ProgramHost, loop: asyncio.AbstractEventLoop,
              stop: RunInterrupted) -> None:
        """Stop the run on purpose, so that its teardown starts none of its code and prints
        nothing: no handler subscribed, every task but this one cancelled, asyncio's reports
        about tasks ended that way turned off."""
        self.stopped = stop
        self._pending = self._seen = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        loop.set_exception_handler(_quiet)
        host.halt()
        current = asyncio.current_task(loop)
        for task in asyncio.all_tasks(loop):
            if task is not current:
                task.cancel()


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's exception handler for a run stopped on purpose: tasks it cancelled, or that
    were running when it stopped, are expected to end as they do."""
