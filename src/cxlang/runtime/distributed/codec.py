"""What an event, a call and a reply look like on the wire.

The body is the payload as JSON: CX values (objects, arrays, strings, numbers, booleans, null)
are JSON, so every language with a NATS client can read the events. Everything about the event
rides in headers, so the body stays the payload alone:

``Cx-Id``, ``Cx-Time`` (epoch seconds), ``Cx-Parent`` and ``Cx-Depth`` (the causal parent and the
hops from the first emit), ``Cx-Origin`` (the emitting process).

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

**Calls.** A call request carries every unit of one parallel call that the caller sends to one
member (up to :data:`MAX_UNITS`), one line per unit, each a JSON object ``{"event", "handler",
"id", "time", "depth", "parent", "execution", "parameter", "trace", "payload"}``: the event,
which of the serving group's handlers of it to run (its number, in subscription order), the
caller's execution context (execution id, parameter name), its span as trace headers (W3C
``traceparent``, or ``{}``) and the payload. The member answers with one or more replies, each
with a ``Cx-Member`` header naming it (the caller takes replies from the member it called and
no other) and one line per unit that has ended since the last: ``{"unit": n, "value": v}`` or
``{"unit": n, "failure": {"type", "message"}}``, *n* counting the request's lines from 0. A
line without ``"unit"`` fails every unit of the request (one refused whole).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "MAX_UNITS",
    "MEMBER",
    "Call",
    "Result",
    "decode_announcement",
    "decode_batch",
    "decode_calls",
    "decode_event",
    "decode_reply",
    "encode_batch",
    "encode_call",
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
MEMBER = "Cx-Member"
MSG_ID = "Nats-Msg-Id"  # JetStream drops a re-sent event with the same id
BATCH = "Cx-Batch"

MAX_NESTING = 100  # levels of objects and arrays in a payload or value from another process
MAX_DEPTH = 1_000_000_000  # causal hops a header may claim (the run's own limit comes after)
_FAILURE_KINDS = frozenset({"error", "timeout", "no_handler", "cancelled"})

_string = json.encoder.encode_basestring  # a str as JSON, as _dumps writes it


def _json_writer() -> Callable[[Any], str]:
    """Compact JSON, non-ASCII kept. ``JSONEncoder.encode`` makes a C encoder on every call,
    which is most of the cost of a small payload; this makes one, once (where the C encoder
    exists), without the check for a value that holds itself: such a value ends in a
    ``RecursionError`` instead, as one nested too deep does."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    write = make(None, encoder.default, _string, None, ":", ",", False, False, True)

    def dumps(value: Any) -> str:
        return "".join(write(value, 0))

    return dumps


_dumps = _json_writer()
_UNWRITABLE = (TypeError, ValueError, RecursionError)  # what _dumps raises for a non-JSON value


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
    except _UNWRITABLE as exc:
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
            entry = _loads_entry(line) if entries is None else _nesting_checked(line,
                                                                                 entries[i])
            if not (isinstance(entry, dict) and entry.keys() == _ENTRY_KEYS):
                raise ValueError("a batched event that is not {id, time, depth, parent, "
                                 "payload}")
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


def _batched_event(name: str, entry: dict[str, Any]) -> Event:
    """The event of a line of a batch or a call, whose keys have been checked."""
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


MAX_UNITS = 100  # units one call request carries at most (and so replies it may get)
MAX_TRACE = 8  # trace headers a unit may carry


class Call(NamedTuple):
    """One unit of a call request: run handler number *handler* of *event*'s name here."""

    event: Event
    execution_id: str | None
    parameter: str | None
    handler: int
    trace: dict[str, str]  # the caller's span as trace headers (W3C traceparent), or empty


def encode_call(event: Event, body: bytes, context: ExecutionContext, handler: int,
                trace: Mapping[str, str]) -> bytes:
    """One unit's line of a call request, given the event's payload as :func:`encode_payload`
    made it."""
    head = _dumps({"event": event.name, "handler": handler, "id": event.id,
                   "time": event.timestamp, "depth": event.depth, "parent": event.parent_id,
                   "execution": context.execution_id, "parameter": context.parameter,
                   "trace": trace}).encode()
    return head[:-1] + b',"payload":' + body + b"}"


def decode_calls(data: bytes) -> list[Call | ValueError]:
    """The units of a call request, in order; a malformed line gives its ``ValueError`` in
    its unit's place. Raises ``ValueError`` for more than :data:`MAX_UNITS` lines."""
    lines = data.split(b"\n", MAX_UNITS)
    if len(lines) > MAX_UNITS:
        raise ValueError(f"a call of more than {MAX_UNITS} handlers")
    calls: list[Call | ValueError] = []
    for line in lines:
        try:
            calls.append(_call(_loads_entry(line)))
        except ValueError as exc:
            calls.append(exc)
    return calls


def _call(entry: Any) -> Call:
    if not (isinstance(entry, dict) and entry.keys() == _CALL_KEYS):
        raise ValueError("not {" + ", ".join(sorted(_CALL_KEYS)) + "}")
    name, handler, execution, parameter, trace = (
        entry["event"], entry["handler"], entry["execution"], entry["parameter"],
        entry["trace"])
    if not (isinstance(name, str) and 0 < len(name) <= 1000):
        raise ValueError("no event name")
    if type(handler) is not int or not 0 <= handler < 1_000_000:
        raise ValueError(f"a handler of {str(handler)[:20]!r}: not a handler's number")
    if not all(v is None or isinstance(v, str) for v in (execution, parameter)):
        raise ValueError("an execution id or parameter that is not a string")
    if not (isinstance(trace, dict) and len(trace) <= MAX_TRACE and all(
            isinstance(k, str) and isinstance(v, str) and len(k) + len(v) <= 1000
            for k, v in trace.items())):
        raise ValueError("trace headers that are not a few strings")
    return Call(_batched_event(name, entry), execution, parameter, handler, trace)


_CALL_KEYS = frozenset(("event", "handler", "id", "time", "depth", "parent", "execution",
                        "parameter", "trace", "payload"))


def _loads_entry(line: bytes) -> Any:
    """One line of a batch: an object whose payload nests at most :data:`MAX_NESTING`."""
    return _nesting_checked(line, _parse(line))


def _nesting_checked(line: bytes, entry: Any) -> Any:
    if line.count(b"{") + line.count(b"[") > MAX_NESTING and isinstance(entry, dict):
        _check_nesting(entry.get("payload"))  # else it cannot nest too deep
    return entry


class Result(NamedTuple):
    """What a reply says of one unit (``unit`` ``None``: of every unit the request carried,
    which the serving process refused whole): its value, or its failure."""

    unit: int | None
    value: Any
    failure: Failure | None


def encode_value(unit: int, value: Any, handler: str) -> bytes:
    """A unit's line of a reply: the value its handler returned."""
    try:
        return _dumps({"unit": unit, "value": value}).encode()
    except _UNWRITABLE as exc:
        return encode_failure(unit, Failure(
            "error", f"{handler} returned a value that cannot cross to the caller's process: "
                     f"{exc}"))


def encode_failure(unit: int | None, failure: Failure) -> bytes:
    """A unit's line of a reply (of every unit, for *unit* ``None``): how it failed."""
    entry: dict[str, Any] = {"failure": failure.to_payload()}
    if unit is not None:
        entry["unit"] = unit
    return _dumps(entry).encode()


def decode_reply(data: bytes) -> list[Result | ValueError]:
    """The results a reply carries; a line that names no unit of the call, or is no JSON
    object, gives a ``ValueError`` (it cannot be charged to a unit). A line of a unit that is
    neither a value nor a failure fails that unit (the serving process sent nonsense)."""
    results: list[Result | ValueError] = []
    for line in data.split(b"\n", MAX_UNITS)[:MAX_UNITS]:
        try:
            entry = _loads(line)
        except ValueError as exc:
            results.append(exc)
            continue
        unit = entry.pop("unit", None) if isinstance(entry, dict) else None
        if unit is not None and (type(unit) is not int or not 0 <= unit < MAX_UNITS):
            results.append(ValueError(f"a reply to unit {str(unit)[:20]!r}"))
            continue
        try:
            results.append(Result(unit, _value(entry), None))
        except BranchFailed as failed:
            results.append(Result(unit, None, failed.failure))
    return results


def _value(reply: Any) -> Any:
    """The value of a reply's line (its unit taken out); raises :class:`BranchFailed` with the
    failure it reported, or with an error for a line that is not one cxlang writes."""
    if isinstance(reply, dict) and reply.keys() == {"value"}:
        return reply["value"]
    failure = reply.get("failure") if isinstance(reply, dict) and len(reply) == 1 else None
    if not (isinstance(failure, dict) and failure.get("type") in _FAILURE_KINDS
            and isinstance(failure.get("message"), str)):
        raise BranchFailed(Failure("error", "the serving process sent a malformed reply "
                                            "(neither a value nor a failure)"))
    raise BranchFailed(Failure(failure["type"], failure["message"]))
