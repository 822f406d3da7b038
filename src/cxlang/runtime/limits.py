"""Run limits: what stops a runaway program before it hangs or exhausts the machine.

A program that emits an event which emits itself, fans out exponentially or recurses through
its handlers never goes idle; left alone it runs until it is killed. The bus counts what it
dispatches and how deep each event's causal chain is (``Event.depth``); past a bound it *trips*:
it stops dispatching, refuses further emits and raises :class:`LimitExceeded`, whose message
names the limit and how to raise it. The program layer adds bounds on value size and memory.
"""

from __future__ import annotations

__all__ = ["LIMIT_KINDS", "NO_LIMIT", "LimitExceeded"]

NO_LIMIT = 1 << 62  # "no bound" as an int, so the hot paths compare without a None test

LIMIT_KINDS = {
    # kind: (what is counted, the Runtime/RunOptions keyword that raises it)
    "event": ("events", "max_events"),
    "depth": ("causal hops", "max_depth"),
    "payload": ("bytes", "max_payload"),
    "memory": ("bytes", "max_memory"),
    "queue": ("emits waiting for room", "max_queue"),
    "calls": ("service calls in flight", "max_calls"),
}


class LimitExceeded(RuntimeError):  # noqa: N818 - a limit reached is not a program error
    """A run limit was reached; the run stops. ``kind`` is one of :data:`LIMIT_KINDS`.

    ``str()`` says which limit and how to raise it; ``hint`` names the knob in the caller's
    terms (``max_events=...`` for the library, ``--max-events`` for ``cx run``). A *limit* of 0
    is a bound nobody configured (the stack, the machine): its *hint* is the whole advice.
    """

    def __init__(self, kind: str, detail: str, limit: int, hint: str | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.limit = limit
        self.hint = hint or f"{LIMIT_KINDS[kind][1]}=..."
        advice = f"raise it with {self.hint}" if limit else self.hint
        super().__init__(f"{kind} limit reached: {detail}; {advice}")

    def again(self, hint: str | None = None) -> LimitExceeded:
        """A fresh copy, to raise to each later caller (and with another *hint*)."""
        return LimitExceeded(self.kind, self.detail, self.limit, hint or self.hint)
