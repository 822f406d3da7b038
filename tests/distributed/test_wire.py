"""The parts of the distributed bus that need no server: subjects, the wire format, the
directory, and the clear errors."""

from __future__ import annotations

import json

import pytest

import cxlang
from cxlang.runtime.context import ExecutionContext
from cxlang.runtime.coordinator import BranchFailed
from cxlang.runtime.distributed import BusUnavailable
from cxlang.runtime.distributed.codec import (
    call_headers,
    decode_call,
    decode_event,
    decode_reply,
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


def test_a_call_carries_the_callers_context() -> None:
    event = cxlang.Event("a.b", {"q": 1})
    context = ExecutionContext(None, "exec-1", "analytics", event)
    call = decode_call("a.b", call_headers(event, context, 2, "o"), encode_payload(event))
    assert (call.execution_id, call.parameter, call.handler, call.event.id) == \
        ("exec-1", "analytics", 2, event.id)


def test_replies_carry_a_value_or_a_failure_of_its_kind() -> None:
    assert decode_reply(encode_value({"a": [1]}, "h")) == {"a": [1]}
    with pytest.raises(BranchFailed) as raised:
        decode_reply(encode_failure(Failure("timeout", "too slow")))
    assert raised.value.failure == Failure("timeout", "too slow")
    with pytest.raises(BranchFailed, match="cannot cross"):
        decode_reply(encode_value(object(), "h"))


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
