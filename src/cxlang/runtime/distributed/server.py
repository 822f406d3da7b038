"""Serving calls: run one of this process's handlers for a parallel call made elsewhere.

The handler runs here as it would for a local call (same start path, same execution context:
the caller's execution id and parameter name), bounded by this runtime's handler timeout, and
the reply carries its value or its failure, and this member's id (the caller takes no other's).
Its failure is reported here, like a local handler's, because here is where its source and its
logs are; the caller is told the error's own message, as a local CX handler's error reads, not
this process's Python class names (the caller may be a CX program).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..context import ExecutionContext
from ..handlers import Running, Subscription, cancel_handler, start_handler
from ..outcomes import Failure, describe
from .codec import MEMBER, Call, decode_call, encode_failure, encode_value
from .subjects import is_local

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from ..bus import EventBus
    from ..events import Event

__all__ = ["CallServer"]

logger = logging.getLogger("cxlang.distributed")


class CallServer:
    """Answers ``_CX.call.<group>.<member>.<event>`` requests with the local handlers'
    results."""

    def __init__(self, bus: EventBus, prefix: str, member: str, timeout: float) -> None:
        self.bus = bus
        self.prefix = prefix  # "_CX.call.<group>.<member>."
        self._signed = {MEMBER: member}  # every reply's headers
        self.timeout = timeout
        self.client: Client | None = None
        self.running: set[asyncio.Task[None]] = set()

    async def on_request(self, msg: Msg) -> None:
        name = msg.subject[len(self.prefix):]
        if is_local(name):  # system.* belongs to its process: no peer calls those handlers
            await self._reply(msg, encode_failure(Failure(
                "no_handler", f"{name!r} is a system event: its handlers serve their own "
                              "process only")))
            return
        try:
            call = decode_call(name, msg.headers, msg.data)
        except ValueError as exc:
            await self._reply(msg, encode_failure(Failure("error", f"a malformed call: {exc}")))
            return
        subs = self.bus.handlers_for(name)
        if call.handler >= len(subs):
            await self._reply(msg, encode_failure(Failure(
                "no_handler", f"this process has no handler #{call.handler} of {name!r}")))
            return
        sub = subs[call.handler]
        context = ExecutionContext(sub.entity, call.execution_id, call.parameter, call.event)
        ended: asyncio.Future[tuple[Any, BaseException | None]] = \
            asyncio.get_running_loop().create_future()

        def report(value: Any, error: BaseException | None) -> None:
            if not ended.done():
                ended.set_result((value, error))

        handler = None
        try:
            observer = self.bus.observer
            handler = start_handler(sub, call.event, context, self.bus.pool, report) \
                if observer is None else observer.start_handler(
                    sub, call.event, context, self.bus.pool, report, remote=msg.headers)
        except (Exception, asyncio.CancelledError) as exc:
            report(None, exc)
        if handler is None or ended.done():
            await self._reply(msg, self._reply_body(call, sub, *ended.result()))
            return
        # Requests of one subscription arrive one after the other: finish in a task.
        task = asyncio.get_running_loop().create_task(self._finish(msg, call, sub, handler,
                                                                   ended))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _finish(self, msg: Msg, call: Call, sub: Subscription,
                      handler: Running,
                      ended: asyncio.Future[tuple[Any, BaseException | None]]) -> None:
        try:
            value, error = await asyncio.wait_for(ended, self.timeout)
        except TimeoutError:
            cancel_handler(handler, _ignore)
            body = encode_failure(Failure(
                "timeout", f"{sub.name} did not finish within {self.timeout:g} s (handling "
                           f"{call.event.name!r}) and was cancelled"))
        except asyncio.CancelledError:
            cancel_handler(handler, _ignore)
            raise  # this process is closing: the caller's own timeout will tell
        else:
            body = self._reply_body(call, sub, value, error)
        await self._reply(msg, body)

    def _reply_body(self, call: Call, sub: Subscription, value: Any,
                    error: BaseException | None) -> bytes:
        if error is None:
            return encode_value(value, sub.name)
        if isinstance(error, asyncio.CancelledError):
            return encode_failure(Failure("cancelled", f"{sub.name} was cancelled"))
        return self._failed(call.event, sub, error)

    def _failed(self, event: Event, sub: Subscription, exc: BaseException) -> bytes:
        if self.bus.failure_listeners:
            self.bus.notify_failure(event, sub, exc)
        else:
            logger.error("handler %s failed on %s (called from another process): %r",
                         sub.name, event.name, exc)
        return encode_failure(Failure("error", describe(exc) or f"{sub.name} failed"))

    async def _reply(self, msg: Msg, body: bytes) -> None:
        if self.client is None or not msg.reply:
            return
        try:
            await self.client.publish(msg.reply, body, headers=self._signed)
        except Exception as exc:  # closed or draining: the caller times out instead
            logger.warning("could not reply to a call of %s: %r", msg.subject, exc)

    async def close(self) -> None:
        for task in list(self.running):
            task.cancel()
        if self.running:
            await asyncio.wait(list(self.running))


def _ignore(value: Any, error: BaseException | None) -> None:
    """The end of a handler this server stopped waiting for: its reply has gone already."""
