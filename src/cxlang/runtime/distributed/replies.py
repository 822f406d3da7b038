"""The replies to this process's calls, each taken only from the member it was sent to.

A call goes to one member's own subject with a reply subject under this process's inbox (one
wildcard subscription for all calls), and the member's reply names it (``Cx-Member``). Any
other message there, such as a peer's answer to a call it overheard, is dropped and told, and
the call waits on for its member's. The server's "no responders" (status 503) says that nobody
subscribes to the member's subject any more: it has gone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .codec import MEMBER
from .drops import DroppedEvents

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["Gone", "Replies"]

_STATUS = "Status"  # the header nats-py gives a server's status line
_NO_RESPONDERS = "503"


class Gone(Exception):  # noqa: N818 - a state of the member called
    """Nobody subscribes to the called member's subject: it left, or died."""


class Replies:
    """Sends calls and hands each the reply of the member it called."""

    def __init__(self, drops: DroppedEvents) -> None:
        self.drops = drops
        self._prefix = ""
        self._waiting: dict[str, tuple[str, asyncio.Future[bytes]]] = {}
        self._count = 0

    async def open(self, client: Client) -> None:
        self._prefix = client.new_inbox() + "."
        await client.subscribe(self._prefix + "*", cb=self._on_reply)

    async def call(self, client: Client, subject: str, member: str, body: bytes,
                   headers: dict[str, str]) -> bytes:
        """The body of *member*'s reply to *body* sent on *subject*; raises :class:`Gone`."""
        self._count += 1
        token = str(self._count)  # the inbox itself is random: a count tells calls apart
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (member, future)
        try:
            await client.publish(subject, body, reply=self._prefix + token, headers=headers)
            return await future
        finally:
            del self._waiting[token]

    async def _on_reply(self, msg: Msg) -> None:
        waiting = self._waiting.get(msg.subject[len(self._prefix):])
        if waiting is None or waiting[1].done():
            return  # a call that ended already (timed out, cancelled), or was answered
        member, future = waiting
        headers = msg.headers
        if headers is not None and headers.get(MEMBER) == member:
            future.set_result(msg.data)
        elif headers is not None and headers.get(_STATUS) == _NO_RESPONDERS and not msg.data:
            future.set_exception(Gone())
        else:
            self.drops.dropped("a reply to a call", "it did not come from the member the call "
                                                    "was sent to")
