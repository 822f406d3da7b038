"""Handlers for the process-pool tests: module-level, so worker processes can import them."""

from __future__ import annotations

import os
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
