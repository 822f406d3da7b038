"""Handlers for the process-pool tests: module-level, so worker processes can import them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import cxlang


def where_and_who(event: cxlang.Event) -> dict[str, Any]:
    ctx = cxlang.current_context()
    return {"pid": os.getpid(), "parameter": ctx.parameter, "execution_id": ctx.execution_id,
            "event": ctx.event_name, "n": event.payload["n"] * 2}


def count_primes(event: cxlang.Event) -> int:
    limit = event.payload["limit"]
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


def returns_unpicklable(event: cxlang.Event) -> Any:
    return lambda: None


def hang(event: cxlang.Event) -> None:
    """Write this worker's pid where the test looks for it, then never return."""
    Path(event.payload["pid_file"]).write_text(str(os.getpid()))
    time.sleep(1000)


def crash(event: cxlang.Event) -> None:
    os._exit(3)


def kill_myself(event: cxlang.Event) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def pid(event: cxlang.Event) -> int:
    return os.getpid()


def mark(event: cxlang.Event) -> str:
    """Leave a file behind: the test checks whether this ran at all."""
    Path(event.payload["mark_file"]).write_text("ran")
    return "marked"


def raise_value_error(event: cxlang.Event) -> None:
    raise ValueError(f"no good: {event.payload['n']}")


class HoldsALockError(Exception):
    """Cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class TwoArgumentsError(Exception):
    """Pickles, but cannot be rebuilt from its pickle: its __init__ takes other arguments."""

    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")


def raise_unpicklable(event: cxlang.Event) -> None:
    raise HoldsALockError("cannot cross")


def raise_unrebuildable(event: cxlang.Event) -> None:
    raise TwoArgumentsError("this", "that")


def hang_ignoring_sigterm(event: cxlang.Event) -> None:
    """Like :func:`hang`, but only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hang(event)


def raise_stop_iteration(event: cxlang.Event) -> None:
    raise StopIteration
