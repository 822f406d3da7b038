"""Plain ``def`` handlers on the pool's threads, through one lane per event loop.

A thread cannot be interrupted. So cancelling a handler (its timeout, fail-fast, its caller
cancelled, the runtime closed) does what can be done and says exactly that: a handler whose
thread has not started yet is dropped and never runs; one that is running is told through
its context (``current_context().cancelled``, :func:`~cxlang.runtime.context.check_cancelled`),
is reported cancelled at once, and its result is dropped when it ends. Until then it still
uses a thread and, in a parallel call, its concurrency slot: whoever holds the slot learns of
the real end through :meth:`HandlerThread.when_ended`.

Handing every handler to a thread job of its own, and every end back to the loop on its own,
costs a thread wake-up and a loop wake-up per handler. A :class:`ThreadLane` queues them
instead: the handlers started in one turn of the loop reach a worker thread (a *drainer*)
together, it runs them one after another, and it hands their ends back in batches: one loop
wake-up for every end that came in since the previous one was delivered.

So that a slow handler never holds back the ones queued behind it for long, the loop checks
the lane every :data:`SPILL_AFTER` seconds while handlers wait in it, and starts a drainer per
waiting handler, up to the pool's thread limit, when

* every drainer is still on the handler it had at the previous check (slow handlers, whatever
  they do), or
* the process spent less than a quarter of the interval on a CPU: the drainers wait (on I/O,
  a sleep, a lock), and more threads help. A busy process would only pass the GIL around more
  threads, so handlers that compute stay on as few drainers as keep them moving.

Hence the bound: while fewer than ``max_threads`` drainers run, the lane never goes
``2 * SPILL_AFTER`` without starting a waiting handler, nor about ``SPILL_AFTER`` behind
handlers that wait on I/O (plus, either way, the loop's lateness in running a timer). A
handler's wait is that, plus the time the quick handlers queued before it take.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from contextvars import Context
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import ExecutionContext
    from .events import Event
    from .handlers import Finished, Subscription

ThreadCall = Callable[["Subscription", "Event", "ExecutionContext"], Any]
"""What a drainer calls: a handler's function, with its execution context installed."""

__all__ = ["SPILL_AFTER", "HandlerThread", "ThreadCall", "ThreadLane"]

_SPENT = Context()  # what a handler's context is replaced by once it ran
_new_object = object.__new__

# Twice the interpreter's switch interval (5 ms by default): a drainer that only waits for the
# GIL while the loop runs gets it within one interval, so it never looks stuck to a check.
SPILL_AFTER = max(0.01, 2 * sys.getswitchinterval())
"""Seconds between two checks of a lane's drainers while handlers wait in it."""


class HandlerThread:
    """One run of a thread handler, from submission to the end of its thread.

    *finished* is told exactly once how the handler ended, or that it was cancelled.
    ``started`` and ``ended`` are set by its drainer, under the lane's lock, so that a cancel
    and the start of the handler never cross. Made by :meth:`ThreadLane.run` only, which sets
    every field.
    """

    __slots__ = ("_after", "_call", "_context", "_error", "_event", "_execution", "_finished",
                 "_lane", "_reported", "_sub", "_value", "ended", "started")

    _lane: ThreadLane
    _context: Context  # the copy it runs in, dropped once it ran
    _call: ThreadCall
    _sub: Subscription
    _event: Event
    _execution: ExecutionContext
    _finished: Finished
    _reported: bool  # finished was told: a handler not started yet never will be
    _after: Callable[[], None] | None  # told when a cancelled, running handler really ends
    started: bool
    ended: bool
    _value: Any  # how its function ended, set by the thread before ``ended``
    _error: BaseException | None

    @property
    def running(self) -> bool:
        """Its function has started and not yet returned."""
        return self.started and not self.ended

    def cancel(self) -> None:
        """Drop it if its thread has not started, else leave it to finish unheard; either way
        *finished* hears now that it was cancelled."""
        if self._reported:
            return
        with self._lane.lock:
            self._reported = True
        self._finished(None, asyncio.CancelledError())

    def why_not_started(self) -> str:
        """Why a handler cancelled before its thread started had not started, for its
        timeout's message: all the threads were busy, or it was still queued behind others
        on one (a timeout shorter than the lane's checks leaves it no time to spill)."""
        if self._lane.full:
            return (f"every one of the {self._lane.max_threads} handler threads (max_threads) "
                    "was busy")
        return (f"it was queued behind other handlers on a thread, and a thread of its own "
                f"comes only after {SPILL_AFTER * 1000:g} ms to {2 * SPILL_AFTER * 1000:g} ms "
                "of waiting")

    def when_ended(self, callback: Callable[[], None]) -> None:
        """Call *callback* on the loop when a cancelled handler's thread really ends (at once
        if it already has)."""
        with self._lane.lock:
            if self.started and not self.ended:
                self._after = callback
                return
        callback()


class _Drainer:
    """One worker thread of a lane: the handler it runs now, and how many it has taken."""

    __slots__ = ("job", "seen", "taken")

    def __init__(self) -> None:
        self.job: HandlerThread | None = None
        self.taken = 0
        self.seen = 0  # ``taken`` at the loop's previous check


class ThreadLane:
    """The thread handlers of one event loop: queued, run by drainers, ended in batches.

    The loop's side (:meth:`run`, the spill check, the delivery of ends) and the drainers
    share the queue, the ends and the drainers' list under :attr:`lock`.
    """

    def __init__(self, executor: Executor, max_threads: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()  # the thread its loop runs on
        self.lock = threading.Lock()
        self._executor = executor
        self.max_threads = max_threads
        self._arriving: list[HandlerThread] = []  # queued in this turn of the loop
        self._hand_over_due = False
        self._waiting: deque[HandlerThread] = deque()  # handed over to the drainers
        self._drainers: list[_Drainer] = []
        self._ends: list[HandlerThread] = []  # ended, not yet reported
        self._delivery_due = False  # a delivery of the ends is scheduled on the loop
        self._check: asyncio.TimerHandle | None = None
        self._checked_at = self._cpu_at = 0.0  # the clocks at the previous check
        self._closed = False

    @property
    def full(self) -> bool:
        """Every thread the pool allows runs handlers of this lane."""
        return len(self._drainers) >= self.max_threads

    def run(
        self,
        context: Context,
        call: ThreadCall,
        sub: Subscription,
        event: Event,
        execution: ExecutionContext,
        finished: Finished,
    ) -> HandlerThread:
        """Queue ``call(sub, event, execution)``, to run in *context* on a drainer; *finished*
        hears how it ends.

        The handlers queued in one turn of the loop (a drain of the bus, a round of a parallel
        call) reach the drainers together, at the end of that turn."""
        # Made without a class call: on 3.11 its seven arguments through type.__call__ and
        # __init__ cost a quarter of what queueing a handler costs, once per handler.
        job = _new_object(HandlerThread)
        job._lane = self
        job._context = context
        job._call = call
        job._sub = sub
        job._event = event
        job._execution = execution
        job._finished = finished
        job._reported = job.started = job.ended = False
        job._after = job._value = job._error = None
        self._arriving.append(job)
        if not self._hand_over_due:
            self._hand_over_due = True
            self.loop.call_soon(self._hand_over)
        return job

    def _hand_over(self) -> None:
        """Queue what arrived in this turn of the loop; start a drainer if none runs."""
        self._hand_over_due = False
        arrived, self._arriving = self._arriving, []
        start: _Drainer | None = None
        with self.lock:
            if self._closed:
                return
            self._waiting.extend(arrived)
            if not self._drainers:
                start = _Drainer()
                self._drainers.append(start)
        if start is not None:
            self._executor.submit(self._drain, start)
        if self._check is None:
            self._checked_at, self._cpu_at = time.monotonic(), time.process_time()
            self._check = self.loop.call_later(SPILL_AFTER, self._spill)

    def close(self) -> None:
        """Drop every handler that has not started (none of them is told: the runtime is
        closing, having cancelled what it waits for); running ones finish on their own."""
        self._stop_taking()
        self._arriving.clear()
        if self._check is not None:
            self._check.cancel()
            self._check = None

    # The drainers' side ----------------------------------------------------------------------

    def _drain(self, drainer: _Drainer) -> None:
        """Run queued handlers one after another until none is left (or the lane closes)."""
        # The lock is taken once per handler: acquire and release, as bound methods, cost half
        # of what a with statement does (its __exit__ is a call with three arguments).
        acquire, release = self.lock.acquire, self.lock.release
        waiting = self._waiting
        loop = self.loop
        job: HandlerThread | None = None
        while True:
            deliver = False
            acquire()
            try:
                if job is not None:  # the one just run
                    job.ended = True
                    self._ends.append(job)  # not kept in a local: each delivery swaps it
                    deliver = not self._delivery_due
                    self._delivery_due = True
                    job = None
                if not self._closed:
                    while waiting:
                        job = waiting.popleft()
                        if not job._reported:  # else: cancelled before it started
                            break
                        job = None
                if job is None or loop.is_closed():
                    job = None
                    self._drainers.remove(drainer)
                else:
                    job.started = True
                    drainer.taken += 1
                drainer.job = job
            finally:
                release()
            if deliver:
                try:
                    loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody is left to tell
                    self._stop_taking()
                    job = None
            if job is None:
                return
            # The copied context is dropped once run, not when the end is reported: it and what
            # the run set in it are three objects less per handler for the garbage collector.
            context, job._context = job._context, _SPENT
            try:
                job._value = context.run(job._call, job._sub, job._event, job._execution)
            except BaseException as exc:
                job._error = exc

    def _stop_taking(self) -> None:
        """Drop the handlers not started yet, and let no drainer take another."""
        with self.lock:
            self._closed = True
            self._waiting.clear()

    # The loop's side -------------------------------------------------------------------------

    def _deliver(self) -> None:
        """Report every end the drainers handed over since the last delivery."""
        with self.lock:
            ends, self._ends = self._ends, []
            self._delivery_due = False
        self._report(ends)

    def _report(self, ends: list[HandlerThread]) -> None:
        """Tell each handler's *finished* how it ended; for one already reported cancelled,
        tell whoever waits for its real end (:meth:`HandlerThread.when_ended`)."""
        for i, job in enumerate(ends):
            try:
                if not job._reported:
                    job._reported = True
                    job._finished(job._value, job._error)
                elif job._after is not None:  # it had been cancelled: its slot waits for this
                    after, job._after = job._after, None
                    after()
            except BaseException:
                # As if each end were a callback of its own: the loop reports (or raises)
                # this one, and the rest are still reported.
                self.loop.call_soon(self._report, ends[i + 1:])
                raise

    def _spill(self) -> None:
        """While handlers wait: if every drainer is stuck on one handler, or the drainers
        leave the process mostly idle, start a drainer per waiting handler, up to the thread
        limit (see the module's doc)."""
        now, cpu = time.monotonic(), time.process_time()
        idle = cpu - self._cpu_at < (now - self._checked_at) / 4
        self._checked_at, self._cpu_at = now, cpu
        starting: list[_Drainer] = []
        with self.lock:
            if not self._waiting or self._closed:
                self._check = None
                return
            stuck = True  # every drainer is still on the handler it had at the last check
            for drainer in self._drainers:
                if drainer.job is None or drainer.taken != drainer.seen:
                    stuck = False
                drainer.seen = drainer.taken
            if stuck or idle:
                room = self.max_threads - len(self._drainers)
                starting = [_Drainer() for _ in range(min(room, len(self._waiting)))]
                self._drainers.extend(starting)
        for drainer in starting:
            self._executor.submit(self._drain, drainer)
        self._check = self.loop.call_later(SPILL_AFTER, self._spill)
