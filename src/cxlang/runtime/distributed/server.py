"""Serving calls: run this process's handlers for the units of parallel calls made elsewhere.

A request carries the units of one call that the caller sent to this member (:mod:`.codec`).
Each unit's handler runs here as it would for a local call (same start path, same execution
context: the caller's execution id and parameter name), bounded by this runtime's handler
timeout, and its result goes back as soon as it has ended: the units that end at once (a CX
handler that returns) are answered by one reply, the others each as they end, those that end
in the same turn of the loop in one reply together. So a slow unit holds back no other's
result, and a request gets at most as many replies as it has units (docs/security.md: the
permission ``allow_responses`` must allow that many).

A unit's failure is reported here, like a local handler's, because here is where its source
and its logs are; the caller is told the error's own message, as a local CX handler's error
reads, not this process's Python class names (the caller may be a CX program).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..context import ExecutionContext
from ..handlers import Running, Subscription, cancel_handler, start_handler
from ..outcomes import Failure, describe
from .codec import MEMBER, Call, decode_calls, encode_failure, encode_value
from .subjects import is_local

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from ..bus import EventBus

__all__ = ["CallServer"]

logger = logging.getLogger("cxlang.distributed")

Ended = asyncio.Future[tuple[Any, BaseException | None]]


class _Answer:
    """The replies to one request: the lines of the units ended and not yet sent."""

    __slots__ = ("lines", "reply", "sending")

    def __init__(self, reply: str) -> None:
        self.reply = reply  # the caller's reply subject
        self.lines: list[bytes] = []
        self.sending = False  # a unit that ended waits one turn for others to join its reply


class CallServer:
    """Answers the requests on ``_CX.call.<group>.<member>`` with the local handlers' results."""

    def __init__(self, bus: EventBus, subject: str, member: str, timeout: float) -> None:
        self.bus = bus
        self.subject = subject
        self._signed = {MEMBER: member}  # every reply's headers
        self.timeout = timeout
        self.client: Client | None = None
        self.running: set[asyncio.Task[None]] = set()

    async def on_request(self, msg: Msg) -> None:
        answer = _Answer(msg.reply)
        try:
            calls = decode_calls(msg.data)
        except ValueError as exc:
            answer.lines.append(encode_failure(None, Failure("error", f"a malformed call: {exc}")))
        else:
            for unit, call in enumerate(calls):
                self._start(answer, unit, call)
        await self._send(answer)

    def _start(self, answer: _Answer, unit: int, call: Call | ValueError) -> None:
        """Start *unit*'s handler; its line is added to *answer* now if it ended at once."""
        if isinstance(call, ValueError):
            answer.lines.append(encode_failure(unit, Failure("error",
                                                             f"a malformed call: {call}")))
            return
        name = call.event.name
        if is_local(name):  # system.* belongs to its process: no peer calls those handlers
            answer.lines.append(encode_failure(unit, Failure(
                "no_handler", f"{name!r} is a system event: its handlers serve their own "
                              "process only")))
            return
        subs = self.bus.handlers_for(name)
        if call.handler >= len(subs):
            answer.lines.append(encode_failure(unit, Failure(
                "no_handler", f"this process has no handler #{call.handler} of {name!r}")))
            return
        sub = subs[call.handler]
        context = ExecutionContext(sub.entity, call.execution_id, call.parameter, call.event)
        loop = asyncio.get_running_loop()
        ended: Ended = loop.create_future()

        def report(value: Any, error: BaseException | None) -> None:
            if not ended.done():
                ended.set_result((value, error))

        handler = None
        try:
            observer = self.bus.observer
            handler = start_handler(sub, call.event, context, self.bus.pool, report, loop) \
                if observer is None else observer.start_handler(
                    sub, call.event, context, self.bus.pool, report, loop,
                    remote=call.trace or None)
        except (Exception, asyncio.CancelledError) as exc:
            report(None, exc)
        if handler is None or ended.done():
            answer.lines.append(self._line(unit, call, sub, *ended.result()))
            return
        task = loop.create_task(self._finish(answer, unit, call, sub, handler, ended))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _finish(self, answer: _Answer, unit: int, call: Call, sub: Subscription,
                      handler: Running, ended: Ended) -> None:
        try:
            value, error = await asyncio.wait_for(ended, self.timeout)
        except TimeoutError:
            cancel_handler(handler, _ignore)
            line = encode_failure(unit, Failure(
                "timeout", f"{sub.name} did not finish within {self.timeout:g} s (handling "
                           f"{call.event.name!r}) and was cancelled"))
        except asyncio.CancelledError:
            cancel_handler(handler, _ignore)
            raise  # this process is closing: the caller's own timeout will tell
        else:
            line = self._line(unit, call, sub, value, error)
        answer.lines.append(line)
        if answer.sending:
            return  # another unit that ended in this turn sends it with its own
        answer.sending = True
        await asyncio.sleep(0)  # the units that end in this turn of the loop join the reply
        answer.sending = False
        await self._send(answer)

    def _line(self, unit: int, call: Call, sub: Subscription, value: Any,
              error: BaseException | None) -> bytes:
        if error is None:
            return encode_value(unit, value, sub.name)
        if isinstance(error, asyncio.CancelledError):
            return encode_failure(unit, Failure("cancelled", f"{sub.name} was cancelled"))
        if self.bus.failure_listeners:
            self.bus.notify_failure(call.event, sub, error)
        else:
            logger.error("handler %s failed on %s (called from another process): %r",
                         sub.name, call.event.name, error)
        return encode_failure(unit, Failure("error", describe(error) or f"{sub.name} failed"))

    async def _send(self, answer: _Answer) -> None:
        lines, answer.lines = answer.lines, []
        if self.client is None or not answer.reply or not lines:
            return
        try:
            await self.client.publish(answer.reply, b"\n".join(lines), headers=self._signed)
        except Exception as exc:  # closed or draining: the caller times out instead
            logger.warning("could not reply to a call: %r", exc)

    async def close(self) -> None:
        for task in list(self.running):
            task.cancel()
        if self.running:
            await asyncio.wait(list(self.running))


def _ignore(value: Any, error: BaseException | None) -> None:
    """The end of a handler this server stopped waiting for: its reply has gone already."""
