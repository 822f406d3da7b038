"""Retry: when a failed branch of a parallel call runs again, and how long it waits first.

A branch is retried, not its call: a model tool or a flaky service that fails once should not
cost the siblings their results, nor the caller a second fan-out. Each run is an *attempt*
with its own timeout; the wait before attempt ``n + 1`` grows with ``n`` (exponential
backoff), drawn at random (jitter) so that branches that failed together, against one
overloaded server, do not come back in lock-step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from .outcomes import FailureKind

__all__ = ["RETRYABLE", "Retry", "kind_not_retried"]

RETRYABLE: tuple[FailureKind, ...] = ("error", "timeout")
"""The failure kinds a branch can run again after."""

_NOT_RETRIED = {
    "cancelled": "a cancelled branch was stopped on purpose (by its caller, or a sibling "
                 "under fail-fast), so it is not run again",
    "no_handler": "a branch with no handler has nothing to run again",
}


def kind_not_retried(kind: Any) -> str | None:
    """Why *kind* cannot be in ``on``, or ``None`` when it can."""
    if kind in RETRYABLE:
        return None
    reason = _NOT_RETRIED.get(kind) if isinstance(kind, str) else None
    if reason is not None:
        return f"{kind!r} cannot be retried: {reason}"
    return f"{kind!r} is no failure kind a branch is retried on; use " + \
        " or ".join(repr(k) for k in RETRYABLE)


@dataclass(frozen=True, slots=True)
class Retry:
    """How the branches of a parallel call (or one handler's runs) are retried.

    - ``attempts``: runs in all, the first included (``1``: no retry).
    - ``delay``: seconds before the second run; ``backoff`` multiplies it for each later one.
    - ``on``: the failure kinds that are retried (``"error"``, ``"timeout"``); others end the
      branch at once.

    The wait after failed run ``n`` (1-based) is drawn uniformly from ``[w/2, w]`` with
    ``w = delay * backoff ** (n - 1)``: never longer than stated, and spread enough that
    branches failing together do not all come back at the same moment.
    """

    attempts: int
    delay: float = 0.1
    backoff: float = 2.0
    on: tuple[FailureKind, ...] = ("error",)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise ValueError(f"attempts must be a whole number of at least 1 (runs in all), "
                             f"got {self.attempts!r}")
        if not _number(self.delay) or not 0 <= self.delay < math.inf:
            raise ValueError(f"delay must be a number of seconds >= 0, got {self.delay!r}")
        if not _number(self.backoff) or not 1 <= self.backoff < math.inf:
            raise ValueError("backoff must be a number >= 1 (each wait is this many times the "
                             f"one before), got {self.backoff!r}")
        if isinstance(self.on, str):  # on="error" would read as the kinds 'e', 'r', ...
            raise TypeError(f"on takes a tuple of failure kinds, such as ({self.on!r},)")
        on = tuple(self.on)
        if not on:
            raise ValueError("on must name at least one failure kind to retry")
        for kind in on:
            problem = kind_not_retried(kind)
            if problem is not None:
                raise ValueError(problem)
        object.__setattr__(self, "on", on)  # a list given is kept as a tuple: hashable
        if self.attempts > 1:
            try:
                longest = self._window(self.attempts - 1)
            except OverflowError:
                longest = math.inf
            if longest == math.inf:
                raise ValueError(f"the last of {self.attempts} attempts would wait for ever "
                                 f"(delay {self.delay!r} times backoff {self.backoff!r} to the "
                                 f"power {self.attempts - 2}); use fewer attempts")

    def _window(self, runs: int) -> float:
        return self.delay * self.backoff ** (runs - 1)

    def wait(self, runs: int) -> float:
        """Seconds to wait after the *runs*-th run failed, before the next one."""
        window = self._window(runs)
        return window / 2 + random.uniform(0, window / 2)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
