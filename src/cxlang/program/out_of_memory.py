"""Running out of memory: a ``MemoryError``, wherever it strikes, ends the run as the memory
limit (exit 4), never as a traceback.

The watchdog (:mod:`.watchdog`) stops a run before memory runs out. A ``MemoryError`` still
comes when nothing watches (``--max-memory 0`` under a ``ulimit -v``) or one allocation jumps
past what is left. Whatever caught it has next to no memory to report it with, so a reserve is
kept from the start and given back first, and the program's globals, which hold what filled
memory, are dropped: the run is over, and nothing of the program runs again.
"""

from __future__ import annotations

import contextlib
import mmap
import traceback
from typing import Any

from ..runtime.limits import LimitExceeded

__all__ = ["OutOfMemory", "is_out_of_memory", "out_of_memory"]

_RESERVE = 32 * 2**20  # address space only (an untouched mapping): no resident memory


def out_of_memory() -> LimitExceeded:
    """The memory limit as a ``MemoryError`` reaches it (the words ProgramHost uses too)."""
    return LimitExceeded("memory", "the process ran out of memory", 0,
                         "set a lower --max-memory, so that the watchdog stops the run first")


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Is *exc* a ``MemoryError``, or a group of exceptions holding one?"""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_out_of_memory(e) for e in exc.exceptions)
    return isinstance(exc, MemoryError)


class OutOfMemory:
    """One run's reserve, and what it gives back when memory runs out."""

    def __init__(self) -> None:
        self._reserve: mmap.mmap | None = None
        with contextlib.suppress(OSError):  # a limit too tight even for that: no reserve
            self._reserve = mmap.mmap(-1, _RESERVE)
        self.namespace: dict[str, Any] | None = None  # the program's globals, once it runs
        self.ran_out = False

    def release(self, exc: BaseException | None = None) -> None:
        """Give back the reserve, the program's globals and the frames *exc* unwound. Called
        where a ``MemoryError`` was caught; it allocates next to nothing."""
        self.ran_out = True
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None
        if self.namespace is not None:
            for name in [n for n in self.namespace if n.startswith("v_")]:
                self.namespace[name] = None
        if exc is not None:
            traceback.clear_frames(exc.__traceback__)

    def close(self) -> None:
        """The run ended: the reserve is not needed any more."""
        if self._reserve is not None:
            self._reserve.close()
            self._reserve = None
