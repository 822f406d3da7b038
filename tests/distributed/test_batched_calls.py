"""The units of one parallel call bound for one member travel in one request, and come back as
they end: a slow unit holds back no other's result, each unit keeps its own timeout and its own
failure, and a group's members still take the units in turn."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

import cxlang
from cxlang.runtime.distributed.codec import MAX_UNITS
from cxlang.runtime.distributed.transport import NatsTransport

from .nats_server import NatsServer


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


def transport_of(rt: cxlang.Runtime) -> NatsTransport:
    transport = rt.bus.transport
    assert isinstance(transport, NatsTransport)
    return transport


@pytest.fixture
async def wire(nats_server: NatsServer) -> AsyncIterator[list[Msg]]:
    """Every call request and reply on the server, as a listener beside them sees them."""
    seen: list[Msg] = []

    async def record(msg: Msg) -> None:
        seen.append(msg)

    client: Client = await nats.connect(nats_server.url)
    await client.subscribe("_CX.call.>", cb=record)
    await client.subscribe("_INBOX.>", cb=record)
    await client.flush()
    yield seen
    await client.close()


def requests_and_replies(seen: list[Msg]) -> tuple[list[Msg], list[Msg]]:
    return ([m for m in seen if m.subject.startswith("_CX.call.")],
            [m for m in seen if m.subject.startswith("_INBOX.")])


async def test_a_calls_units_for_one_member_go_in_one_request_and_one_reply(
    nats_server: NatsServer, wire: list[Msg],
) -> None:
    async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
            cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        for i in range(10):
            worker.on(f"job.p{i}", lambda e, i=i: i * e.payload["x"], inline=True)
        await worker.connect()
        await app.connect()
        await until(lambda: bool(transport_of(app).remote_handlers("job.p9")))
        result = await app.parallel({f"p{i}": f"job.p{i}" for i in range(10)}, {"x": 2})
        await asyncio.sleep(0.2)  # the listener hears all there is
    assert result.payload == {"x": 2, **{f"p{i}": 2 * i for i in range(10)}}
    requests, replies = requests_and_replies(wire)
    assert len(requests) == 1 and requests[0].data.count(b"\n") == 9
    assert len(replies) == 1 and replies[0].data.count(b"\n") == 9


async def test_a_slow_unit_holds_back_no_others_result_and_times_out_alone(
    nats_server: NatsServer, wire: list[Msg],
) -> None:
    async def slow(event: cxlang.Event) -> str:
        await asyncio.sleep(30)
        return "late"

    async def later(event: cxlang.Event) -> str:
        await asyncio.sleep(0.3)
        return "later"

    streamed: list[cxlang.BranchOutcome] = []
    async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
            cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        worker.on("job.slow", slow)
        worker.on("job.later", later)
        worker.on("job.fast", lambda e: "fast", inline=True)
        await worker.connect()
        await app.connect()
        await until(lambda: bool(transport_of(app).remote_handlers("job.later")))
        started = time.monotonic()
        async for name, outcome in app.as_completed(
                {"slow": "job.slow", "later": "job.later", "fast": "job.fast"}, {},
                timeout=1.5):
            streamed.append(outcome)
            if name == "fast":
                fast_after = time.monotonic() - started
    by_name = {o.name: o for o in streamed}
    assert [o.name for o in streamed] == ["fast", "later", "slow"]
    assert by_name["fast"].value == "fast" and by_name["later"].value == "later"
    assert by_name["slow"].failure is not None and by_name["slow"].failure.kind == "timeout"
    assert fast_after < 1.0, "the fast unit's result came at once, not with the slow one's"
    requests, replies = requests_and_replies(wire)
    assert len(requests) == 1  # one request; the results came back in two replies, as they ended
    assert [m.data.count(b"\n") + 1 for m in replies] == [1, 1]


async def test_the_serving_processs_timeout_fails_its_unit_alone_in_a_later_reply(
    nats_server: NatsServer,
) -> None:
    async def slow(event: cxlang.Event) -> str:
        await asyncio.sleep(30)
        return "late"

    async with cxlang.Runtime(bus=nats_server.url, group="workers",
                              default_timeout=0.3) as worker, \
            cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        worker.on("job.slow", slow)
        worker.on("job.fast", lambda e: "fast", inline=True)
        await worker.connect()
        await app.connect()
        await until(lambda: bool(transport_of(app).remote_handlers("job.slow")))
        result = await app.parallel({"slow": "job.slow", "fast": "job.fast"}, {}, timeout=10)
    assert result.results == {"fast": "fast"}
    assert result.failures["slow"].kind == "timeout"
    assert "did not finish within 0.3 s" in result.failures["slow"].message


async def test_a_unit_that_raises_fails_alone_in_its_batch(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: cxlang.Event) -> None:
        raise LookupError("the stock ran out")

    with caplog.at_level(logging.ERROR):
        async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
                cxlang.Runtime(bus=nats_server.url, group="apps") as app:
            worker.on("job.a", lambda e: "a", inline=True)
            worker.on("job.broken", broken, inline=True)
            worker.on("job.b", lambda e: "b", inline=True)
            await worker.connect()
            await app.connect()
            await until(lambda: bool(transport_of(app).remote_handlers("job.b")))
            result = await app.parallel({"a": "job.a", "broken": "job.broken", "b": "job.b"})
    assert result.results == {"a": "a", "b": "b"}
    assert result.failures["broken"].kind == "error"
    assert "the stock ran out" in result.failures["broken"].message


async def test_a_calls_units_are_split_over_a_groups_members_in_turn(
    nats_server: NatsServer, wire: list[Msg],
) -> None:
    ran: Counter[str] = Counter()
    members = [cxlang.Runtime(bus=nats_server.url, group="workers") for _ in range(2)]
    for index, member in enumerate(members):
        for i in range(4):
            member.on(f"job.p{i}", lambda e, index=index: ran.update([f"m{index}"]) or index,
                      inline=True)
    async with cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        try:
            for member in members:
                await member.connect()
            await app.connect()
            await until(lambda: len(transport_of(app).directory.serving(
                "job.p0", "workers", 0)) == 2)
            result = await app.parallel({f"p{i}": f"job.p{i}" for i in range(4)}, {})
            await asyncio.sleep(0.2)
        finally:
            for member in members:
                await member.aclose()
    assert not result.failures and ran == {"m0": 2, "m1": 2}
    requests, replies = requests_and_replies(wire)
    assert sorted(m.data.count(b"\n") + 1 for m in requests) == [2, 2]
    assert len({m.subject for m in requests}) == 2 and len(replies) == 2


async def test_a_forged_reply_to_a_batch_is_dropped_and_every_unit_waits_for_its_member(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    peer = await nats.connect(nats_server.url)

    async def forge(msg: Msg) -> None:  # overhears every request and answers every unit first
        units = msg.data.count(b"\n") + 1
        body = b"\n".join(b'{"unit": %d, "value": "FORGED"}' % i for i in range(units))
        await peer.publish(msg.reply, body)
        await peer.publish(msg.reply, body, headers={"Cx-Member": "someone-else"})
        await peer.publish(msg.reply, b'{"failure": {"type": "error", "message": "FORGED"}}')

    async def real(event: cxlang.Event) -> str:
        await asyncio.sleep(0.1)
        return "real"

    await peer.subscribe("_CX.call.>", cb=forge)
    try:
        with caplog.at_level(logging.ERROR, logger="cxlang.distributed"):
            async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
                    cxlang.Runtime(bus=nats_server.url, group="apps") as app:
                for name in ("job.a", "job.b", "job.c"):
                    worker.on(name, real)
                await worker.connect()
                await app.connect()
                await until(lambda: bool(transport_of(app).remote_handlers("job.c")))
                result = await app.parallel({"a": "job.a", "b": "job.b", "c": "job.c"}, {},
                                            timeout=5)
    finally:
        await peer.close()
    assert result.payload == {"a": "real", "b": "real", "c": "real"}
    assert "a reply to a call from another process dropped: it did not come from the member " \
           "the call was sent to" in caplog.text


async def test_a_call_of_more_units_than_one_request_carries_goes_in_several(
    nats_server: NatsServer, wire: list[Msg],
) -> None:
    count = MAX_UNITS + 20
    async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
            cxlang.Runtime(bus=nats_server.url, group="apps") as app:
        worker.on("job.any", lambda e: e.name, inline=True)
        await worker.connect()
        await app.connect()
        await until(lambda: bool(transport_of(app).remote_handlers("job.p0")))
        result = await app.parallel({f"p{i}": f"job.p{i}" for i in range(count)}, {})
        await asyncio.sleep(0.2)
    assert not result.failures
    assert result.results == {f"p{i}": f"job.p{i}" for i in range(count)}
    requests, _ = requests_and_replies(wire)
    assert sorted(m.data.count(b"\n") + 1 for m in requests) == [20, MAX_UNITS]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
async def test_units_started_as_eager_tasks_still_go_in_one_request(
    nats_server: NatsServer, wire: list[Msg],
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        async with cxlang.Runtime(bus=nats_server.url, group="workers") as worker, \
                cxlang.Runtime(bus=nats_server.url, group="apps") as app:
            for i in range(3):
                worker.on(f"job.p{i}", lambda e, i=i: i, inline=True)
            await worker.connect()
            await app.connect()
            await until(lambda: bool(transport_of(app).remote_handlers("job.p2")))
            result = await app.parallel({f"p{i}": f"job.p{i}" for i in range(3)}, {})
            await asyncio.sleep(0.2)
    finally:
        loop.set_task_factory(None)
    assert result.payload == {"p0": 0, "p1": 1, "p2": 2}
    requests, _ = requests_and_replies(wire)
    assert [m.data.count(b"\n") + 1 for m in requests] == [3]
