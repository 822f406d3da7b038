"""Deadlines: one timer for every running handler of every parallel call.

A parallel call gives each handler it starts a deadline. Arming a loop timer per call and
cancelling it when the call finishes in time (the common case) costs a timer handle, a heap
push and, later, the loop's sweep of cancelled timers: more than the rest of a small call's
bookkeeping. So a coordinator keeps one :class:`Deadlines`: what has a deadline (a call's
handlers started together, which share one) is kept in groups by timeout (plain dicts, cheap
to add to and remove from). The one timer is set for the earliest deadline of all and is not
cancelled when handlers finish in time: when it fires, it expires what is due and sets itself
for the next deadline, if there is one. Firing scans every entry, but it fires about once per
timeout, not per call.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

__all__ = ["Deadlines", "Expiring"]


class Expiring(Protocol):
    """Something with a deadline: told when the deadline has passed."""

    def expire(self) -> None: ...


class Deadlines:
    """The deadlines of one coordinator's running handlers, on one event loop."""

    __slots__ = ("_groups", "_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        # timeout -> running things, in start order (so in deadline order) -> deadline
        self._groups: dict[float, dict[Expiring, float]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def use(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep time on *loop*, the running loop of a new call."""
        if loop is not self._loop:
            self.close()  # a new loop (a program's second asyncio.run): start afresh
            self._loop = loop

    def group(self, timeout: float, deadline: float) -> dict[Expiring, float]:
        """The group of things with *timeout*, the earliest due by *deadline*.

        Add with ``group[it] = deadline`` and remove with ``group.pop(it, None)``: plain dict
        operations, for a hot path. Use the group for things started now, without yielding to
        the loop in between (an empty group may be dropped when the timer fires).
        """
        group = self._groups.get(timeout)
        if group is None:
            group = self._groups[timeout] = {}
        if deadline < self._timer_at:
            self._arm(deadline)
        return group

    def close(self) -> None:
        """Forget every deadline and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf
        for group in self._groups.values():
            group.clear()
        self._groups.clear()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        assert self._loop is not None
        now = self._loop.time()
        due: list[Expiring] = []
        following = math.inf
        for timeout, group in list(self._groups.items()):
            # Every entry, not just up to the first not due: a nested call started inside a
            # handler's first step adds its (later) deadlines before that handler's own.
            passed = []
            for it, deadline in group.items():
                if deadline > now:
                    following = min(following, deadline)
                else:
                    passed.append(it)
            for it in passed:
                del group[it]
            if not group:
                del self._groups[timeout]
            due += passed
        if following != math.inf:
            self._arm(following)
        for it in due:
            it.expire()  # last: expiring may start queued handlers, which add deadlines
