"""Call requests, and the replies to them, each taken only from the member it was sent to.

The units of a parallel call start in one turn of the loop; each asks here for its handler to
be run by one member, and the units bound for one member in that turn travel as one request
(up to :data:`~.codec.MAX_UNITS` units), sent on the next turn, on the member's own subject
with a reply subject under this process's inbox (one wildcard subscription for all requests).
The member answers each unit as it ends, several in one reply when they end together; every
reply names the member (``Cx-Member``). Any other message there, such as a peer's answer to a
call it overheard, is dropped and told, and the units wait on for their member's. The server's
"no responders" (status 503) says that nobody subscribes to the member's subject any more: it
has gone, and every unit of the request hears so (and tries another member).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .codec import MAX_UNITS, MEMBER, Result, decode_reply
from .drops import DroppedEvents

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["Gone", "Replies"]

_STATUS = "Status"  # the header nats-py gives a server's status line
_NO_RESPONDERS = "503"


class Gone(Exception):  # noqa: N818 - a state of the member called
    """Nobody subscribes to the called member's subject: it left, or died."""


class _Request:
    """The units sent to one member in one request, and the futures their results go to."""

    __slots__ = ("futures", "lines", "member", "subject", "token", "waiting")

    def __init__(self, token: str, subject: str, member: str) -> None:
        self.token = token  # the reply subject's last token
        self.subject = subject
        self.member = member
        self.lines: list[bytes] = []
        self.futures: list[asyncio.Future[Result]] = []
        self.waiting = 0  # units still waiting for their result


class Replies:
    """Sends the call requests of this process and hands each unit its member's result."""

    def __init__(self, drops: DroppedEvents) -> None:
        self.drops = drops
        self._prefix = ""
        self._waiting: dict[str, _Request] = {}  # by token
        self._forming: dict[str, _Request] = {}  # by subject: the request taking its units
        self._formed: list[_Request] = []  # every request of this turn, sent on the next
        self._count = 0
        self._sending: set[asyncio.Task[None]] = set()

    async def open(self, client: Client) -> None:
        self._prefix = client.new_inbox() + "."
        await client.subscribe(self._prefix + "*", cb=self._on_reply)

    async def call(self, client: Client, subject: str, member: str, line: bytes) -> Result:
        """*member*'s result of the unit *line* (:func:`~.codec.encode_call`) sent on
        *subject*; raises :class:`Gone`."""
        request = self._forming.get(subject)
        if request is None or len(request.lines) >= MAX_UNITS:
            request = self._new_request(client, subject, member)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        request.lines.append(line)
        request.futures.append(future)
        request.waiting += 1
        try:
            return await future
        finally:
            request.waiting -= 1
            if not request.waiting:
                self._waiting.pop(request.token, None)

    def _new_request(self, client: Client, subject: str, member: str) -> _Request:
        self._count += 1
        token = str(self._count)  # the inbox itself is random: a count tells requests apart
        request = self._waiting[token] = _Request(token, subject, member)
        self._forming[subject] = request
        self._formed.append(request)
        if len(self._formed) == 1:
            # Its first step comes on the loop's next turn, once every unit started in this
            # one has joined its request.
            task = asyncio.get_running_loop().create_task(self._send_formed(client))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return request

    async def _send_formed(self, client: Client) -> None:
        if not self._formed[0].lines:
            await asyncio.sleep(0)  # started eagerly (an eager task factory): on the next turn
        requests = self._formed
        self._formed = []
        self._forming.clear()
        for request in requests:
            if not request.waiting:
                continue  # every unit of it was cancelled before it went
            try:
                await client.publish(request.subject, b"\n".join(request.lines),
                                     reply=self._prefix + request.token)
            except Exception as exc:  # closed, say: each unit fails with it
                for future in request.futures:
                    if not future.done():
                        future.set_exception(exc)

    async def _on_reply(self, msg: Msg) -> None:
        request = self._waiting.get(msg.subject[len(self._prefix):])
        if request is None:
            return  # a request whose units all ended already (timed out, cancelled, answered)
        headers = msg.headers
        if headers is not None and headers.get(MEMBER) == request.member:
            self._results(request, msg.data)
        elif headers is not None and headers.get(_STATUS) == _NO_RESPONDERS and not msg.data:
            for future in request.futures:
                if not future.done():
                    future.set_exception(Gone())
        else:
            self.drops.dropped("a reply to a call", "it did not come from the member the call "
                                                    "was sent to")

    def _results(self, request: _Request, data: bytes) -> None:
        futures = request.futures
        for result in decode_reply(data):
            if isinstance(result, ValueError):
                self.drops.dropped("a reply to a call", f"malformed: {result}")
            elif result.unit is None:
                for future in futures:
                    if not future.done():
                        future.set_result(result)
            elif result.unit < len(futures):
                if not futures[result.unit].done():
                    futures[result.unit].set_result(result)
            else:
                self.drops.dropped("a reply to a call", "it answered a unit the call did "
                                                        "not have")
