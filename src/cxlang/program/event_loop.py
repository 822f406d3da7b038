"""Which event loop a program runs on: uvloop when it is installed, asyncio's otherwise.

uvloop runs the loop itself in C: on this project's benchmarks a run's own bookkeeping goes
faster on it (a K=10 parallel call of suspending handlers ~90 us instead of ~110-130 us, the bus
~10% more events per second), and nothing in the runtime depends on which loop it is.
``cx run --loop asyncio`` keeps the standard loop, to compare or to rule uvloop out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

__all__ = ["LOOPS", "LoopChoice", "LoopUnavailableError", "loop_factory"]

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailableError(Exception):
    """``--loop uvloop`` on a machine without uvloop."""


def loop_factory(choice: LoopChoice) -> LoopFactory | None:
    """The factory for ``asyncio.Runner`` (``None``: asyncio's own loop)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailableError(
                "uvloop is not installed: pip install uvloop (or 'cxlang[fast]')") from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory
