"""A plain ``def`` handler running on one of the pool's threads.

A thread cannot be interrupted. So cancelling one (its timeout, fail-fast, its caller
cancelled, the runtime closed) does what can be done and says exactly that: a handler whose
thread has not started yet is dropped and never runs; one that is running is told through
its context (``current_context().cancelled``, :func:`~cxlang.runtime.context.check_cancelled`),
is reported cancelled at once, and its result is dropped when it ends. Until then it still
uses a thread and, in a parallel call, its concurrency slot: whoever holds the slot learns of
the real end through :meth:`HandlerThread.when_ended`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextvars import Context
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Event
    from .handlers import Finished

__all__ = ["HandlerThread"]


class HandlerThread:
    """One run of a thread handler, from submission to the end of its thread.

    *finished* is told exactly once how the handler ended, or that it was cancelled.
    """

    __slots__ = ("_after", "_finished", "_lock", "_loop", "_reported", "_work", "ended",
                 "started")

    def __init__(
        self,
        executor: Executor,
        context: Context,
        fn: Callable[[Event], Any],
        event: Event,
        finished: Finished,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._finished = finished
        self._reported = False
        self._after: Callable[[], None] | None = None
        self._lock = threading.Lock()  # started/ended against cancel, across threads
        self.started = False
        self.ended = False
        self._work: Future[None] = executor.submit(context.run, self._run, fn, event)

    @property
    def running(self) -> bool:
        """Its function has started and not yet returned."""
        return self.started and not self.ended

    def _run(self, fn: Callable[[Event], Any], event: Event) -> None:
        """The thread's side: run the handler, hand its end to the loop."""
        with self._lock:
            if self._reported:
                return  # cancelled while waiting for a thread: never runs
            self.started = True
        value: Any = None
        error: BaseException | None = None
        try:
            value = fn(event)
        except BaseException as exc:
            error = exc
        with self._lock:
            self.ended = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
            self._loop.call_soon_threadsafe(self._ended, value, error)

    def _ended(self, value: Any, error: BaseException | None) -> None:
        if not self._reported:
            self._reported = True
            self._finished(value, error)
        elif self._after is not None:  # it had been cancelled: only its slot is waited for
            after, self._after = self._after, None
            after()

    def cancel(self) -> None:
        """Drop it if its thread has not started, else leave it to finish unheard; either way
        *finished* hears now that it was cancelled."""
        if self._reported:
            return
        with self._lock:
            self._reported = True
        self._work.cancel()
        self._finished(None, asyncio.CancelledError())

    def when_ended(self, callback: Callable[[], None]) -> None:
        """Call *callback* on the loop when a cancelled handler's thread really ends (at once
        if it already has)."""
        with self._lock:
            if self.started and not self.ended:
                self._after = callback
                return
        callback()
