"""NatsTransport: one runtime's connection to the bus, behind the bus's ``Transport`` seam.

It keeps NATS in step with the runtime: the bus's patterns become subscriptions (in the
runtime's group, so members of one group share the events), the directory learns who else
serves what, emits go out through the outbox, and calls from other processes are served.

How local and remote handlers combine:

* **Events.** The emitting process runs its own handlers locally and publishes the event; every
  other group runs its handlers of it once, in one of its members. Every subscription is a queue
  subscription in the runtime's group (a lone process is a group of one), and NATS hands a
  message to one subscription per queue group however many of its patterns match: so two
  overlapping patterns of one process still deliver an event once, to all its handlers.
* **Parallel parameters.** The branch's units are the local handlers, in subscription order,
  then each other group's handlers of the event, groups ordered by name, each group's in its own
  subscription order. One unit in all gives its value, several give that list; none, here or
  anywhere, gives ``no_handler``.

After a reconnect, held emits wait until every process known before the outage has announced
itself again (so it has resubscribed and will not miss them), for at most ``SETTLE`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from ..errors import QueueFull, RuntimeClosed
from ..events import Event, new_origin
from .codec import (
    BATCH,
    ID,
    decode_announcement,
    decode_batch,
    decode_event,
    encode_batch,
    encode_payload,
    event_headers,
    origin_of,
)
from .credentials import FileCredentials, connect_options, shown
from .directory import Directory
from .drops import DroppedEvents
from .durable import DurableConsumer, ensure_stream
from .errors import BusUnavailable, NotPortable
from .outbox import Item, Outbox
from .recent import RecentIds
from .remote import RemoteHandlers
from .replies import Replies
from .server import CallServer
from .subjects import (
    DURABLE,
    PRESENCE_ALL,
    PRESENCE_QUERY,
    call_subject,
    check_group,
    is_event_subject,
    is_local,
    pattern_subject,
    portable_name,
    presence_subject,
)

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..coordinator import ParallelHandlerCoordinator
    from ..handlers import Subscription

__all__ = ["NatsTransport"]

CONNECT_TIMEOUT = 5.0  # seconds to reach the server at start, before a clear error
RECONNECT_WAIT = 0.25  # seconds between reconnect attempts (for ever: servers restart)
QUIET = 0.05  # a directory query ends when no answer came for this long...
QUERY_MAX = 1.0  # ...or after this long
SETTLE = 2.0  # see the module docstring
FLUSH_TIMEOUT = 5.0  # seconds close() waits for emits to reach the server
CONFIRM_TIMEOUT = 2  # seconds the server has to confirm what was sent (the client takes an int)

logger = logging.getLogger("cxlang.distributed")
_get_running_loop = asyncio.events._get_running_loop


class NatsTransport:
    """The bus of one :class:`~cxlang.Runtime` over the NATS server at *url*."""

    def __init__(
        self,
        url: str,
        bus: EventBus,
        coordinator: ParallelHandlerCoordinator,
        *,
        group: str | None,
        durable: bool,
        handler_timeout: float,
        ack_wait: float = 30.0,
        credentials: FileCredentials | None = None,
    ) -> None:
        self.url = url
        self.credentials = credentials  # a configuration file's (cx.toml [bus])
        self.shown_url = shown(url)  # for messages: without a password or token
        self._refused: Exception | None = None  # why the server refused to connect, if it did
        self.bus = bus
        self.coordinator = coordinator
        self.origin = new_origin()  # this process's member id
        self.shared = group is not None
        self.group = check_group(group) if group is not None else f"cx-{self.origin}"
        self.durable = durable
        self.ack_wait = ack_wait
        self.drops = DroppedEvents()
        self.directory = Directory(self.group)
        self.replies = Replies(self.drops)
        self.remote = RemoteHandlers(self.directory, self.origin, self.replies)
        self.server = CallServer(bus, call_subject(self.group, self.origin), self.origin,
                                 handler_timeout)
        if durable:
            # One JetStream message per event: the stream drops a re-sent one by its id.
            self.outbox = Outbox(self._send_durable, _retryable, bus.max_queue, batch=1)
        else:
            self.outbox = Outbox(self._send, _retryable, bus.max_queue, self._confirm)
        self._recent = RecentIds()
        self._presence = presence_subject(self.group, self.origin)
        self._heard = 0  # announcements heard: a query ends when no more come
        self.client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: dict[str, NatsSubscription] = {}  # pattern subject -> its subscription
        self._announced: tuple[str, ...] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._resync = False
        self._consumer: DurableConsumer | None = None
        self._seen: set[str] = set()
        self._seen_all: asyncio.Event | None = None
        self._expected: frozenset[str] = frozenset()
        self._tasks: set[asyncio.Task[None]] = set()
        bus.transport = self

    # The bus's seam --------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        name = event.name
        if is_local(name):
            return
        if not portable_name(name):
            raise NotPortable(
                f"event {name!r} cannot cross to other processes: a NATS subject is dotted "
                "words without blanks, '*' or '>', and not starting with '_' or '$'")
        subject = DURABLE + name if self.durable else name
        item = (subject, encode_payload(event), event)
        loop = self._loop
        if _get_running_loop() is None and loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._put, item)  # emitted from a handler's thread
        else:
            self.outbox.put(item)

    def subscriptions_changed(self) -> None:
        loop = self._loop
        if self.client is None or loop is None:
            return  # connect() subscribes to everything there is by then
        if _get_running_loop() is not loop:
            loop.call_soon_threadsafe(self.subscriptions_changed)  # from a handler's thread
        elif self._sync_task is None or self._sync_task.done():
            self._sync_task = loop.create_task(self._sync())
        else:
            self._resync = True

    def remote_handlers(self, name: str) -> tuple[Subscription, ...]:
        return self.remote.units(name)

    # Connecting ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, subscribe, learn who else is on the bus, start sending.

        Raises :class:`BusUnavailable`, with what to do, when the server cannot be reached.
        """
        if self.client is not None:
            return
        self._loop = asyncio.get_running_loop()
        await _probe(self.url)
        client = Client()
        options: dict[str, Any] = {
            "name": f"cxlang {self.group}", "no_echo": True, "allow_reconnect": True,
            "max_reconnect_attempts": -1, "reconnect_time_wait": RECONNECT_WAIT,
            "connect_timeout": CONNECT_TIMEOUT, "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected, "reconnected_cb": self._on_reconnected,
            **connect_options(self.url, file=self.credentials),
        }
        self._refused = None
        try:
            await asyncio.wait_for(client.connect(self.url, **options), CONNECT_TIMEOUT)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await _close_quietly(client)
            reason = self._refused or exc
            if _is_authorization(reason):
                raise BusUnavailable(
                    f"the NATS server at {self.shown_url} refused this process's credentials "
                    f"({reason}): give them in the URL (nats://user:password@host:port) or "
                    "in NATS_CREDS, NATS_NKEY, NATS_USER/NATS_PASSWORD or NATS_TOKEN") from None
            raise BusUnavailable(f"cannot connect to the NATS server at {self.shown_url}: "
                                 f"{reason!r}. {_START_ONE}") from None
        self.client = self.server.client = client
        try:
            await client.subscribe(PRESENCE_ALL, cb=self._on_presence)
            await client.subscribe(PRESENCE_QUERY, cb=self._on_query)
            await client.subscribe(self.server.subject, cb=self.server.on_request)
            await self.replies.open(client)
            if self.durable:
                js = client.jetstream()
                await ensure_stream(js, self.shown_url)
                self._consumer = DurableConsumer(js, self.group if self.shared else None,
                                                 self.ack_wait, self._on_durable)
                await self._consumer.start()
            await self._sync()
            await self._query()
        except BaseException:
            await self.close()
            raise
        self.remote.client = client
        self.outbox.open()

    async def settle(self) -> None:
        """Wait until the server knows every subscription made so far (a worker is ready)."""
        while self._sync_task is not None and not self._sync_task.done():
            await self._sync_task
        if self.client is not None:
            await self.client.flush()

    async def close(self) -> None:
        """Send what is still queued (for a while), leave the directory, disconnect."""
        client = self.client
        if client is None:
            return
        self.remote.client = None
        if client.is_connected:
            left = await self.outbox.flush(FLUSH_TIMEOUT)
        else:
            left = len(self.outbox)
        if left:
            logger.warning("%d event(s) emitted here never reached the NATS server at %s",
                           left, self.shown_url)
        await self.outbox.close()
        if self._consumer is not None:
            await self._consumer.close()
        await self.server.close()
        self.drops.flush()
        for task in list(self._tasks):
            task.cancel()
        self.client = self.server.client = None
        try:
            if client.is_connected:
                await client.publish(self._presence, self._announcement(leaving=True))
                await client.flush(timeout=CONFIRM_TIMEOUT)
        except Exception as exc:
            logger.debug("leaving the bus: %r", exc)
        await _close_quietly(client)

    # Keeping NATS in step with the bus -------------------------------------------------------

    def _patterns(self) -> tuple[str, ...]:
        return tuple(s.pattern.text for s in self.bus.subscriptions
                     if not is_local(s.pattern.text))

    async def _sync(self) -> None:
        """Subscribe to the bus's patterns (one subscription per subject), announce them."""
        client = self.client
        while client is not None:
            self._resync = False
            patterns = self._patterns()
            wanted = list(dict.fromkeys(pattern_subject(p) for p in patterns))
            if not self.durable:
                for subject in wanted:
                    if subject not in self._subs:
                        self._subs[subject] = await client.subscribe(
                            subject, queue=self.group, cb=self.deliver)
                for subject in [s for s in self._subs if s not in wanted]:
                    await self._subs.pop(subject).unsubscribe()
            if patterns != self._announced:
                self._announced = patterns
                await client.publish(self._presence, self._announcement())
            if not self._resync:
                return

    def _announcement(self, *, leaving: bool = False) -> bytes:
        return json.dumps({"member": self.origin, "group": self.group, "leaving": leaving,
                           "patterns": list(self._announced or ())}).encode()

    # Receiving -------------------------------------------------------------------------------

    async def deliver(self, msg: Msg) -> None:
        """An event from another process, or a batch of them: dispatched here like one emitted
        here."""
        name = msg.subject
        if not is_event_subject(name) or is_local(name):
            # A reply or cxlang's own traffic that a broad pattern also matches; or a
            # system.* event, which belongs to the process that emitted it (no peer shuts
            # this one down or writes to its console).
            return
        headers = msg.headers
        if headers is not None and BATCH in headers:
            self._deliver_batch(name, msg.data)
            return
        if headers and not self._recent.first_time(headers.get(ID)):
            return  # sent again after a reconnect, but it had arrived
        try:
            event = decode_event(name, headers, msg.data)
        except ValueError as exc:
            self.drops.dropped(f"event {name}", f"malformed: {exc}")
            return
        self._dispatch(event)

    def _deliver_batch(self, name: str, data: bytes) -> None:
        """Each event of a batch on its own: a malformed or repeated one is dropped alone."""
        first_time = self._recent.first_time
        try:
            for event in decode_batch(name, data):
                if isinstance(event, ValueError):
                    self.drops.dropped(f"event {name}", f"malformed: {event}")
                elif first_time(event.id):
                    self._dispatch(event)
        except ValueError as exc:
            self.drops.dropped(f"events {name}", f"malformed: {exc}")

    def _dispatch(self, event: Event) -> None:
        """Queue *event* here, unless it is too deep or the queue is full (the drop told)."""
        if self._too_deep(event):
            return
        try:
            self.bus.enqueue(event)
        except RuntimeClosed:
            pass
        except QueueFull:
            self.drops.dropped(f"event {event.name}", f"the event queue is full "
                                                      f"({self.bus.max_queue:,} events waiting)")

    def _too_deep(self, event: Event) -> bool:
        """Whether *event* arrived at or past this process's own --max-depth (the drop told):
        a peer's message may stop what it leads to, never the process."""
        if event.depth < self.bus.max_depth:
            return False
        self.drops.dropped(f"event {event.name}", f"it arrived {event.depth:,} causal hops deep, "
                                                  f"at or past this process's limit of "
                                                  f"{self.bus.max_depth:,}")
        return True

    async def _on_durable(self, msg: Msg) -> None:
        """A durable event, dispatched to this process's handlers and waited for; a
        malformed one is dropped (and acknowledged: no redelivery would mend it)."""
        name = msg.subject[len(DURABLE):]
        if is_local(name) or origin_of(msg.headers) == self.origin \
                or not self.bus.handlers_for(name):
            return  # its emitter ran its handlers here already; or nothing here handles it
        try:
            event = decode_event(name, msg.headers, msg.data)
        except ValueError as exc:
            self.drops.dropped(f"event {name}", f"malformed: {exc}")
            return
        if not self._too_deep(event):
            await self.coordinator.emit_parallel([event], publish=False)

    # The directory ---------------------------------------------------------------------------

    async def _on_presence(self, msg: Msg) -> None:
        try:
            announcement, leaving = decode_announcement(msg.subject, msg.data)
        except ValueError as exc:
            self.drops.dropped("an announcement of who serves what", f"malformed: {exc}")
            return
        self._heard += 1
        member = announcement.member
        if member == self.origin:
            # Not this process's own (the server echoes none back): a peer spoke in its name.
            # Said again, so that the others believe this process, not the forger.
            self.drops.dropped("an announcement of who serves what",
                               "it was made in this process's name")
            await self._on_query(msg)
            return
        if leaving:
            self.directory.leave(member)
        else:
            self.directory.announce(announcement)
        self._seen.add(member)
        if self._seen_all is not None and self._expected <= self._seen:
            self._seen_all.set()

    async def _on_query(self, msg: Msg) -> None:
        """Announce this process again, on its own subject (an answer to the asker's inbox
        could come from anyone; this subject, permissions can reserve)."""
        if self.client is not None and self._announced is not None:
            await self.client.publish(self._presence, self._announcement())

    async def _query(self) -> None:
        """Ask everyone to announce themselves again; listen until announcements stop."""
        client = self.client
        assert client is not None
        await client.publish(PRESENCE_QUERY, b"")
        await client.flush()
        waited, seen = 0.0, -1
        while self._heard != seen and waited < QUERY_MAX:
            seen = self._heard
            await asyncio.sleep(QUIET)
            waited += QUIET

    # Faults ----------------------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        if _is_authorization(exc):
            self._refused = exc  # the client raises only a timeout: keep the real reason
        elif "permissions violation" in str(exc).lower():
            # The server's permissions refuse something this process did: said, not hidden.
            logger.error("the NATS server at %s refused: %s", self.shown_url, exc)
        else:
            logger.debug("NATS: %r", exc)

    async def _on_disconnected(self) -> None:
        if self.client is not None:
            self.outbox.hold()
            logger.warning("lost the connection to the NATS server at %s; reconnecting "
                           "(emits are kept until then)", self.shown_url)

    async def _on_reconnected(self) -> None:
        if self.client is None:
            return
        logger.warning("reconnected to the NATS server at %s", self.shown_url)
        task = asyncio.get_running_loop().create_task(self._rejoin())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rejoin(self) -> None:
        client = self.client
        if client is None:
            return
        self._expected = self.directory.members
        self._seen = set()
        self._seen_all = asyncio.Event()
        await client.publish(self._presence, self._announcement())
        await self._query()
        if not self._expected <= self._seen:
            # A process that does not come back must not hold the others up for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen_all.wait(), SETTLE)
        self._seen_all = None
        self.outbox.open()

    def _put(self, item: Item) -> None:
        try:
            self.outbox.put(item)
        except QueueFull as exc:
            logger.error("%s", exc)

    async def _send(self, run: list[Item]) -> None:
        client = self.client
        if client is None or not client.is_connected:
            # Kept here rather than in the client's buffer, which a dropped socket can lose.
            raise nats.errors.ConnectionReconnectingError
        subject, body, event = run[0]
        if len(run) == 1:
            await client.publish(subject, body, headers=event_headers(event, self.origin))
        else:
            body, headers = encode_batch([(body, event) for _, body, event in run], self.origin)
            await client.publish(subject, body, headers=headers)

    async def _confirm(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            raise nats.errors.ConnectionReconnectingError
        await client.flush(timeout=CONFIRM_TIMEOUT)

    async def _send_durable(self, run: list[Item]) -> None:
        client = self.client
        if client is None:
            raise nats.errors.ConnectionClosedError
        [(subject, body, event)] = run
        await client.jetstream().publish(subject, body, headers=event_headers(event, self.origin),
                                         timeout=2.0)


_START_ONE = ("Start a server (nats-server -a 127.0.0.1 -p 4222 -js) or give the address of a "
              "running one, e.g. --bus nats://127.0.0.1:4222")


def _is_authorization(exc: object) -> bool:
    return "authorization" in str(exc).lower()


def _retryable(exc: Exception) -> bool:
    """A send that may succeed later: not a message the server will never take."""
    return not isinstance(exc, nats.errors.MaxPayloadError | nats.errors.BadSubjectError)


async def _probe(url: str) -> None:
    """Fail fast, with what to do, when nothing listens at *url* (the client would retry)."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.scheme not in ("nats", "tls"):
        raise BusUnavailable(f"unsupported bus {shown(url)!r}: give a NATS address such as "
                             "nats://127.0.0.1:4222")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else \
            exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer"
        raise BusUnavailable(f"cannot reach the NATS server at {shown(url)} ({reason}). "
                             f"{_START_ONE}") from None
    writer.close()


async def _close_quietly(client: Client) -> None:
    try:
        await client.close()
    except Exception as exc:
        logger.debug("closing the NATS client: %r", exc)
