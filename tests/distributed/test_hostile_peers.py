"""A peer on the bus that is not cxlang, or not friendly: raw NATS messages, on a real server.

No message commands a process: ``system.*`` stays in its own process on every path (a plain
publish, a call request, a durable event), and a malformed or over-deep message is dropped and
told (once, then counted), never a traceback and never a stopped process. A call takes its
reply from the member it called only, and a peer's announcements cannot remove a live member
or cost more than their own units, failing at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

import cxlang
from cxlang.runtime.context import ExecutionContext
from cxlang.runtime.distributed.codec import (
    MAX_BATCH,
    MAX_NESTING,
    Result,
    decode_reply,
    encode_call,
)
from cxlang.runtime.distributed.drops import INTERVAL, DroppedEvents
from cxlang.runtime.distributed.transport import NatsTransport

from .children import children
from .nats_server import NatsServer


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


@pytest.fixture
async def peer(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


def nested(levels: int) -> bytes:
    return ('{"a":' * levels + "1" + "}" * levels).encode()


async def test_no_peer_shuts_a_process_down_or_writes_to_its_console(
    nats_server: NatsServer, peer: Client,
) -> None:
    seen: list[str] = []
    async with cxlang.Runtime(bus=nats_server.url, group="workers") as rt:
        rt.on("any.any", lambda e: seen.append(e.name), inline=True)  # matches system.shutdown
        rt.on("system.shutdown", lambda e: seen.append("shut down"), inline=True)
        rt.on("system.console.write", lambda e: seen.append("wrote"), inline=True)
        await rt.connect()
        await asyncio.sleep(0.1)  # the subscriptions reach the server
        await peer.publish("system.shutdown", b"{}")
        await peer.publish("system.console.write", b'{"text": "pwned"}')
        member = rt.bus.transport.origin  # type: ignore[union-attr]
        calls = [encode_call(event, b"{}", ExecutionContext(None, None, None, event), 0, {})
                 for event in (cxlang.Event("system.shutdown"),
                               cxlang.Event("system.console.write"))]
        reply = await peer.request(f"_CX.call.workers.{member}", b"\n".join(calls), timeout=5)
        results = decode_reply(reply.data)
        assert [r.unit for r in results if isinstance(r, Result)] == [0, 1]
        for result in results:
            assert isinstance(result, Result) and result.failure is not None
            assert result.failure.kind == "no_handler"
            assert "a system event: its handlers serve their own process only" in \
                result.failure.message
        await peer.publish("app.ping", b"{}")
        await until(lambda: "app.ping" in seen)
    assert seen == ["app.ping"]


@pytest.mark.parametrize(("headers", "data", "why"), [
    (None, nested(MAX_NESTING + 400), f"JSON nested more than {MAX_NESTING} levels deep"),
    (None, nested(100_000), f"JSON nested more than {MAX_NESTING} levels deep"),
    ({"Cx-Id": "1", "Cx-Time": "1", "Cx-Depth": "9" * 5000}, b"{}", "not a count of hops"),
    ({"Cx-Id": "2", "Cx-Time": "1", "Cx-Depth": "-5"}, b"{}", "not a count of hops"),
    ({"Cx-Id": "3", "Cx-Time": "soon"}, b"{}", "not a time"),
    ({"Cx-Id": "4", "Cx-Time": "nan"}, b"{}", "not a time"),
    ({"Cx-Id": "5"}, b"{}", "no Cx-Time"),
    (None, b"\xff\xfe", "malformed"),
    (None, b"[1, 2]", "not a JSON object"),
], ids=["500 deep", "100k deep", "huge depth", "negative depth", "time no number",
        "time nan", "no time", "not utf-8", "not an object"])
async def test_a_malformed_event_is_dropped_and_told_and_the_process_goes_on(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
    headers: dict[str, str] | None, data: bytes, why: str,
) -> None:
    seen: list[object] = []
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            rt.on("job.run", lambda e: seen.append(e.payload.get("n")), inline=True)
            await rt.connect()
            await asyncio.sleep(0.1)
            await peer.publish("job.run", data, headers=headers)
            await peer.publish("job.run", b'{"n": 1}')
            await until(lambda: 1 in seen)
    assert seen == [1]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("event job.run from another process dropped: ")
    assert why in line
    assert "Traceback" not in caplog.text


async def test_an_event_deeper_than_the_limit_is_dropped_not_a_stopped_process(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url, max_depth=100) as rt:
            async def relay(event: cxlang.Event) -> None:
                seen.append(event.depth)
                rt.emit("job.next", {})  # would be past the limit: a trip, were it let in

            rt.on("job.run", relay)
            await rt.connect()
            await asyncio.sleep(0.1)
            await peer.publish("job.run", b"{}", headers={"Cx-Id": "d", "Cx-Time": "1",
                                                          "Cx-Depth": "100"})
            await peer.publish("job.run", b"{}", headers={"Cx-Id": "e", "Cx-Time": "1",
                                                          "Cx-Depth": "3"})
            await until(lambda: seen == [3])
            assert rt.bus.tripped is None
    assert "arrived 100 causal hops deep, at or past this process's limit of 100" in caplog.text


async def test_a_flood_of_drops_is_counted_not_logged_line_by_line(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            rt.on("job.run", lambda e: None, inline=True)
            await rt.connect()
            await asyncio.sleep(0.1)
            for _ in range(2000):
                await peer.publish("job.run", b"not json")
            await peer.flush()
            await asyncio.sleep(0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the first drop, then the count told as the process leaves
    assert lines[1].startswith("1999 more message(s) from other processes dropped in the last")


def test_the_drop_log_says_a_count_per_reason_at_most_every_interval() -> None:
    now = [0.0]
    drops = DroppedEvents(clock=lambda: now[0])
    told: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: told.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("cxlang.distributed")
    logger.addHandler(handler)
    try:
        for step in range(100):
            now[0] = step * 0.5
            drops.dropped("event a.b", "malformed: x")
        drops.flush()
    finally:
        logger.removeHandler(handler)
    assert told[0] == "event a.b from another process dropped: malformed: x"
    counts = [int(line.split()[0]) for line in told[1:]]
    # 100 drops over 49.5 s: the first at once, a count at 10, 20, 30 and 40 s, the rest at
    # the end.
    assert INTERVAL == 10.0
    assert counts == [20, 20, 20, 20, 19]


async def test_a_malformed_reply_from_the_member_fails_its_unit_and_says_so(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer posing as a member (it announces one and answers its calls): a reply line of
    another shape fails its unit at once; one that names no unit is dropped and told."""
    async def answer(msg: Msg) -> None:
        units = msg.data.count(b"\n") + 1
        lines = [b'{"unit": 0, "value": 1, "x": 2}', b'{"unit": 1, "failure": {"type": "boom"}}',
                 nested(MAX_NESTING + 5), b"\xff", b'{"unit": 99, "value": 1}']
        await peer.publish(msg.reply, b"\n".join(lines[:units + 3]),
                           headers={"Cx-Member": "posing"})

    await peer.subscribe("_CX.call.posers.posing", cb=answer)
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as app:
            await app.connect()
            await peer.publish("_CX.presence.posers.posing", json.dumps(
                {"member": "posing", "group": "posers", "patterns": ["job.a", "job.b"]}).encode())
            await until(lambda: bool(transport_of(app).remote_handlers("job.b")))
            result = await app.parallel({"a": "job.a", "b": "job.b"}, {}, timeout=5)
    assert {name: f.kind for name, f in result.failures.items()} == {"a": "error", "b": "error"}
    assert all("malformed reply" in f.message for f in result.failures.values())
    assert "a reply to a call from another process dropped: malformed: JSON nested" \
        in caplog.text
    assert "a reply to a call from another process dropped: it answered a unit the call did " \
           "not have" in caplog.text


async def test_a_malformed_durable_event_is_told_once_and_never_comes_back(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url, durable=True, ack_wait=0.5) as rt:
            rt.on("job.run", lambda e: seen.append(e.payload.get("n")), inline=True)
            await rt.connect()
            js = peer.jetstream()
            await js.publish("_CX.event.job.run", nested(100_000),
                             headers={"Cx-Id": "p", "Cx-Origin": "elsewhere"})
            await js.publish("_CX.event.job.run", b'{"n": 1}',
                             headers={"Cx-Id": "q", "Cx-Time": "1", "Cx-Origin": "elsewhere"})
            await until(lambda: 1 in seen)
            await asyncio.sleep(2.0)  # four ack_waits: a message not settled would be back
    assert seen == [1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "event job.run from another process dropped: malformed: JSON nested" in lines[0]


@pytest.mark.parametrize("announcement", [
    b"[]",
    nested(MAX_NESTING + 1),
    b'{"member": "m1", "group": "g", "patterns": ["job.run", ""]}',
    b'{"member": "m1", "group": "g", "patterns": ["system.shutdown"]}',
    b'{"member": "m1", "group": "g", "patterns": ["_CX.call.>"]}',
    b'{"member": "m1", "group": "g h", "patterns": ["job.run"]}',
    b'{"member": "m1", "group": "g", "patterns": "job.run"}',
    b'{"member": "m2", "group": "g", "patterns": ["job.run"]}',
], ids=["no object", "deep", "empty pattern", "system", "cxlang's own", "bad group", "no list",
        "another member's"])
async def test_a_malformed_announcement_changes_nothing_and_is_told(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
    announcement: bytes,
) -> None:
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            await rt.connect()
            assert rt.bus.transport is not None
            directory = rt.bus.transport.directory  # type: ignore[attr-defined]
            before = directory.members
            await peer.publish("_CX.presence.g.m1", announcement)
            await until(lambda: "announcement" in caplog.text)
            assert directory.members == before
    assert "an announcement of who serves what from another process dropped: malformed" \
        in caplog.text


def transport_of(rt: cxlang.Runtime) -> NatsTransport:
    transport = rt.bus.transport
    assert isinstance(transport, NatsTransport)
    return transport


async def slow_real(event: cxlang.Event) -> str:
    await asyncio.sleep(0.1)
    return "real"


async def test_a_peer_answering_every_call_at_once_does_not_beat_the_member_called(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    async def forge(msg: Msg) -> None:  # overhears every call and answers first
        await msg.respond(b'{"value": "FORGED"}')
        await peer.publish(msg.reply, b'{"value": "FORGED"}', headers={"Cx-Member": "x"})

    await peer.subscribe("_CX.call.>", cb=forge)
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
                cxlang.Runtime(bus=nats_server.url, group="apps") as app:
            worker.on("job.run", slow_real)
            await worker.connect()
            await app.connect()
            await until(lambda: bool(transport_of(app).remote_handlers("job.run")))
            results = [await app.parallel({"r": "job.run"}, {}, timeout=5) for _ in range(3)]
    assert [r.payload for r in results] == [{"r": "real"}] * 3
    assert "a reply to a call from another process dropped: it did not come from the member " \
           "the call was sent to" in caplog.text


async def test_a_forged_leaving_does_not_remove_a_live_member(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
                cxlang.Runtime(bus=nats_server.url, group="apps") as app:
            worker.on("job.run", slow_real)
            await worker.connect()
            await app.connect()
            member = transport_of(worker).origin
            directory = transport_of(app).directory
            await until(lambda: member in directory.members)
            leaving = json.dumps({"member": member, "group": "workers", "leaving": True,
                                  "patterns": []}).encode()
            # On the forger's own subject: not believed at all.
            await peer.publish("_CX.presence.evil.forger", leaving)
            await peer.flush()
            await until(lambda: "made on another subject" in caplog.text)
            assert member in directory.members
            # On the member's own subject (which only permissions can reserve): the member
            # hears a leaving it did not say, and announces itself again.
            await peer.publish(f"_CX.presence.workers.{member}", leaving)
            await until(lambda: "it was made in this process's name" in caplog.text)
            await until(lambda: member in directory.members)
            res = await app.parallel({"r": "job.run"}, {}, timeout=5)
    assert res.payload == {"r": "real"}


async def test_a_forged_member_serving_everything_costs_only_its_own_units_at_once(
    nats_server: NatsServer, peer: Client,
) -> None:
    async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
            cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        worker.on("job.run", slow_real)
        await worker.connect()
        await app.connect()
        directory = transport_of(app).directory
        everything = ["any", "any.any", "any.any.any"]
        for member, group in (("forged-1", "evil"), ("forged-2", "workers")):
            await peer.publish(f"_CX.presence.{group}.{member}", json.dumps(
                {"member": member, "group": group, "patterns": everything}).encode())
        await until(lambda: {"forged-1", "forged-2"} <= directory.members)
        # Nobody subscribes to the forged members' call subjects: "no responders", at once,
        # where a timeout of 30 s would have been waited out.
        first = await asyncio.wait_for(app.parallel({"r": "job.run"}, {}, timeout=30), 10)
        again = await asyncio.wait_for(app.parallel({"r": "job.run"}, {}, timeout=30), 10)
    assert "real" in first.payload["r"]
    assert all(v in ("real", None) for v in first.payload["r"])
    assert first.failures["r"].kind == "no_handler"
    assert again.payload == {"r": "real"}  # the forged members are forgotten
    assert not {"forged-1", "forged-2"} & directory.members


async def test_a_python_workers_error_reaches_a_cx_program_in_cx_words(
    nats_server: NatsServer, tmp_path: Path,
) -> None:
    program = tmp_path / "main.cx"
    program.write_text('var r = think { prompt: "p", stock: stock.check };\n'
                       'print(r._errors.stock.type + ": " + r._errors.stock.message);\n',
                       encoding="utf-8")
    async with cxlang.Runtime(bus=nats_server.url, group="py-workers") as worker:
        @worker.on("stock.check")
        async def check(event: cxlang.Event) -> None:
            raise LookupError("the stock ran out")

        await worker.connect()
        with children() as start:
            run = start("run", program, "--bus", nats_server.url, "--timeout", "20s")
            assert await asyncio.to_thread(run.wait_exit) == 0, run.lines("err")
    assert run.lines() == ["error: the stock ran out"]
    assert run.lines("err") == []


def batched(n: object, **fields: object) -> bytes:
    entry = {"id": f"b-{n}", "time": 1.5, "depth": 0, "parent": None, "payload": {"n": n}}
    return json.dumps({**entry, **fields}).encode()


@pytest.mark.parametrize(("poison", "why"), [
    (b'{"id": "x", "time": 1, "depth": 0, "parent": null, "payload": ' + nested(MAX_NESTING + 5)
     + b"}", f"JSON nested more than {MAX_NESTING} levels deep"),
    (b"[" * 100_000, "malformed"),
    (b"\xff\xfe", "malformed"),
    (batched("p", depth=-1), "not a count of hops"),
    (batched("p", depth=True), "not a count of hops"),
    (batched("p", time="soon"), "not a time"),
    (batched("p", payload=[1]), "not a JSON object"),
    (batched("p", id=7), "not a string"),
    (batched("p", extra=1), "not {id, time, depth, parent, payload}"),
], ids=["deep payload", "100k deep", "not utf-8", "negative depth", "depth a boolean",
        "time no number", "payload no object", "id no string", "another key"])
async def test_a_poison_event_in_a_batch_is_dropped_alone(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
    poison: bytes, why: str,
) -> None:
    seen: list[object] = []
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            rt.on("job.run", lambda e: seen.append(e.payload["n"]), inline=True)
            await rt.connect()
            await asyncio.sleep(0.1)
            body = b"\n".join([batched(1), batched(2), poison, batched(3)])
            await peer.publish("job.run", body, headers={"Cx-Batch": "4"})
            await until(lambda: 3 in seen)
    assert seen == [1, 2, 3]
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("event job.run from another process dropped: malformed: ")
    assert why in line
    assert "Traceback" not in caplog.text


async def test_a_batch_of_more_lines_than_any_sender_makes_is_refused_whole(
    nats_server: NatsServer, peer: Client, caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []
    with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            rt.on("job.run", lambda e: seen.append(e.payload["n"]), inline=True)
            await rt.connect()
            await asyncio.sleep(0.1)
            await peer.publish("job.run", b"\n".join([batched(0)] * (MAX_BATCH + 1)),
                               headers={"Cx-Batch": "many"})
            await peer.publish("job.run", b'{"n": 1}')
            await until(lambda: 1 in seen)
    assert seen == [1]
    assert f"malformed: a batch of more than {MAX_BATCH:,} events" in caplog.text


async def test_an_event_repeated_within_a_batch_or_across_is_handled_once(
    nats_server: NatsServer, peer: Client,
) -> None:
    seen: list[object] = []
    async with cxlang.Runtime(bus=nats_server.url) as rt:
        rt.on("job.run", lambda e: seen.append(e.payload["n"]), inline=True)
        await rt.connect()
        await asyncio.sleep(0.1)
        await peer.publish("job.run", b"\n".join([batched(1), batched(1), batched(2)]),
                           headers={"Cx-Batch": "3"})
        await peer.publish("job.run", b"{}", headers={"Cx-Id": "b-2", "Cx-Time": "1"})
        await peer.publish("job.run", batched(3), headers={"Cx-Batch": "1"})
        await until(lambda: 3 in seen)
    assert seen == [1, 2, 3]
