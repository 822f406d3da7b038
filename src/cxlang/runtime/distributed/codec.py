"""What an event, a call and a reply look like on the wire.

The body is the payload as JSON: CX values (objects, arrays, strings, numbers, booleans, null)
are JSON, so every language with a NATS client can read the events. Everything about the event
rides in headers, so the body stays the payload alone:

``Cx-Id``, ``Cx-Time`` (epoch seconds), ``Cx-Parent`` and ``Cx-Depth`` (the causal parent and the
hops from the first emit), ``Cx-Origin`` (the emitting process); a call adds ``Cx-Execution``
and ``Cx-Parameter`` (the caller's execution context) and ``Cx-Handler`` (which of the serving
group's handlers of the event to run). A reply's body is ``{"value": v}`` or
``{"failure": {"type", "message"}}``, and its ``Cx-Member`` header names the member that ran
the handler (the caller takes a reply from the member it called and no other).

What arrives is bounded before it is believed: any peer on the bus can send anything, and one
message must never stop a process. JSON nested deeper than :data:`MAX_NESTING`, headers that
are not what cxlang writes (a negative or enormous depth, a time that is no number) and
replies of another shape are refused as malformed (``ValueError``), never a traceback.

**Batches of events.** Events of one name emitted faster than they are sent travel together:
one message on the event's subject, with ``Cx-Batch`` (how many events) and ``Cx-Origin``
headers, whose body is one line per event, in emit order, each a JSON object
``{"id", "time", "depth", "parent", "payload"}`` (the headers above, and the payload). Each
line is checked on its own, so a malformed one drops its event alone. A lone event always
travels in the plain form above, so a slow stream of events reads the same in any language.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from ..context import ExecutionContext
from ..coordinator import BranchFailed
from ..events import Event
from ..outcomes import Failure
from .directory import Announcement
from .errors import NotPortable
from .subjects import is_event_subject, is_local, presence_subject

__all__ = [
    "BATCH",
    "MAX_BATCH",
    "MEMBER",
    "Call",
    "call_headers",
    "decode_announcement",
    "decode_batch",
    "decode_call",
    "decode_event",
    "decode_reply",
    "encode_batch",
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
MEMBER = "Cx-Member"
MSG_ID = "Nats-Msg-Id"  # JetStream drops a re-sent event with the same id
BATCH = "Cx-Batch"

MAX_NESTING = 100  # levels of objects and arrays in a payload or value from another process
MAX_DEPTH = 1_000_000_000  # causal hops a header may claim (the run's own limit comes after)
_FAILURE_KINDS = frozenset({"error", "timeout", "no_handler", "cancelled"})

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_string = json.encoder.encode_basestring  # a str as JSON, as _dumps writes it


def _loads(data: bytes) -> Any:
    """JSON from another process, no deeper than :data:`MAX_NESTING`."""
    value = _parse(data)
    if data.count(b"{") + data.count(b"[") > MAX_NESTING:  # else it cannot nest deeper
        _check_nesting(value)
    return value


def _check_nesting(value: Any) -> None:
    """Walk *value* without recursion; refuse it past :data:`MAX_NESTING` levels."""
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        item, depth = level.pop()
        children = item.values() if isinstance(item, dict) else item \
            if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_NESTING:
            raise ValueError(f"JSON nested more than {MAX_NESTING} levels deep")
        level.extend((child, depth + 1) for child in children)


def _header_depth(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) > MAX_DEPTH:
        raise ValueError(f"a {DEPTH} header of {text[:20]!r}: not a count of hops")
    return int(text)


def _header_time(text: str) -> float:
    try:
        value = float(text[:40])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"a {TIME} header of {text[:20]!r}: not a time")
    return value


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
    if TIME not in headers:
        raise ValueError(f"an event with a {ID} header but no {TIME}")
    return Event(name, payload, id=headers[ID], parent_id=headers.get(PARENT),
                 depth=_header_depth(headers.get(DEPTH, "0")),
                 timestamp=_header_time(headers[TIME]))


MAX_BATCH = 1000  # events one batch may carry (a sender makes them far smaller)


def encode_batch(run: Sequence[tuple[bytes, Event]], origin: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one message carrying several events of one name, given each
    event and its payload as :func:`encode_payload` made it."""
    lines = [_LINE % (_string(event.id).encode(), repr(event.timestamp).encode(), event.depth,
                      b"null" if event.parent_id is None else _string(event.parent_id).encode(),
                      body)
             for body, event in run]
    return b"\n".join(lines), {BATCH: str(len(lines)), ORIGIN: origin}


_LINE = b'{"id":%b,"time":%b,"depth":%d,"parent":%b,"payload":%b}'


def decode_batch(name: str, data: bytes) -> Iterator[Event | ValueError]:
    """The events of a batch, in order; a malformed line gives its ``ValueError`` in its
    event's place (the others are still good). Raises ``ValueError`` for a body of more than
    :data:`MAX_BATCH` lines, refused whole."""
    lines = data.split(b"\n", MAX_BATCH)
    if len(lines) > MAX_BATCH:
        raise ValueError(f"a batch of more than {MAX_BATCH:,} events")
    entries = _all_entries(data, len(lines))
    for i, line in enumerate(lines):
        try:
            entry = _parse(line) if entries is None else entries[i]
            if line.count(b"{") + line.count(b"[") > MAX_NESTING and isinstance(entry, dict):
                _check_nesting(entry.get("payload"))  # else it cannot nest too deep
            yield _batched_event(name, entry)
        except ValueError as exc:
            yield exc


def _all_entries(data: bytes, count: int) -> list[Any] | None:
    """Every line of a well-formed batch, parsed in one go (the common case, and the cheap
    one); ``None`` when the lines must be parsed one by one to find the bad ones."""
    try:
        entries = json.loads(b"[" + data.replace(b"\n", b",") + b"]")
    except (ValueError, RecursionError):
        return None
    return entries if isinstance(entries, list) and len(entries) == count else None


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except RecursionError:  # deeper than the parser's own stack allows
        raise ValueError(f"JSON nested more than {MAX_NESTING} levels deep") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason})") from None


def _batched_event(name: str, entry: Any) -> Event:
    if not (isinstance(entry, dict) and entry.keys() == _ENTRY_KEYS):
        raise ValueError("a batched event that is not {id, time, depth, parent, payload}")
    ident, when, depth, parent, payload = (entry["id"], entry["time"], entry["depth"],
                                           entry["parent"], entry["payload"])
    if not isinstance(payload, dict):
        raise ValueError(f"the payload of {name!r} is not a JSON object")
    if not (isinstance(ident, str) and (parent is None or isinstance(parent, str))):
        raise ValueError("a batched event whose id or parent is not a string")
    if type(depth) is not int or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"a depth of {str(depth)[:20]!r}: not a count of hops")
    if type(when) not in (int, float) or not math.isfinite(when):
        raise ValueError(f"a time of {str(when)[:20]!r}: not a time")
    return Event(name, payload, id=ident, parent_id=parent, depth=depth, timestamp=when)


_ENTRY_KEYS = frozenset(("id", "time", "depth", "parent", "payload"))


MAX_PATTERNS = 10_000  # patterns one announcement may claim
_MEMBER = re.compile(r"[A-Za-z0-9_-]{1,64}")


def decode_announcement(subject: str, data: bytes) -> tuple[Announcement, bool]:
    """Who a process says it is and what it serves, and whether it is leaving; raises
    ``ValueError`` for anything cxlang would not have written (a peer's message may not put
    a pattern the directory cannot hold, or a group no subject can name, into it), or for an
    announcement on another member's *subject* than its own (which permissions reserve)."""
    message = _loads(data)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    member, group, patterns = (message.get(key) for key in ("member", "group", "patterns"))
    if not (isinstance(member, str) and _MEMBER.fullmatch(member)):
        raise ValueError("no member id")
    if not (isinstance(group, str) and _MEMBER.fullmatch(group)):
        raise ValueError("no group name")
    if not (isinstance(patterns, list) and len(patterns) <= MAX_PATTERNS
            and all(isinstance(p, str) and _pattern(p) for p in patterns)):
        raise ValueError("patterns that are not event patterns")
    if subject != presence_subject(group, member):
        raise ValueError("made on another subject than the member's own")
    return Announcement(member, group, tuple(patterns)), message.get("leaving") is True


def _pattern(text: str) -> bool:
    """A pattern another process may serve: dotted, no blanks, not cxlang's or NATS's own."""
    return 0 < len(text) <= 1000 and is_event_subject(text) and not is_local(text) and all(
        segment and not any(c.isspace() for c in segment) and segment != ">"
        for segment in text.split("."))


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
    index = headers[HANDLER]
    if not (index.isascii() and index.isdigit() and len(index) <= 6):
        raise ValueError(f"a {HANDLER} header of {index[:20]!r}: not a handler's number")
    return Call(decode_event(name, headers, data), headers.get(EXECUTION),
                headers.get(PARAMETER), int(index))


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
    """The handler's value; raises :class:`BranchFailed` with the failure it reported, or
    with an error for a reply that is not one cxlang writes."""
    try:
        reply = _loads(data)
        if isinstance(reply, dict) and reply.keys() == {"value"}:
            return reply["value"]
        failure = reply["failure"] if isinstance(reply, dict) and len(reply) == 1 else None
        if not (isinstance(failure, dict) and failure.get("type") in _FAILURE_KINDS
                and isinstance(failure.get("message"), str)):
            raise ValueError("neither a value nor a failure")
    except (ValueError, KeyError) as exc:
        raise BranchFailed(Failure("error", f"the serving process sent a malformed reply "
                                            f"({exc})")) from None
    raise BranchFailed(Failure(failure["type"], failure["message"]))
