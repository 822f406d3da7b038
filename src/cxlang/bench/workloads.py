"""The handlers the scenarios run, shared by cxlang and by every baseline.

Each baseline calls the very same functions, so what differs between the rows of the report is
the machinery around the handlers, never the handlers. They take ``object``: cxlang hands them an
:class:`~cxlang.Event`, the baselines the bare payload, and none of them looks at it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..runtime import Event

__all__ = ["AsyncHandler", "crunch", "return_at_once", "spin", "suspend_once", "wait_for_io"]

AsyncHandler = Callable[[object], Awaitable[int]]

IO_SECONDS = 0.03


async def return_at_once(_: object) -> int:
    """Never suspends: what is measured is the coordination around it, nothing else."""
    return 1


async def suspend_once(_: object) -> int:
    """Yields to the event loop once, as any real I/O does."""
    await asyncio.sleep(0)
    return 1


async def wait_for_io(_: object) -> int:
    """The design's I/O handler: 30 ms of waiting, standing in for a network call."""
    await asyncio.sleep(IO_SECONDS)
    return 1


def spin(rounds: int) -> int:
    """Pure-Python CPU work whose cost grows linearly with *rounds* (so it calibrates easily)."""
    x = 1
    for _ in range(rounds):
        x = (x * 1_103_515_245 + 12_345) & 0x7FFF_FFFF
    return x


def crunch(event: Event) -> dict[str, float]:
    """A ``cpu_bound`` handler: ``spin`` for ``payload["rounds"]``, reporting its own CPU time.

    Module-level so worker processes can import it by name. The CPU time travels back with the
    result because the pool's workers are not our children (``os.times()`` cannot see them).
    """
    started = time.process_time()
    spin(int(event.payload["rounds"]))
    return {"cpu": time.process_time() - started}
