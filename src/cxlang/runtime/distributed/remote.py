"""Handlers in other processes, as units of a parallel call.

For each handler another group serves, the coordinator gets one :class:`Subscription` whose
callback is a :class:`RemoteHandler`: a coroutine that sends the event to one member of that
group (members taken in turn, so a group's members share the calls; the units of one call
bound for one member go in one request on ``_CX.call.<group>.<member>``, :mod:`.replies`) and
returns the handler's value, as that member replied. So a remote handler is timed out,
cancelled and counted exactly like a local one; only its failures are reported by the process
that ran it, not here.

A member that has gone without a word ("no responders") is forgotten and the call goes to
another member of its group, up to :data:`TRIES` members; then that unit, and only it, fails
``no_handler`` at once. A peer that announces a member nobody runs costs no more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..context import current_context
from ..coordinator import BranchFailed
from ..events import Event, EventPattern
from ..handlers import HandlerKind, Subscription
from ..observe.span import current_span
from ..outcomes import Failure
from .codec import encode_call, encode_payload
from .directory import Directory
from .replies import Gone, Replies
from .subjects import call_subject, is_local

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["RemoteHandler", "RemoteHandlers"]

TRIES = 3  # members of a group one unit calls before it fails for want of a live one


class RemoteHandlers:
    """Makes (and caches, until the directory changes) the remote units of an event."""

    def __init__(self, directory: Directory, origin: str, replies: Replies) -> None:
        self.directory = directory
        self.origin = origin
        self.replies = replies
        self.client: Client | None = None  # set while connected; no units without it
        self.turn = 0  # which member of a group the next call goes to, round the group
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
                _unit(name, RemoteHandler(self, group, index,
                                          self.directory.serving(name, group, index)))
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
    """Handler number *index* of *group* for an event, run by one of *members*: called like a
    local ``async def``."""

    __slots__ = ("group", "index", "link", "members")

    def __init__(self, link: RemoteHandlers, group: str, index: int,
                 members: tuple[str, ...]) -> None:
        self.link = link
        self.group = group
        self.index = index
        self.members = members

    async def __call__(self, event: Event) -> Any:
        link = self.link
        client = link.client
        if client is None:
            raise BranchFailed(Failure("error", "the bus was closed before the call"))
        span = current_span()
        # Traced: the serving process's handler span continues this one.
        trace = {} if span is None else span.headers()
        line = encode_call(event, link.body_of(event), current_context(), self.index, trace)
        members = self.members
        for _ in range(TRIES):
            member = members[link.turn % len(members)]
            link.turn += 1
            try:
                result = await link.replies.call(client, call_subject(self.group, member),
                                                 member, line)
            except Gone:
                link.directory.leave(member)
                members = link.directory.serving(event.name, self.group, self.index)
                if not members:
                    break
            else:
                if result.failure is not None:
                    raise BranchFailed(result.failure)
                return result.value
        raise BranchFailed(Failure(
            "no_handler", f"no process of group {self.group!r} serves {event.name!r} any more "
                          "(it was listed, but the members called are gone)"))

    def __repr__(self) -> str:
        return f"handler #{self.index} of group {self.group!r}"


def _unit(name: str, handler: RemoteHandler) -> Subscription:
    sub = Subscription(EventPattern(name), handler, HandlerKind.TASK, None, _stays)
    sub.name = f"{handler!r} (in another process)"
    return sub


def _stays(sub: Subscription) -> None:
    """A remote unit is never unsubscribed: the directory decides what exists."""
