"""Durable events: a JetStream stream that keeps them until every group has handled them.

Events are published on ``_CX.event.<name>`` into the stream ``CX_EVENTS`` (JetStream cannot
store every subject, so the stored ones have their own root; below it the mapping stays one to
one). Retention is by interest: an event is kept until every consumer has acknowledged it.

Each group reads the stream through one pull consumer: a shared group (``cx worker``) through a
durable one named after it, which outlives its members, so what arrives while they are all down
waits for them; a lone process through an ephemeral one. A process acknowledges an event only
after its handlers have finished; one that dies first never does, and after ``ack_wait`` the
server hands the event to another member (or to the same one, restarted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from .errors import BusUnavailable
from .subjects import DURABLE, STREAM

__all__ = ["DurableConsumer", "ensure_stream"]

IN_FLIGHT = 8  # events a process takes at once: few, so that a group shares them out
FETCH_WAIT = 1.0  # seconds a fetch waits for events before asking again
KEEP_FOR = 7 * 24 * 3600.0  # an event nobody acknowledges is dropped after a week

logger = logging.getLogger("cxlang.distributed")


async def ensure_stream(js: JetStreamContext, url: str) -> None:
    config = StreamConfig(name=STREAM, subjects=[DURABLE + ">"], storage=StorageType.FILE,
                          retention=RetentionPolicy.INTEREST, max_age=KEEP_FOR)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        pass  # it exists already, made by an older cxlang: use it as it is
    except (nats.errors.Error, TimeoutError) as exc:
        raise BusUnavailable(
            f"the NATS server at {url} has no JetStream, which --durable needs ({exc!r}). "
            "Start the server with JetStream enabled: nats-server -js -sd DIR"
        ) from None


class DurableConsumer:
    """Fetches a group's events and hands each to *deliver*, then acknowledges it."""

    def __init__(
        self,
        js: JetStreamContext,
        durable: str | None,
        ack_wait: float,
        deliver: Callable[[Msg], Awaitable[None]],
    ) -> None:
        self._js = js
        self._durable = durable
        self._config = ConsumerConfig(ack_wait=ack_wait, deliver_policy=DeliverPolicy.NEW,
                                      max_ack_pending=IN_FLIGHT * 16)
        self._deliver = deliver
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._closing = False

    async def start(self) -> None:
        self._sub = await self._subscribe()
        self._task = asyncio.get_running_loop().create_task(self._fetch_forever())

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._js.pull_subscribe(DURABLE + ">", durable=self._durable,
                                             stream=STREAM, config=self._config)

    async def _fetch_forever(self) -> None:
        while not self._closing:
            free = IN_FLIGHT - len(self._running)
            if free <= 0:
                await asyncio.wait(list(self._running), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                assert self._sub is not None
                messages = await self._sub.fetch(free, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                # The server is away, or came back without our (ephemeral) consumer.
                logger.debug("fetching durable events failed: %r", exc)
                await asyncio.sleep(FETCH_WAIT / 2)
                try:
                    self._sub = await self._subscribe()
                except Exception as again:
                    logger.debug("re-subscribing failed: %r", again)
                continue
            for msg in messages:
                task = asyncio.get_running_loop().create_task(self._handle(msg))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _handle(self, msg: Msg) -> None:
        try:
            await self._deliver(msg)
        except Exception as exc:
            # A message this process cannot take now will not be taken on redelivery either:
            # end it, rather than see it fail again every ack_wait for ever.
            logger.error("durable event on %s ended unhandled: %s", msg.subject, exc)
            await self._settle(msg.term)
            return
        await self._settle(msg.ack)

    async def _settle(self, verdict: Callable[[], Awaitable[None]]) -> None:
        try:
            await verdict()
        except Exception as exc:  # the connection went: the event comes again, which is safe
            logger.warning("could not acknowledge a durable event: %r", exc)

    async def close(self) -> None:
        """Stop fetching; events still being handled are not acknowledged (they come again)."""
        self._closing = True
        tasks = {t for t in (self._task, *self._running) if t is not None}
        while tasks:
            # The client's fetch can miss a cancellation that lands as its wait ends: repeat.
            for task in tasks:
                task.cancel()
            _, tasks = await asyncio.wait(tasks, timeout=0.05)
        if self._sub is not None and self._durable is None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                logger.debug("unsubscribing the ephemeral consumer failed: %r", exc)
