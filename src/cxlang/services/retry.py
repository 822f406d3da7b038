"""When and how long to wait before trying a model request again.

Servers shed load with 429 and 5xx and drop connections when they restart; a client that
retries at once makes that worse, and many clients retrying in lock-step make it worse still.
So: exponential backoff with jitter (each wait is drawn from the upper half of its window),
a server's ``Retry-After`` is honoured, and after ``max_retries`` the caller gets the failure.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff after failed attempt *n* (0-based): a draw from ``[w/2, w]`` where
    ``w = min(max_delay, base_delay * 2**n)``; with a ``Retry-After``, at least that.

    ``max_retry_after`` bounds how long a server may ask us to wait: a longer request means
    the server is not coming back soon, so the call fails with that said instead of hanging.
    ``sleep`` and ``rng`` are here so tests can observe the waits without taking them.
    """

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("retry delays need 0 <= base_delay <= max_delay, got "
                             f"{self.base_delay} and {self.max_delay}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt *attempt* (0-based)."""
        window = min(self.max_delay, self.base_delay * 2.0 ** attempt)
        backoff = window / 2 + self.rng.uniform(0, window / 2)
        return backoff if retry_after is None else max(backoff, retry_after)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date; ``None`` if absent or
    unreadable (the backoff alone then decides)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
