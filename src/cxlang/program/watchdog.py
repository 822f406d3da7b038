"""MemoryWatchdog: stop a run whose process grows past a memory bound, before the OOM killer.

Why a watchdog and not ``resource.setrlimit(RLIMIT_AS)``: an address-space limit counts what
threads, the pools and shared libraries *reserve*, not what the program uses, so it fails runs
that are fine, and it turns the overshoot into a ``MemoryError`` raised wherever the next
allocation happens to be (often inside asyncio). Why not ``tracemalloc``: it slows every
allocation. The watchdog reads the resident set size from ``/proc/self/statm`` a few times a
second on a thread of its own; past the bound it trips the bus (a clean stop) and, if the event
loop is busy in a loop that never waits, interrupts the main thread as the time limit does.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

from ..runtime.limits import LimitExceeded

__all__ = ["CHECK_INTERVAL", "MemoryWatchdog", "default_max_memory", "resident_bytes"]

CHECK_INTERVAL = 0.05  # seconds between reads: ~20 us each, and growth past the bound is small
_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size now, or None where ``/proc`` is not available."""
    try:
        with open(_STATM, "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


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
    stops, must make the main thread stop (the program layer signals it).
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
        while not self._stop.wait(CHECK_INTERVAL):
            size = resident_bytes() or 0
            self.peak = max(self.peak, size)
            if size > self.limit:
                self._over(size)
                return

    def _over(self, size: int) -> None:
        exc = LimitExceeded("memory", f"the process holds {size / 2**20:,.0f} MiB (the limit "
                            f"is {self.limit / 2**20:,.0f} MiB)", self.limit, self.hint)
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

