"""Handlers in other processes, as units of a parallel call.

For each handler another group serves, the coordinator gets one :class:`Subscription` whose
callback is a :class:`RemoteHandler`: a coroutine that sends the event to that group
(request/reply on ``_CX.call.<group>.<event>``, one member of the group answers) and returns the
handler's value. So a remote handler is timed out, cancelled and counted exactly like a local
one; only its failures are reported by the process that ran it, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nats.errors import NoRespondersError

from ..context import current_context
from ..coordinator import BranchFailed
from ..events import Event, EventPattern
from ..handlers import HandlerKind, Subscription
from ..observe.span import current_span
from ..outcomes import Failure
from .codec import call_headers, decode_reply, encode_payload
from .directory import Directory
from .subjects import call_subject, is_local

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["RemoteHandler", "RemoteHandlers"]

# The coordinator times a unit out by cancelling it; the request itself need not.
_FOREVER = 365 * 24 * 3600.0


class RemoteHandlers:
    """Makes (and caches, until the directory changes) the remote units of an event."""

    def __init__(self, directory: Directory, origin: str) -> None:
        self.directory = directory
        self.origin = origin
        self.client: Client | None = None  # set while connected; no units without it
        self._units: dict[str, tuple[Subscription, ...]] = {}
        self._version = -1
        self._body: tuple[Event | None, bytes] = (None, b"")

    def units(self, name: str) -> tuple[Subscription, ...]:
        if self.client is None or is_local(name):
            return ()
        if self._version != self.directory.version:
            self._units.clear()
            self._version = self.directory.version
        units = self._units.get(name)
        if units is None:
            units = self._units[name] = tuple(
                _unit(name, RemoteHandler(self, group, index))
                for group, count in self.directory.servers(name) for index in range(count))
        return units

    def body_of(self, event: Event) -> bytes:
        """The event's payload as JSON, encoded once for all the units of a branch."""
        last, body = self._body
        if last is not event:
            body = encode_payload(event)
            self._body = (event, body)
        return body


class RemoteHandler:
    """Handler number *index* of *group* for an event: called like a local ``async def``."""

    __slots__ = ("group", "index", "link")

    def __init__(self, link: RemoteHandlers, group: str, index: int) -> None:
        self.link = link
        self.group = group
        self.index = index

    async def __call__(self, event: Event) -> Any:
        link = self.link
        client = link.client
        if client is None:
            raise BranchFailed(Failure("error", "the bus was closed before the call"))
        headers = call_headers(event, current_context(), self.index, link.origin)
        span = current_span()
        if span is not None:  # traced: the serving process's handler span continues this one
            headers.update(span.headers())
        try:
            reply = await client.request(call_subject(self.group, event.name),
                                         link.body_of(event), timeout=_FOREVER, headers=headers)
        except NoRespondersError:
            link.directory.forget_group(self.group)
            raise BranchFailed(Failure(
                "no_handler", f"no process of group {self.group!r} serves {event.name!r} any "
                              "more (it was listed, but none is connected)")) from None
        return decode_reply(reply.data)

    def __repr__(self) -> str:
        return f"handler #{self.index} of group {self.group!r}"


def _unit(name: str, handler: RemoteHandler) -> Subscription:
    sub = Subscription(EventPattern(name), handler, HandlerKind.TASK, None, _stays)
    sub.name = f"{handler!r} (in another process)"
    return sub


def _stays(sub: Subscription) -> None:
    """A remote unit is never unsubscribed: the directory decides what exists."""
