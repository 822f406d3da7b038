"""ParallelTaskPool: one concurrency budget per runtime, and the threads and processes behind it.

The budget is a counter, not a semaphore: the coordinator asks for a slot synchronously and only
a call that finds the budget spent registers a waiter, so the common path takes no lock, creates
no future and never yields to the loop. Slots are handed to waiters in FIFO order.

Plain functions run on the pool's threads (the caller's contextvars copied in, so a branch sees
its context), functions marked ``cpu_bound`` on its worker processes (the context pickled along).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextvars import Context
from typing import Any

from .context import ExecutionContext, set_context
from .errors import ProcessHandlerError
from .events import Event
from .observe.span import current_span

__all__ = ["ParallelTaskPool"]


class ParallelTaskPool:
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
        self._max_threads = max_threads or max(32, max_concurrency or 0)
        self._max_processes = max_processes or os.cpu_count() or 1
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None

    # The budget ------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        if self.max_concurrency is not None and (
            self.in_use >= self.max_concurrency or self._waiters
        ):
            return False
        self.in_use += 1
        return True

    def wait_for_slot(self, on_granted: Callable[[], None]) -> None:
        """Call *on_granted* (soon, from the loop) once a slot is reserved for the caller.

        The callee owns that slot and must :meth:`release` it, even if it no longer needs it.
        """
        self._waiters.append(on_granted)

    def release(self) -> None:
        if self._waiters:
            # Hand the slot straight over; call_soon keeps deep queues from recursing.
            asyncio.get_running_loop().call_soon(self._waiters.popleft())
        else:
            self.in_use -= 1

    # The executors ---------------------------------------------------------------------------

    def run_in_thread(
        self, context: Context, fn: Callable[[Event], Any], event: Event
    ) -> asyncio.Future[Any]:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._max_threads, thread_name_prefix="cx-handler")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._threads, context.run, fn, event)

    def run_in_process(
        self, fn: Callable[[Event], Any], event: Event, context: ExecutionContext
    ) -> asyncio.Future[Any]:
        span = current_span()  # the handler's span, when traced: its context travels along
        trace = None if span is None else span.carrier()
        try:
            job = pickle.dumps((fn, event, context, trace), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise ProcessHandlerError(
                f"cpu_bound handler {_describe(fn)} cannot be sent to a worker process: {exc}. "
                "A cpu_bound handler must be a module-level function and its payload must be "
                "picklable (plain dicts, lists, strings and numbers are)."
            ) from exc
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._process_executor(), run_pickled_job, job)

    def _process_executor(self) -> Executor:
        if self._processes is None:
            methods = multiprocessing.get_all_start_methods()
            method = "forkserver" if "forkserver" in methods else "spawn"
            self._processes = ProcessPoolExecutor(
                self._max_processes, mp_context=multiprocessing.get_context(method)
            )
        return self._processes

    def warm_up_processes(self) -> None:
        """Start every worker process now, so the first calls do not pay for start-up."""
        executor = self._process_executor()
        for future in [executor.submit(os.getpid) for _ in range(self._max_processes * 2)]:
            future.result()

    def shutdown(self) -> None:
        """Stop the executors; running thread work is left to finish on its own."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None


def run_pickled_job(job: bytes) -> Any:
    """Worker-process side: restore the context, run the handler, return a picklable result."""
    fn, event, context, trace = pickle.loads(job)
    set_context(context)
    with trace if trace is not None else contextlib.nullcontext():
        result = fn(event)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
    try:
        pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ProcessHandlerError(
            f"cpu_bound handler {_describe(fn)} returned a value that cannot be sent back: {exc}"
        ) from None
    return result


def _describe(fn: Callable[..., Any]) -> str:
    return repr(getattr(fn, "__qualname__", fn))
