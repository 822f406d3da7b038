"""Events on their way to the server: kept in emit order, sent by one task.

``emit`` is synchronous and must not wait for the network, so it only appends here; one task
sends what is queued. While the connection is down (or just back, see
:meth:`.transport.NatsTransport`) the outbox is *held*: events wait here, in order, and go out
when it opens again. A send that fails for a reason that may pass (the server went away between
two messages, a JetStream acknowledgement did not come) is retried, first in line, so the order
holds; JetStream drops the duplicates a retry can make, by event id.

Plain NATS acknowledges nothing, and what was written to a connection that the server had just
dropped is lost. So with a *confirm* step (a ping the server answers) the outbox keeps what it
sent until a confirmation after it: if that fails, the unconfirmed messages go back to the
front of the line and are sent again after the reconnect. A message may then arrive twice;
receivers drop repeated event ids (:class:`.transport.NatsTransport`).

What is queued goes out in one go, not a message and a wait at a time: the task takes every
run of events of one name (up to :data:`BATCH_EVENTS` events and :data:`BATCH_BYTES` bytes)
and hands it to *send* whole, to go out as one message, and asks for one confirmation once
the queue is empty (or every :data:`CONFIRM_EVERY` events). Events emitted one by one, slower
than they are sent, still go one per message. The runs stay short so that the members of a
group still share a burst of events (each message reaches one of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ..errors import QueueFull
from ..events import Event

__all__ = ["Item", "Outbox"]

Item = tuple[str, bytes, Event]  # subject, payload as JSON, the event
RETRY_AFTER = 0.2  # seconds between tries of a send that failed
CONFIRM_EVERY = 1000  # events sent at most between two confirmations
BATCH_EVENTS = 100  # events one message carries at most
BATCH_BYTES = 64 * 1024  # payload bytes above which a run goes on in the next message

logger = logging.getLogger("cxlang.distributed")


class Outbox:
    """A bounded FIFO of messages and the task that sends them."""

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[None]],
        retryable: Callable[[Exception], bool],
        limit: int,
        confirm: Callable[[], Awaitable[None]] | None = None,
        *,
        batch: int = BATCH_EVENTS,
    ) -> None:
        self._send = send
        self._batch = batch
        self._alone = 0  # events to send one per message (a run of them was refused)
        self._retryable = retryable
        self._confirm = confirm
        self.limit = limit
        self._items: deque[Item] = deque()
        self._sent: deque[Item] = deque()  # sent, not yet confirmed
        self._open = False
        self._wakeup: asyncio.Future[None] | None = None
        self._emptied: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._items) + len(self._sent)

    def put(self, item: Item) -> None:
        if len(self) >= self.limit:
            raise QueueFull(
                f"cannot send {item[0]!r}: {self.limit:,} events are already waiting for the "
                "NATS server (is it down?). Wait for it to come back, or raise max_queue"
            )
        self._items.append(item)
        self._wake()

    def open(self) -> None:
        """Start (or resume) sending."""
        self._open = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())
        self._wake()

    def hold(self) -> None:
        """Keep what is emitted from now on, until :meth:`open`."""
        self._open = False

    async def flush(self, timeout: float) -> int:
        """Wait until everything queued is sent, at most *timeout* s; returns how many were not."""
        if len(self) and self._task is not None:
            emptied = asyncio.get_running_loop().create_future()
            self._emptied.append(emptied)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(emptied, timeout)
        return len(self)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _pump(self) -> None:
        items, sent = self._items, self._sent
        while True:
            if not (self._open and items):
                if not items and not sent:
                    for emptied in self._emptied:
                        if not emptied.done():
                            emptied.set_result(None)
                    self._emptied.clear()
                self._wakeup = asyncio.get_running_loop().create_future()
                await self._wakeup
                continue
            run = self._run()
            try:
                await self._send(run)
            except Exception as exc:
                if self._retryable(exc):
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                if len(run) > 1:
                    self._alone = len(run)  # which of them does the server refuse? Each says.
                    continue
                logger.error("event %s could not be sent and was dropped: %r", run[0][0], exc)
                items.popleft()
                continue
            for _ in run:
                items.popleft()
            if self._confirm is not None:
                sent.extend(run)
                if not items or len(sent) >= CONFIRM_EVERY:
                    await self._confirm_sent()

    def _run(self) -> list[Item]:
        """The events at the front of the queue that go out in one message: one name, up to
        the batch's bounds; the first alone while the events of a refused run are tried."""
        items = self._items
        first = items[0]
        run = [first]
        if self._alone:
            self._alone -= 1
            return run
        subject, size = first[0], len(first[1])
        for item in itertools.islice(items, 1, self._batch):
            size += len(item[1])
            if item[0] != subject or size > BATCH_BYTES:
                break
            run.append(item)
        return run

    async def _confirm_sent(self) -> None:
        assert self._confirm is not None
        try:
            await self._confirm()
        except Exception as exc:
            logger.debug("%d sent event(s) unconfirmed, sending them again: %r",
                         len(self._sent), exc)
            self._items.extendleft(reversed(self._sent))
            self._sent.clear()
            await asyncio.sleep(RETRY_AFTER)
            return
        self._sent.clear()
