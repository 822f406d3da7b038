"""How fast one model may be asked: rate buckets and a concurrency that adapts to 429s.

A provider limits each model by requests and tokens per minute, and a local server by how
many requests it takes at once. Failing a branch for that wastes the work before it, so a
request waits for its turn instead: token buckets keep a run under ``requests_per_minute``
and ``tokens_per_minute``, and :class:`Concurrency` finds the server's own limit by additive
increase and multiplicative decrease (halved on a 429, one more slot per limit's worth of
successes), never above ``max_concurrency``. One :class:`ModelLimiter` per model serves every
branch of a run, since the backend is shared by all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Concurrency", "ModelLimiter", "Ticket", "TokenBucket", "estimate_tokens"]

# A bucket holds one second of its rate: a full minute's burst at once is what providers
# that enforce a minute's limit over shorter windows refuse.
BURST_SECONDS = 1.0


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """The tokens a request is counted for before its answer says: a quarter of its JSON's
    length (about four characters a token; the JSON around the text makes it an
    overestimate, the safe side) plus its ``max_tokens``, which providers count too."""
    answer = body.get("max_tokens")
    prompt = {key: value for key, value in body.items() if key != "max_tokens"}
    return math.ceil(len(json.dumps(prompt)) / 4) + (answer if isinstance(answer, int) else 0)


class TokenBucket:
    """``per_minute`` units a minute, at most :data:`BURST_SECONDS` of them at once.

    A taker waits, first come first served, until the bucket holds its amount (or is full,
    for an amount larger than the bucket), then takes it, possibly into debt: a large
    request is let through rather than starved, and the debt delays those after it.
    ``clock`` and ``sleep`` are here so tests can run it without waiting.
    """

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not per_minute > 0:
            raise ValueError(f"a rate must be positive, got {per_minute}")
        self.rate = per_minute / 60.0  # a second
        self.capacity = self.rate * BURST_SECONDS
        self._clock = clock
        self._sleep = sleep
        self._level = self.capacity
        self._updated = clock()
        self._turn = asyncio.Lock()  # FIFO: an early large taker is not overtaken forever

    async def take(self, amount: float) -> None:
        async with self._turn:
            need = min(amount, self.capacity)
            while (level := self._refilled()) < need:
                await self._sleep((need - level) / self.rate)
            self._level -= amount

    def adjust(self, amount: float) -> None:
        """Take *amount* more (or give back, if negative) once the true cost is known."""
        self._level = min(self.capacity, self._refilled() - amount)

    def _refilled(self) -> float:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now
        return self._level


class Concurrency:
    """Requests in flight to one model, at most ``limit``, which adapts between 1 and
    ``ceiling``: halved on a 429 (once per round: the other requests refused in the same
    round were sent under the old limit, and halving for each would collapse it), raised by
    ``1/limit`` per success, so by about one per round of successes. A ``Retry-After`` holds
    every new request of the model until it has passed: the server asked the client, not one
    request, to wait."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._limit = float(ceiling)
        self._in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._round = 0  # bumped by every decrease
        self._resume_at = 0.0  # the loop's time before which nothing starts
        self._resume: asyncio.TimerHandle | None = None

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    async def acquire(self) -> None:
        if self._waiting or not self._free():
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            self._wake()  # a pause may need its timer
            try:
                await turn
            except asyncio.CancelledError:
                if turn.cancelled():
                    if turn in self._waiting:
                        self._waiting.remove(turn)
                else:  # the slot was handed over as the waiter was cancelled: give it on
                    self.release()
                raise
        else:
            self._in_flight += 1

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def succeeded(self) -> None:
        self._limit = min(float(self.ceiling), self._limit + 1.0 / self._limit)
        self._wake()

    def refused(self, round_: int, retry_after: float | None) -> None:
        """A 429 for a request sent in *round_*."""
        if round_ == self._round:
            self._limit = max(1.0, self._limit / 2.0)
            self._round += 1
        if retry_after:
            now = asyncio.get_running_loop().time()
            self._resume_at = max(self._resume_at, now + retry_after)

    @property
    def round(self) -> int:
        return self._round

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _free(self) -> bool:
        return (self._in_flight < self.limit
                and asyncio.get_running_loop().time() >= self._resume_at)

    def _wake(self) -> None:
        while self._waiting and self._free():
            turn = self._waiting.popleft()
            if not turn.done():  # else cancelled, not yet out of the queue
                turn.set_result(None)
                self._in_flight += 1
        if self._waiting and self._resume is None and self._in_flight < self.limit:
            self._resume = asyncio.get_running_loop().call_at(self._resume_at, self._resumed)

    def _resumed(self) -> None:
        self._resume = None
        self._wake()


class Ticket:
    """One admitted request: what it was counted for, and how it went."""

    __slots__ = ("estimate", "round", "used")

    def __init__(self, estimate: int, round_: int) -> None:
        self.estimate = estimate
        self.round = round_  # the concurrency's round it was sent in
        self.used: int | None = None  # the tokens the answer says it used


class ModelLimiter:
    """Admission of one model's requests: the rate buckets (if limits are set), then a slot
    of its :class:`Concurrency`."""

    def __init__(self, ceiling: int, *, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        self.concurrency = Concurrency(ceiling)
        self._requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self._tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    @contextlib.asynccontextmanager
    async def admit(self, estimate: int) -> AsyncIterator[Ticket]:
        """Wait for the request's turn; on leaving without an error it counts as a success
        (raising the concurrency), and the token bucket is corrected by ``ticket.used``."""
        if self._requests is not None:
            await self._requests.take(1)
        if self._tokens is not None:
            await self._tokens.take(estimate)
        control = self.concurrency
        await control.acquire()
        ticket = Ticket(estimate, control.round)
        try:
            yield ticket
            control.succeeded()
        finally:
            control.release()
            if self._tokens is not None and ticket.used is not None:
                self._tokens.adjust(ticket.used - estimate)

    def refused(self, ticket: Ticket, retry_after: float | None) -> bool:
        """The server answered *ticket*'s request with a 429 (so it used no tokens). True if
        the backend's own concurrency may have caused it: other requests of the model were
        in flight with it. Then the model's ``Retry-After`` pause is the retry's wait; a
        request refused alone is a matter of the provider's quota, for the retry policy."""
        ours = self.concurrency.in_flight > 1
        self.concurrency.refused(ticket.round, retry_after if ours else None)
        if self._tokens is not None:
            self._tokens.adjust(-ticket.estimate)
        return ours
