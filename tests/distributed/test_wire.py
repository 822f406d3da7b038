"""The parts of the distributed bus that need no server: subjects, the wire format, the
directory, and the clear errors."""

from __future__ import annotations

import json

import pytest

import cxlang
from cxlang.runtime.context import ExecutionContext
from cxlang.runtime.distributed import BusUnavailable
from cxlang.runtime.distributed.codec import (
    MAX_UNITS,
    Call,
    Result,
    decode_batch,
    decode_calls,
    decode_event,
    decode_reply,
    encode_batch,
    encode_call,
    encode_failure,
    encode_payload,
    encode_value,
    event_headers,
)
from cxlang.runtime.distributed.directory import Announcement, Directory
from cxlang.runtime.distributed.errors import NotPortable
from cxlang.runtime.distributed.recent import RecentIds
from cxlang.runtime.distributed.subjects import is_event_subject, pattern_subject, portable_name
from cxlang.runtime.outcomes import Failure

from .nats_server import free_port


def test_event_names_map_one_to_one_and_any_is_star() -> None:
    assert pattern_subject("analytics.complete") == "analytics.complete"
    assert pattern_subject("user.any.created") == "user.*.created"
    assert pattern_subject("user.*.created") == "user.*.created"
    assert portable_name("analytics.complete")
    for bad in ("a b", "a.*", "a.>", "_CX.call", "$SYS.x", "a..b"):
        assert not portable_name(bad), bad
    assert not is_event_subject("_INBOX.abc.def")


def test_an_event_crosses_with_id_time_and_causal_parent() -> None:
    event = cxlang.Event("order.created", {"n": 1, "tags": ["a"]}, parent_id="p-1", depth=2)
    back = decode_event(event.name, event_headers(event, "origin"), encode_payload(event))
    assert (back.name, back.payload, back.id, back.parent_id, back.depth, back.timestamp) == \
        (event.name, event.payload, event.id, "p-1", 2, event.timestamp)


def test_a_message_from_outside_cxlang_is_a_new_event() -> None:
    event = decode_event("x.y", None, b'{"a": 1}')
    assert event.payload == {"a": 1} and event.parent_id is None


def test_a_payload_that_is_not_json_says_what_crosses() -> None:
    with pytest.raises(NotPortable, match="plain values"):
        encode_payload(cxlang.Event("x.y", {"f": object()}))
    itself: dict[str, object] = {}
    itself["me"] = itself
    with pytest.raises(NotPortable, match=r"recursion depth exceeded.*plain values"):
        encode_payload(cxlang.Event("x.y", itself))
    assert b"cannot cross" in encode_value(0, [itself], "h")


def test_a_call_carries_each_units_event_handler_and_the_callers_context() -> None:
    first = cxlang.Event("a.b", {"q": 1}, parent_id="p-1", depth=3)
    second = cxlang.Event("c.d", {"r": [2]})
    lines = [encode_call(first, encode_payload(first),
                         ExecutionContext(None, "exec-1", "analytics", first), 2,
                         {"traceparent": "00-ab-cd-01"}),
             encode_call(second, encode_payload(second),
                         ExecutionContext(None, "exec-1", "stock", second), 0, {})]
    one, two = decode_calls(b"\n".join(lines))
    assert isinstance(one, Call) and isinstance(two, Call)
    assert (one.execution_id, one.parameter, one.handler, one.trace) == \
        ("exec-1", "analytics", 2, {"traceparent": "00-ab-cd-01"})
    assert (one.event.name, one.event.payload, one.event.id, one.event.parent_id,
            one.event.depth, one.event.timestamp) == \
        ("a.b", {"q": 1}, first.id, "p-1", 3, first.timestamp)
    assert (two.event.name, two.event.payload, two.parameter, two.handler) == \
        ("c.d", {"r": [2]}, "stock", 0)


def test_a_malformed_unit_of_a_call_fails_alone_and_too_many_units_fail_all() -> None:
    event = cxlang.Event("a.b", {})
    good = encode_call(event, b"{}", ExecutionContext(None, None, None, event), 0, {})
    bad = good.replace(b'"handler":0', b'"handler":-1')
    results = decode_calls(b"\n".join([good, bad, b"nonsense", good]))
    assert [isinstance(r, ValueError) for r in results] == [False, True, True, False]
    assert "not a handler's number" in str(results[1])
    with pytest.raises(ValueError, match=f"more than {MAX_UNITS} handlers"):
        decode_calls(b"\n".join([good] * (MAX_UNITS + 1)))


def test_replies_carry_each_units_value_or_failure_of_its_kind() -> None:
    reply = b"\n".join([encode_value(3, {"a": [1]}, "h"),
                        encode_failure(0, Failure("timeout", "too slow")),
                        encode_value(1, object(), "h"),
                        encode_failure(None, Failure("error", "a malformed call"))])
    three, zero, one, every = decode_reply(reply)
    assert three == Result(3, {"a": [1]}, None)
    assert zero == Result(0, None, Failure("timeout", "too slow"))
    assert isinstance(one, Result) and one.failure is not None
    assert one.unit == 1 and "cannot cross" in one.failure.message
    assert every == Result(None, None, Failure("error", "a malformed call"))


def test_a_reply_line_of_another_shape_fails_its_unit_or_is_refused() -> None:
    shapeless, no_unit, garbage = decode_reply(b'{"unit": 2, "value": 1, "x": 2}\n'
                                               b'{"unit": -1, "value": 1}\n[')
    assert isinstance(shapeless, Result) and shapeless.unit == 2
    assert shapeless.failure is not None and "malformed reply" in shapeless.failure.message
    assert isinstance(no_unit, ValueError) and isinstance(garbage, ValueError)


def test_a_batch_of_events_crosses_with_each_events_id_time_and_parent() -> None:
    events = [cxlang.Event("a.b", {"n": n, "text": "é\n"}, parent_id=f"p-{n}" if n else None,
                           depth=n) for n in range(3)]
    body, headers = encode_batch([(encode_payload(e), e) for e in events], "origin")
    assert headers == {"Cx-Batch": "3", "Cx-Origin": "origin"}
    assert body.count(b"\n") == 2  # one line per event: a newline in a string is escaped
    back = list(decode_batch("a.b", body))
    assert [(e.name, e.payload, e.id, e.parent_id, e.depth, e.timestamp) for e in back
            if isinstance(e, cxlang.Event)] == \
        [(e.name, e.payload, e.id, e.parent_id, e.depth, e.timestamp) for e in events]


def test_the_directory_counts_each_groups_handlers_of_an_event() -> None:
    directory = Directory("me")
    directory.announce(Announcement("m1", "b-workers", ("a.b", "a.any", "c.d")))
    directory.announce(Announcement("m2", "a-workers", ("a.b",)))
    directory.announce(Announcement("m3", "me", ("a.b",)))  # my own group: served here
    directory.announce(Announcement("m4", "b-workers", ("a.b",)))
    assert directory.servers("a.b") == (("a-workers", 1), ("b-workers", 2))
    assert directory.servers("c.d") == (("b-workers", 1),)
    # Who can run each handler: handler #1 of a.b only the member that has two.
    assert directory.serving("a.b", "b-workers", 0) == ("m1", "m4")
    assert directory.serving("a.b", "b-workers", 1) == ("m1",)
    directory.leave("m1")
    assert directory.servers("a.b") == (("a-workers", 1), ("b-workers", 1))
    directory.leave("m2")
    directory.leave("m4")
    assert directory.servers("a.b") == ()


def test_recent_ids_drop_repeats_and_forget_old_ones() -> None:
    recent = RecentIds(size=2)
    assert recent.first_time("a") and not recent.first_time("a")
    assert recent.first_time("b") and recent.first_time("c")
    assert recent.first_time("a")  # forgotten: only the last two are kept
    assert recent.first_time(None) and recent.first_time(None)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    rt = cxlang.Runtime(bus=f"nats://127.0.0.1:{free_port()}")
    with pytest.raises(BusUnavailable, match=r"cannot reach the NATS server .* Start a server"):
        await rt.connect()
    await rt.aclose()


def test_group_and_durable_need_a_bus() -> None:
    with pytest.raises(ValueError, match="need a distributed bus"):
        cxlang.Runtime(durable=True)


def test_json_is_what_crosses() -> None:
    event = cxlang.Event("a.b", {"text": "é", "n": 1.5, "ok": True, "none": None})
    assert json.loads(encode_payload(event)) == event.payload
