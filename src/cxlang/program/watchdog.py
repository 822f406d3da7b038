"""MemoryWatchdog: stop a run whose process grows past a memory bound, before the OOM killer.

Why a watchdog and not ``resource.setrlimit(RLIMIT_AS)``: an address-space limit counts what
threads, the pools and shared libraries *reserve*, not what the program uses, so it fails runs
that are fine, and it turns the overshoot into a ``MemoryError`` raised wherever the next
allocation happens to be (often inside asyncio). Why not ``tracemalloc``: it slows every
allocation. The watchdog reads the resident set size from ``/proc/self/statm`` a few times a
second on a thread of its own; past the bound it trips the bus (a clean stop) and, if the event
loop is busy in a loop that never waits, interrupts the main thread as the time limit does.

A process may also have an address-space limit of its own (``ulimit -v``, RLIMIT_AS). Past it
every allocation fails, and CPython does not always survive that: it can abort while raising
the ``MemoryError`` itself, or crash in asyncio's cleanup. So while it watches, the watchdog
also stops the run when the address space comes within :func:`address_space_headroom` of that
limit: the run ends on cxlang's limit, with room left to end it.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
from collections.abc import Callable

from ..runtime.limits import LimitExceeded

__all__ = ["CHECK_INTERVAL", "MemoryWatchdog", "address_space_headroom", "address_space_limit",
           "default_max_memory", "resident_bytes"]

CHECK_INTERVAL = 0.05  # seconds between reads: ~20 us each, and growth past the bound is small
_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size now, or None where ``/proc`` is not available."""
    sizes = _sizes()
    return None if sizes is None else sizes[1]


def _sizes() -> tuple[int, int] | None:
    """This process's address space and resident set size now, in bytes (one read)."""
    try:
        with open(_STATM, "rb") as statm:
            fields = statm.read().split()
            return int(fields[0]) * _PAGE, int(fields[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def address_space_limit() -> int | None:
    """The process's address-space limit (``ulimit -v``) in bytes; None when it has none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def address_space_headroom(limit: int) -> int:
    """How far below an address-space limit the watchdog stops the run: what a program that
    never waits can add before the watchdog's interrupt lands (about half a second), and what
    stopping the run takes."""
    return max(128 * 2**20, limit // 4)


def default_max_memory() -> int | None:
    """Half the machine's physical memory: room for the program, well short of the OOM killer.
    None where it cannot be measured (then there is no memory limit by default)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * _PAGE // 2)
    except (ValueError, OSError, AttributeError):
        return None


class MemoryWatchdog:
    """Watches the resident set size between :meth:`start` and :meth:`stop`.

    *trip* is called on the event loop's thread with the :class:`LimitExceeded`; *interrupt*,
    called from the watchdog's thread a moment later and every moment after, until the run
    stops, must make the main thread stop (the program layer signals it). The address-space
    limit, if the process has one, is read once, here.
    """

    def __init__(
        self,
        limit: int,
        loop: asyncio.AbstractEventLoop,
        trip: Callable[[LimitExceeded], None],
        interrupt: Callable[[LimitExceeded], None] | None,
        *,
        hint: str = "max_memory=...",
    ) -> None:
        self.limit = limit
        self.loop = loop
        self.trip = trip
        self.interrupt = interrupt
        self.hint = hint
        self.peak = 0
        self.address_space = address_space_limit()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cx-memory-watchdog",
                                        daemon=True)

    def start(self) -> None:
        if resident_bytes() is not None:  # no /proc: nothing to watch
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        try:
            while not self._stop.wait(CHECK_INTERVAL):
                space, size = _sizes() or (0, 0)
                self.peak = max(self.peak, size)
                exc = self._exceeded(space, size)
                if exc is not None:
                    self._over(exc)
                    return
        except MemoryError:
            return  # the main thread runs out too, and reports it

    def _exceeded(self, space: int, size: int) -> LimitExceeded | None:
        if size > self.limit:
            return LimitExceeded("memory", f"the process holds {size / 2**20:,.0f} MiB (the "
                                 f"limit is {self.limit / 2**20:,.0f} MiB)", self.limit,
                                 self.hint)
        ceiling = self.address_space
        if ceiling is not None and space > ceiling - address_space_headroom(ceiling):
            return LimitExceeded("memory", f"the process's address space reached "
                                 f"{space / 2**20:,.0f} MiB, near its limit of "
                                 f"{ceiling / 2**20:,.0f} MiB (ulimit -v)", 0,
                                 "raise that limit, or make the program hold less")
        return None

    def _over(self, exc: LimitExceeded) -> None:
        try:
            self.loop.call_soon_threadsafe(self.trip, exc)
        except RuntimeError:
            return  # the loop is closed: the run is over
        # A loop that never waits never runs the trip: give it a moment, then interrupt it,
        # and again while it runs on (the first interrupt may find none of the program's code
        # running; the next one ends the loop's turn).
        if self.interrupt is None:
            return
        while not self._stop.wait(10 * CHECK_INTERVAL):
            self.interrupt(exc)

