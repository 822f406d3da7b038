"""What an event, a call and a reply look like on the wire.

The body is the payload as JSON: CX values (objects, arrays, strings, numbers, booleans, null)
are JSON, so every language with a NATS client can read the events. Everything about the event
rides in headers, so the body stays the payload alone:

``Cx-Id``, ``Cx-Time`` (epoch seconds), ``Cx-Parent`` and ``Cx-Depth`` (the causal parent and the
hops from the first emit), ``Cx-Origin`` (the emitting process); a call adds ``Cx-Execution``
and ``Cx-Parameter`` (the caller's execution context) and ``Cx-Handler`` (which of the serving
group's handlers of the event to run). A reply's body is ``{"value": v}`` or
``{"failure": {"type", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..context import ExecutionContext
from ..coordinator import BranchFailed
from ..events import Event
from ..outcomes import Failure
from .errors import NotPortable

__all__ = [
    "Call",
    "call_headers",
    "decode_call",
    "decode_event",
    "decode_reply",
    "encode_failure",
    "encode_payload",
    "encode_value",
    "event_headers",
    "origin_of",
]

ID = "Cx-Id"
TIME = "Cx-Time"
PARENT = "Cx-Parent"
DEPTH = "Cx-Depth"
ORIGIN = "Cx-Origin"
EXECUTION = "Cx-Execution"
PARAMETER = "Cx-Parameter"
HANDLER = "Cx-Handler"
MSG_ID = "Nats-Msg-Id"  # JetStream drops a re-sent event with the same id

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


def encode_payload(event: Event) -> bytes:
    try:
        return _dumps(event.payload).encode()
    except (TypeError, ValueError) as exc:
        raise NotPortable(
            f"event {event.name!r} cannot cross to other processes: {exc}. Payloads that cross "
            "must hold plain values (objects with string keys, arrays, strings, numbers, "
            "booleans, null)"
        ) from None


def event_headers(event: Event, origin: str) -> dict[str, str]:
    headers = {ID: event.id, TIME: repr(event.timestamp), DEPTH: str(event.depth),
               ORIGIN: origin, MSG_ID: event.id}
    if event.parent_id is not None:
        headers[PARENT] = event.parent_id
    return headers


def origin_of(headers: Mapping[str, str] | None) -> str | None:
    return None if headers is None else headers.get(ORIGIN)


def decode_event(name: str, headers: Mapping[str, str] | None, data: bytes) -> Event:
    """The event as its emitter made it; raises ``ValueError`` for a malformed message."""
    payload = _loads(data) if data else {}
    if not isinstance(payload, dict):
        raise ValueError(f"the payload of {name!r} is not a JSON object")
    if not headers or ID not in headers:
        return Event(name, payload)  # published by something that is not cxlang: a new event
    return Event(name, payload, id=headers[ID], parent_id=headers.get(PARENT),
                 depth=int(headers.get(DEPTH, "0")), timestamp=float(headers[TIME]))


def call_headers(
    event: Event, context: ExecutionContext, handler: int, origin: str
) -> dict[str, str]:
    headers = event_headers(event, origin)
    del headers[MSG_ID]
    headers[HANDLER] = str(handler)
    if context.execution_id is not None:
        headers[EXECUTION] = context.execution_id
    if context.parameter is not None:
        headers[PARAMETER] = context.parameter
    return headers


class Call(NamedTuple):
    event: Event
    execution_id: str | None
    parameter: str | None
    handler: int


def decode_call(name: str, headers: Mapping[str, str] | None, data: bytes) -> Call:
    """A call request; raises ``ValueError`` for a malformed one."""
    if not headers or HANDLER not in headers:
        raise ValueError(f"a call of {name!r} without a {HANDLER} header")
    return Call(decode_event(name, headers, data), headers.get(EXECUTION),
                headers.get(PARAMETER), int(headers[HANDLER]))


def encode_value(value: Any, handler: str) -> bytes:
    try:
        return _dumps({"value": value}).encode()
    except (TypeError, ValueError) as exc:
        return encode_failure(Failure(
            "error", f"{handler} returned a value that cannot cross to the caller's process: "
                     f"{exc}"))


def encode_failure(failure: Failure) -> bytes:
    return _dumps({"failure": failure.to_payload()}).encode()


def decode_reply(data: bytes) -> Any:
    """The handler's value; raises :class:`BranchFailed` with the failure it reported."""
    reply = _loads(data)
    if "failure" in reply:
        failure = reply["failure"]
        raise BranchFailed(Failure(failure["type"], failure["message"]))
    return reply["value"]
