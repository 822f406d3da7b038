"""NATS's own security is the bus's: a real nats-server with docs/nats-permissions.conf, the
example deployment docs/security.md describes. A peer without permission cannot call, serve,
announce itself, speak for a member, or read calls meant for others; the processes that may,
work as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

import cxlang
from cxlang.runtime.distributed import BusUnavailable
from cxlang.runtime.distributed.credentials import connect_options, shown
from cxlang.runtime.distributed.transport import NatsTransport

from .children import children
from .nats_server import NatsServer, require_binary

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "nats-permissions.conf"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(require_binary(), tmp_path / "jetstream", CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def transport_of(rt: cxlang.Runtime) -> NatsTransport:
    transport = rt.bus.transport
    assert isinstance(transport, NatsTransport)
    return transport


def leaving(member: str) -> bytes:
    """A worker's "I am leaving", as a forger would write it."""
    return json.dumps({"member": member, "group": "workers", "leaving": True,
                       "patterns": []}).encode()


def as_user(server: NatsServer, user: str) -> str:
    return server.url.replace("nats://", f"nats://{user}:change-me-{user}@")


@pytest.fixture
async def guest(guarded: NatsServer) -> AsyncIterator[tuple[Client, list[str]]]:
    refused: list[str] = []

    async def told(exc: Exception) -> None:
        refused.append(str(exc))

    client = await nats.connect(as_user(guarded, "guest"), error_cb=told)
    yield client, refused
    await client.close()


async def test_a_guest_cannot_forge_serve_or_command_while_workers_and_apps_work(
    guarded: NatsServer, guest: tuple[Client, list[str]], caplog: pytest.LogCaptureFixture,
) -> None:
    client, refused = guest
    async with cxlang.Runtime(bus=as_user(guarded, "worker"), group="workers") as worker, \
            cxlang.Runtime(bus=as_user(guarded, "app"), group="apps") as app:
        worker.on("job.run", lambda e: "real", inline=True)
        await worker.connect()
        await app.connect()
        member = transport_of(worker).origin
        await asyncio.sleep(0.2)  # the worker's announcement reaches the app
        # The guest tries what a forger would: read calls, answer them, announce itself as
        # serving job.run, say the worker left, call the workers, shut a process down.
        async def answer(msg: Msg) -> None:
            await msg.respond(b'{"value": "FORGED"}')

        await client.subscribe("_CX.call.>", cb=answer)
        await client.subscribe(f"_CX.call.workers.{member}", cb=answer)
        await client.publish("_CX.presence.evil.forger", json.dumps(
            {"member": "forger", "group": "evil", "patterns": ["job.run"]}).encode())
        await client.publish(f"_CX.presence.workers.{member}", leaving(member))
        await client.publish("system.shutdown", b"{}")
        with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
            await client.request(f"_CX.call.workers.{member}", b"{}", timeout=1)
        await client.flush()
        await asyncio.sleep(0.2)
        res = await app.parallel({"r": "job.run"}, {}, timeout=5)
    assert res.payload["r"] == "real"  # the worker's alone: no forged unit, no forged value
    for subject in ("_cx.call.>", f"_cx.call.workers.{member}", "_cx.presence.evil.forger",
                    f"_cx.presence.workers.{member}", "system.shutdown"):
        assert any(f'"{subject}"' in r.lower() for r in refused), (subject, refused)
    assert "refused" not in caplog.text  # the worker and the app did only what they may


async def test_another_groups_user_cannot_take_a_workers_calls_or_say_it_left(
    guarded: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    refused: list[str] = []

    async def told(exc: Exception) -> None:
        refused.append(str(exc).lower())

    intruder = await nats.connect(as_user(guarded, "app"), error_cb=told)
    try:
        async with cxlang.Runtime(bus=as_user(guarded, "worker"), group="workers") as worker, \
                cxlang.Runtime(bus=as_user(guarded, "app"), group="apps") as app:
            worker.on("job.run", lambda e: "real", inline=True)
            await worker.connect()
            await app.connect()
            member = transport_of(worker).origin
            await asyncio.sleep(0.2)
            await intruder.subscribe(f"_CX.call.workers.{member}")
            await intruder.publish(f"_CX.presence.workers.{member}", leaving(member))
            await intruder.flush()
            await asyncio.sleep(0.2)
            assert member in transport_of(app).directory.members
            res = await app.parallel({"r": "job.run"}, {}, timeout=5)
    finally:
        await intruder.close()
    assert res.payload == {"r": "real"}
    assert any(f'subscription to "_cx.call.workers.{member}"' in r for r in refused)
    assert any(f'publish to "_cx.presence.workers.{member}"' in r for r in refused)
    assert "refused" not in caplog.text


async def test_a_worker_may_answer_a_requests_units_in_as_many_replies_as_they_end(
    guarded: NatsServer, caplog: pytest.LogCaptureFixture,
) -> None:
    async def later(event: cxlang.Event) -> str:
        await asyncio.sleep(0.2)
        return "later"

    async with cxlang.Runtime(bus=as_user(guarded, "worker"), group="workers") as worker, \
            cxlang.Runtime(bus=as_user(guarded, "app"), group="apps") as app:
        worker.on("job.run", lambda e: "at once", inline=True)
        worker.on("job.later", later)
        await worker.connect()
        await app.connect()
        await asyncio.sleep(0.2)
        res = await app.parallel({"r": "job.run", "l": "job.later"}, {}, timeout=5)
    assert res.payload == {"r": "at once", "l": "later"}  # two replies to one request
    assert "refused" not in caplog.text


async def test_wrong_credentials_are_refused_with_what_to_do_and_no_password_shown(
    guarded: NatsServer,
) -> None:
    url = guarded.url.replace("nats://", "nats://app:not-the-password@")
    with pytest.raises(BusUnavailable) as refused:
        async with cxlang.Runtime(bus=url) as rt:
            await rt.connect()
    message = str(refused.value)
    assert "refused this process's credentials" in message
    assert "NATS_USER/NATS_PASSWORD" in message
    assert "not-the-password" not in message
    assert "app:***@127.0.0.1" in message


async def test_credentials_come_from_the_nats_variables_too(
    guarded: NatsServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NATS_USER", "worker")
    monkeypatch.setenv("NATS_PASSWORD", "change-me-worker")
    async with cxlang.Runtime(bus=guarded.url, group="workers") as rt:
        await rt.connect()
        assert rt.bus.transport is not None


def test_cx_processes_run_under_the_permissions_in_their_named_groups(
    guarded: NatsServer, tmp_path: Path,
) -> None:
    worker = tmp_path / "worker.cx"
    worker.write_text('on job.run (e) { return "done by the worker"; }\n', encoding="utf-8")
    program = tmp_path / "main.cx"
    # Its completion event is a job.* one: the app may publish those and nothing else (a
    # refused publish, thinking.complete say, would be logged as an error).
    program.write_text('var r = think { prompt: "p", job: job.run, handlers: [ job.done ] };\n'
                       'print(r.job);\n', encoding="utf-8")
    with children() as start:
        serving = start("worker", worker, "--group", "workers", "--bus",
                        as_user(guarded, "worker"))
        serving.wait_line("cx worker:", stream="err")
        assert "change-me" not in "".join(serving.lines("err"))  # the password never shows
        run = start("run", program, "--group", "apps", "--bus", as_user(guarded, "app"),
                    "--timeout", "20s")
        assert run.wait_exit() == 0, run.lines("err")
        assert run.lines() == ["done by the worker"]
        assert run.lines("err") == []


@pytest.mark.parametrize(("url", "shown_as"), [
    ("nats://app:secret@10.0.0.1:4222", "nats://app:***@10.0.0.1:4222"),
    ("nats://s3cr3t-token@host", "nats://***@host"),
    ("tls://127.0.0.1:4222", "tls://127.0.0.1:4222"),
])
def test_a_bus_url_is_shown_without_its_secret(url: str, shown_as: str) -> None:
    assert shown(url) == shown_as


def test_the_nats_variables_become_connect_options(tmp_path: Path) -> None:
    assert connect_options("nats://h", {"NATS_TOKEN": "t"}) == {"token": "t"}
    assert connect_options("nats://h", {"NATS_USER": "u", "NATS_PASSWORD": "p"}) == {
        "user": "u", "password": "p"}
    with pytest.raises(BusUnavailable, match=r"NATS_CREDS=/nowhere.creds: no such file"):
        connect_options("nats://h", {"NATS_CREDS": "/nowhere.creds"})
    with pytest.raises(BusUnavailable, match="cannot set up TLS for the bus"):
        connect_options("nats://h", {"NATS_CA": str(tmp_path / "missing-ca.pem")})
    assert "tls" in connect_options("tls://h", {})
