"""HandlerPool: one concurrency budget per runtime, and the threads and processes behind it.

The budget is a counter, not a semaphore: the coordinator asks for a slot synchronously and only
a call that finds the budget spent registers a waiter, so the common path takes no lock, creates
no future and never yields to the loop. Slots are handed to waiters in FIFO order.

Plain functions run on the pool's threads (the caller's contextvars copied in, so a branch sees
its context), queued through one :class:`~.threads.ThreadLane` per event loop, which runs them
in batches on as few threads as keep every one of them moving. Functions marked ``cpu_bound``
run on its worker processes (the context pickled along; :mod:`.processes`), where cancelling
one terminates its worker and starts another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context
from typing import TYPE_CHECKING, Any

from .context import ExecutionContext, set_context
from .errors import ProcessHandlerError, RuntimeClosed
from .events import Event
from .observe.span import current_span
from .processes import WorkerProcesses
from .threads import HandlerThread, ThreadLane

if TYPE_CHECKING:
    from .handlers import Finished, Subscription
    from .threads import ThreadCall

__all__ = ["HandlerPool"]

_get_running_loop = asyncio.events._get_running_loop
_thread_ident = threading.get_ident  # C functions: no Python call per handler


class HandlerPool:
    """A bounded budget of concurrently running handlers, plus thread and process executors.

    ``max_concurrency=None`` means no bound. ``max_threads`` sizes the thread executor (default:
    enough for blocking I/O handlers, at least 32); ``max_processes`` the process executor
    (default: one per core). Executors start lazily, on first use.
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        *,
        max_threads: int | None = None,
        max_processes: int | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.in_use = 0
        self._waiters: deque[Callable[[], None]] = deque()
        self.max_threads = max_threads or max(32, max_concurrency or 0)
        self._max_processes = max_processes or os.cpu_count() or 1
        self._threads: ThreadPoolExecutor | None = None
        self._lane: ThreadLane | None = None  # of the loop that last ran a thread handler
        self._closed = False
        self._processes: WorkerProcesses | None = None

    # The budget ------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        if self.max_concurrency is not None and (
            self.in_use >= self.max_concurrency or self._waiters
        ):
            return False
        self.in_use += 1
        return True

    def wait_for_slot(self, on_granted: Callable[[], None], *, first: bool = False) -> None:
        """Call *on_granted* (soon, from the loop) once a slot is reserved for the caller;
        *first*: ahead of every other waiter (a handler resuming work it had begun).

        The callee owns that slot and must :meth:`release` it, even if it no longer needs it.
        """
        if first:
            self._waiters.appendleft(on_granted)
        else:
            self._waiters.append(on_granted)

    def release(self) -> None:
        if self._waiters:
            # Hand the slot straight over; call_soon keeps deep queues from recursing.
            asyncio.get_running_loop().call_soon(self._waiters.popleft())
        else:
            self.in_use -= 1

    # The executors ---------------------------------------------------------------------------

    def run_in_thread(
        self,
        context: Context,
        call: ThreadCall,
        sub: Subscription,
        event: Event,
        execution: ExecutionContext,
        finished: Finished,
    ) -> HandlerThread:
        """Run ``call(sub, event, execution)`` on one of the pool's threads, in *context*;
        *finished* hears how it ends."""
        lane = self._lane
        # The lane's loop, running on the thread that made the lane, is the running loop here.
        # Asking asyncio for the running loop instead costs a system call (getpid) per handler.
        if lane is None or lane.thread != _thread_ident() or not lane.loop.is_running():
            lane = self._lane_of_running_loop()
        return lane.run(context, call, sub, event, execution, finished)

    def _lane_of_running_loop(self) -> ThreadLane:
        """The running loop's lane: the current one if that loop now runs on another thread,
        else a new one (a new loop)."""
        lane = self._lane
        if lane is not None and lane.loop is _get_running_loop():
            lane.thread = _thread_ident()  # the same loop, run again on another thread
            return lane
        if self._closed:
            raise RuntimeClosed("cannot start a thread handler: the runtime is closed")
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.max_threads, thread_name_prefix="cx-handler")
        self._lane = ThreadLane(self._threads, self.max_threads)
        return self._lane

    def run_in_process(
        self, fn: Callable[[Event], Any], name: str, event: Event, context: ExecutionContext
    ) -> asyncio.Future[Any]:
        """Run *fn* (the handler called *name*) in a worker process; cancelling the future
        terminates and replaces it."""
        if self._closed:
            raise RuntimeClosed("cannot start a cpu_bound handler: the runtime is closed")
        span = current_span()  # the handler's span, when traced: its context travels along
        trace = None if span is None else span.carrier()
        try:
            job = pickle.dumps((fn, name, event, context, trace),
                               protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ProcessHandlerError(
                f"cpu_bound handler {name!r} cannot be sent to a worker process: {exc}. "
                "A cpu_bound handler must be a module-level function and its payload must be "
                "picklable (plain dicts, lists, strings and numbers are)."
            ) from exc
        return self._worker_processes().submit(job, f"cpu_bound handler {name!r}")

    def _worker_processes(self) -> WorkerProcesses:
        if self._processes is None:
            self._processes = WorkerProcesses(self._max_processes, run_pickled_job)
        return self._processes

    def warm_up_processes(self) -> None:
        """Start every worker process now, so the first calls do not pay for start-up."""
        self._worker_processes().start()

    def shutdown(self) -> None:
        """Stop the executors and refuse new work; running thread work is left to finish on
        its own (a thread cannot be interrupted)."""
        self._closed = True
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            self._processes.shutdown()  # terminates them; reaped in the background
            self._processes = None


def run_pickled_job(job: bytes) -> Any:
    """Worker-process side: restore the context, run the handler, return a picklable result."""
    fn, name, event, context, trace = pickle.loads(job)
    set_context(context)
    with trace if trace is not None else contextlib.nullcontext():
        result = fn(event)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    try:
        pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ProcessHandlerError(
            f"cpu_bound handler {name!r} returned a value that cannot be sent back: {exc}"
        ) from None
    return result

