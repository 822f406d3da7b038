"""WorkerProcesses: the worker processes behind ``cpu_bound`` handlers, each one we can stop.

A ``ProcessPoolExecutor`` cannot stop a job that has started: a cancelled future there only
means the result is ignored, the worker runs on (and ``shutdown()`` waits for it), and one worker
that dies breaks the executor for good. Here every worker runs one job at a time, so cancelling
a job can terminate its worker, and a worker that dies costs only the job it was running; either
way a replacement starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing import util
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from .errors import ProcessHandlerError, RuntimeClosed

__all__ = ["WorkerProcesses"]

GRACE = 1.0
"""Seconds a terminated worker has to end before it is killed (SIGTERM, then SIGKILL)."""

_UP = pickle.dumps((True, None))  # a worker's first message: it is ready for jobs


class WorkerProcesses:
    """*size* worker processes that each run one job at a time; jobs wait for a free one, FIFO.

    A job is bytes that *run* (a module-level function) turns into a result in the worker;
    :meth:`submit` returns an :class:`asyncio.Future` for it on the running loop. Cancelling
    that future drops a job still waiting, or terminates the worker running it; a worker that
    dies fails only its own job, with a :class:`ProcessHandlerError`. Either way a new worker
    takes the old one's place.

    Each worker has a thread of its own in this process, which starts it, sends it the next job,
    waits for the reply and replaces it when it ends; the loop only hands over jobs and is
    handed results. Rather than reading the pipes on the loop (``add_reader``), the threads
    keep every blocking step off it: starting a worker waits for the fork server, reaping one
    waits for it to end, large jobs and results take time to write and unpickle. They work
    with any event loop (Windows' has no ``add_reader``), serve futures of any loop, and send
    a worker its next job the moment its last one ends, without waiting for the loop's turn.

    Workers start on first use, with ``forkserver`` where the platform has it, else ``spawn``
    (never ``fork``: this process has threads). They are not daemonic, so a handler may start
    processes of its own.
    """

    def __init__(self, size: int, run: Callable[[bytes], Any]) -> None:
        if size < 1:
            raise ValueError(f"at least one worker process is needed, got {size}")
        self._context = (
            multiprocessing.get_context("forkserver")
            if "forkserver" in multiprocessing.get_all_start_methods()
            else multiprocessing.get_context("spawn"))
        self._size = size
        self._run = run
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # a job was queued, or a slot must stop
        self._started = threading.Condition(self._lock)  # a slot's first worker is up (or not)
        self._queue: deque[_Job] = deque()
        self._slots: list[_Slot] = []
        self._closed = False
        # Run at exit before multiprocessing joins its children, which would wait for idle
        # workers forever; cancelled by shutdown().
        self._at_exit = util.Finalize(None, self.shutdown, exitpriority=10)

    def submit(self, job: bytes, what: str) -> asyncio.Future[Any]:
        """Run *job* in a worker; *what* names it in errors (``"cpu_bound handler 'f'"``)."""
        entry = _Job(self, job, what, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                raise RuntimeClosed("the worker processes were shut down")
            if not self._slots:
                self._open_slots()
            self._queue.append(entry)
            self._work.notify()
        entry.future.add_done_callback(entry)
        return entry.future

    def start(self) -> None:
        """Start every worker now and wait until each is ready, so the first jobs do not pay
        for start-up (blocks the caller: for set-up, not for the loop of a running program)."""
        with self._lock:
            if self._closed:
                raise RuntimeClosed("the worker processes were shut down")
            if not self._slots:
                self._open_slots()
            self._started.wait_for(
                lambda: self._closed or all(slot.tried for slot in self._slots))

    def shutdown(self) -> None:
        """Terminate every worker, idle or busy; cancel every job, running or waiting.

        Returns at once: each slot's thread reaps its worker in the background.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jobs = [*self._queue, *(slot.job for slot in self._slots if slot.job is not None)]
            self._queue.clear()
            for slot in self._slots:
                slot.stop()
            self._work.notify_all()
            self._started.notify_all()
        self._at_exit.cancel()
        for job in jobs:
            job.cancel()

    # The loop's side --------------------------------------------------------------------------

    def _open_slots(self) -> None:
        """Give each worker its slot and thread (under the lock)."""
        for number in range(self._size):
            slot = _Slot(f"cx-worker-{number + 1}")
            self._slots.append(slot)
            threading.Thread(target=self._keep, args=(slot,), name=slot.name,
                             daemon=True).start()

    def _drop(self, job: _Job) -> None:
        """*job*'s future was cancelled: forget it if it waits, stop its worker if it runs."""
        with self._lock:
            try:
                self._queue.remove(job)
            except ValueError:
                for slot in self._slots:
                    if slot.job is job:
                        slot.stop()

    # A slot's thread --------------------------------------------------------------------------

    def _keep(self, slot: _Slot) -> None:
        """Keep a worker in *slot*: start it, feed it jobs, reap it, start the next one."""
        while True:
            with self._lock:
                if self._closed:
                    return
            parent_end, child_end = self._context.Pipe()
            process = self._context.Process(
                target=_serve, args=(child_end, self._run), name=slot.name)
            try:
                process.start()
            except Exception as exc:  # the fork failed (no memory, too many processes, ...)
                parent_end.close()
                self._tried(slot)
                self._fail_next(f"its worker process could not be started ({exc})")
                continue
            finally:
                child_end.close()  # the worker's copy: ours would keep its end from ever closing
            with self._lock:
                slot.process, slot.stopping = process, False
                if self._closed:
                    slot.stop()
            try:
                up = parent_end.recv_bytes() == _UP
            except (EOFError, OSError):
                up = False
            self._tried(slot)
            if up:
                self._feed(slot, parent_end)
            self._reap(slot, process, parent_end, up)

    def _tried(self, slot: _Slot) -> None:
        """*slot*'s worker is up, or failed to start: :meth:`start` need not wait for it."""
        with self._lock:
            slot.tried = True
            self._started.notify_all()

    def _feed(self, slot: _Slot, conn: Connection) -> None:
        """Send the worker one job at a time until it ends or must stop."""
        while True:
            with self._lock:
                self._work.wait_for(lambda: self._queue or slot.stopping)
                if slot.stopping:
                    return
                job = slot.job = self._queue.popleft()
            try:
                conn.send_bytes(job.data)
            except OSError:  # it had ended while idle: the job never reached it
                with self._lock:
                    slot.job = None
                    if not slot.stopping:
                        self._queue.appendleft(job)
                return
            try:
                reply = conn.recv_bytes()
            except (EOFError, OSError):  # it ended while running the job: _reap reports that
                return
            with self._lock:
                slot.job = None
            job.answer(reply)

    def _reap(self, slot: _Slot, process: BaseProcess, conn: Connection, up: bool) -> None:
        """Wait for the worker to end, then fail the job it ended with, unless it was stopped."""
        process.join(GRACE)  # it has ended, or was told to
        if process.exitcode is None:  # it ignores SIGTERM, or closed its end and runs on
            process.kill()
            process.join()
        conn.close()
        with self._lock:
            job, slot.job = slot.job, None
            stopped, slot.process = slot.stopping, None
            slot.cancel_kill()
        if stopped:  # whoever stopped it cancelled its job
            return
        how = _how_it_ended(process.exitcode)
        if job is not None:
            job.fail(f"{job.what} ended its worker process ({how}); the worker was replaced")
        elif not up:
            self._fail_next(f"its worker process ended before it was ready ({how})")

    def _fail_next(self, problem: str) -> None:
        """A worker could not start: fail the next job with *problem*, so none waits forever
        (and a worker that cannot start is not restarted in a tight loop)."""
        with self._lock:
            self._work.wait_for(lambda: self._queue or self._closed)
            if self._closed:
                return
            job = self._queue.popleft()
        job.fail(f"{job.what} could not run: {problem}")


class _Slot:
    """One place for a worker: the process in it now, and the job it runs. Changed under the
    pool's lock."""

    __slots__ = ("job", "kill_timer", "name", "process", "stopping", "tried")

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: BaseProcess | None = None
        self.job: _Job | None = None
        self.stopping = False
        self.tried = False  # its first worker is up, or failed to start
        self.kill_timer: threading.Timer | None = None

    def stop(self) -> None:
        """Terminate its worker; kill it if it is still there after :data:`GRACE` seconds
        (from a timer: this slot's thread may be blocked reading from the worker)."""
        self.stopping = True
        if self.process is not None and self.kill_timer is None:
            self.process.terminate()
            self.kill_timer = threading.Timer(GRACE, self.process.kill)
            self.kill_timer.daemon = True
            self.kill_timer.start()

    def cancel_kill(self) -> None:
        if self.kill_timer is not None:
            self.kill_timer.cancel()
            self.kill_timer = None


class _Job:
    """A job on its way through the pool; its own future's done callback."""

    __slots__ = ("data", "future", "loop", "owner", "what")

    def __init__(
        self, owner: WorkerProcesses, data: bytes, what: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.owner = owner
        self.data = data
        self.what = what
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def __call__(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.owner._drop(self)

    def answer(self, reply: bytes) -> None:
        """Hand the worker's reply to the future (from a slot's thread)."""
        try:
            ok, value, *detail = pickle.loads(reply)
        except Exception as exc:
            self.fail(f"{self.what} returned a value that cannot be rebuilt outside its worker "
                      f"process: {exc}")
            return
        if ok:
            self._on_loop(_settle, self.future, value, None)
        elif value is None:  # the exception could not cross: detail says what it was
            self.fail(f"{self.what} raised {detail[0]}")
        else:
            if isinstance(value, StopIteration):  # a future refuses one, as a task does
                value = RuntimeError(f"{self.what} raised StopIteration")
            value.__cause__ = _WorkerTraceback(detail[0])
            self._on_loop(_settle, self.future, None, value)

    def fail(self, message: str) -> None:
        self._on_loop(_settle, self.future, None, ProcessHandlerError(message))

    def cancel(self) -> None:
        self._on_loop(self.future.cancel)

    def _on_loop(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(fn, *args)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class _WorkerTraceback(Exception):  # noqa: N818 - not an error of its own: a traceback as text
    """The traceback of an exception raised in a worker process: its ``__cause__`` here, so
    logs show where in the handler it was raised."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# In the worker process ------------------------------------------------------------------------


def _serve(conn: Connection, run: Callable[[bytes], Any]) -> None:
    """A worker's life: say it is up, then run one job at a time until its pipe closes."""
    conn.send_bytes(_UP)
    while True:
        try:
            job = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(_reply(run, job))


def _reply(run: Callable[[bytes], Any], job: bytes) -> bytes:
    """``(True, result)``, ``(False, exception, traceback)``, or, for an exception that cannot
    be pickled, ``(False, None, what it was)``: pickled."""
    try:
        return pickle.dumps((True, run(job)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # whatever it was, the caller hears of it
        text = "".join(traceback.format_exception(exc)).rstrip()
        try:
            reply = pickle.dumps((False, exc, text), protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(reply)  # some pickle but do not unpickle: an __init__ with other args
        except Exception as problem:
            return pickle.dumps((False, None, f"{type(exc).__qualname__}: {exc}, an exception "
                                 f"that cannot be sent back from its worker process ({problem})"))
        return reply
