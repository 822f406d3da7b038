"""Events from other processes that this one would not take, told without flooding the log.

A peer can send a million malformed events, or enough to fill the queue, in seconds; one log
line each would bury everything else (and cost more than the events). So the first drop of
each reason is logged at once, and further ones are counted and logged as one line per reason
at most every :data:`INTERVAL` seconds, and once more when the process leaves the bus.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["INTERVAL", "DroppedEvents"]

INTERVAL = 10.0  # seconds between two lines about the same kind of drop

logger = logging.getLogger("cxlang.distributed")


@dataclass
class _Tally:
    since: float  # when the last line about this reason was written
    count: int = 0  # drops since then


class DroppedEvents:
    """The drop log of one process's connection to the bus."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tallies: dict[str, _Tally] = {}

    def dropped(self, what: str, reason: str) -> None:
        """*what* (``event job.run``, ``an announcement``) from another process was dropped
        because of *reason* (which should not name the event, so that drops of many events
        count under one reason)."""
        now = self._clock()
        tally = self._tallies.get(reason)
        if tally is None:
            self._tallies[reason] = _Tally(now)
            logger.error("%s from another process dropped: %s", what, reason)
            return
        tally.count += 1
        if now - tally.since >= INTERVAL:
            self._say(reason, tally, now)

    def flush(self) -> None:
        """Say what was counted and not yet told (the process is leaving the bus)."""
        now = self._clock()
        for reason, tally in self._tallies.items():
            if tally.count:
                self._say(reason, tally, now)

    def _say(self, reason: str, tally: _Tally, now: float) -> None:
        logger.error("%d more message(s) from other processes dropped in the last %.0f s: %s",
                     tally.count, now - tally.since, reason)
        tally.count = 0
        tally.since = now
