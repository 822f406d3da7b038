"""Several runtimes of this process on one real nats-server, each with its own connection:
the rules of how local and remote handlers combine."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats

import cxlang

from .children import CX
from .nats_server import NatsServer, free_port


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        await asyncio.sleep(0.01)


async def test_a_group_shares_events_and_overlapping_patterns_deliver_once(
    nats_server: NatsServer,
) -> None:
    handled: list[tuple[str, int]] = []
    emitter = cxlang.Runtime(bus=nats_server.url)
    workers = [cxlang.Runtime(bus=nats_server.url, group="shared") for _ in range(2)]
    for index, worker in enumerate(workers):
        def record(event: cxlang.Event, index: int = index) -> None:
            handled.append((event.name, event.payload["n"]))

        worker.on("job.run", record, inline=True)
        worker.on("job.any", record, inline=True)  # overlaps: still one delivery per process
    try:
        for runtime in (*workers, emitter):
            await runtime.connect()
        for n in range(20):
            emitter.emit("job.run", {"n": n})
        await until(lambda: len(handled) >= 40)
        await asyncio.sleep(0.1)  # nothing more may come
    finally:
        for runtime in (emitter, *workers):
            await runtime.aclose()
    # One member of the group took each event; its two handlers both ran.
    assert sorted(handled) == sorted([("job.run", n) for n in range(20)] * 2)


async def test_system_events_stay_in_their_process(nats_server: NatsServer) -> None:
    seen: list[str] = []
    async with cxlang.Runtime(bus=nats_server.url) as there, \
            cxlang.Runtime(bus=nats_server.url) as here:
        there.on("system.any", lambda e: seen.append(e.name), inline=True)
        there.on("app.ping", lambda e: seen.append(e.name), inline=True)
        await asyncio.sleep(0.1)  # the subscriptions reach the server
        here.emit("system.start", {})
        here.emit("app.ping", {})
        await until(lambda: "app.ping" in seen)
    assert seen == ["app.ping"]


async def test_a_parallel_call_mixes_local_and_remote_handlers(nats_server: NatsServer) -> None:
    async with cxlang.Runtime(bus=nats_server.url, group="remote") as remote:
        @remote.on("score.text")
        async def remote_score(event: cxlang.Event) -> dict[str, object]:
            context = cxlang.current_context()
            return {"where": "remote", "parameter": context.parameter,
                    "execution": context.execution_id}

        @remote.on("fail.here")
        async def fail(event: cxlang.Event) -> None:
            raise ValueError("remote boom")

        await asyncio.sleep(0.1)
        async with cxlang.Runtime(bus=nats_server.url) as caller:
            caller.on("score.text", lambda e: "local", inline=True)
            result = await caller.parallel(
                {"score": "score.text", "fail": "fail.here", "nobody": "no.one"}, {"t": 1},
                timeout=5)
    local, remote_value = result.payload["score"]
    assert local == "local"
    assert remote_value == {"where": "remote", "parameter": "score",
                            "execution": result.execution_id}
    # In the words of a local CX handler's error: the message, not the worker's Python class.
    assert result.failures["fail"] == cxlang.Failure("error", "remote boom")
    assert result.failures["nobody"].kind == "no_handler"


def test_cx_run_says_clearly_when_the_server_is_unreachable() -> None:
    done = subprocess.run([str(CX), "run", "-", "--bus", f"nats://127.0.0.1:{free_port()}"],
                          input='print("never");\n', capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "cannot reach the NATS server" in done.stderr and "Traceback" not in done.stderr


async def test_events_emitted_in_a_burst_go_in_batches_and_keep_their_order(
    nats_server: NatsServer,
) -> None:
    seen: list[tuple[int, str, str | None, int]] = []
    messages: list[int] = []  # how many events each message on the subject carried
    async with cxlang.Runtime(bus=nats_server.url) as there, \
            cxlang.Runtime(bus=nats_server.url) as here:
        there.on("job.run", lambda e: seen.append((e.payload["n"], e.id, e.parent_id, e.depth)),
                 inline=True)
        listener = await nats.connect(nats_server.url)  # beside the group, sees every message
        await listener.subscribe("job.run", cb=_count_events(messages))
        await listener.flush()
        await asyncio.sleep(0.1)  # the subscription reaches the server
        emitted = [here.emit("job.run", {"n": n}) for n in range(1000)]
        await until(lambda: len(seen) == 1000)
        here.emit("job.run", {"n": 1000})  # alone: the plain form
        await until(lambda: len(seen) == 1001)
        await until(lambda: sum(messages) == 1001)
        await listener.close()
    assert seen[:1000] == [(n, e.id, None, 0) for n, e in enumerate(emitted)]
    assert sum(messages) == 1001 and messages[-1] == 1
    assert 1 < len(messages) <= 1000 // 2, "a burst goes in batches, in more than one message"
    assert max(messages) <= 100


def _count_events(messages: list[int]) -> Callable[[Any], Awaitable[None]]:
    async def count(msg: Any) -> None:
        messages.append(int((msg.headers or {}).get("Cx-Batch", "1")))
    return count


async def test_a_batch_carries_the_causal_parent_and_depth_of_each_event(
    nats_server: NatsServer,
) -> None:
    seen: list[tuple[str | None, int, float]] = []
    async with cxlang.Runtime(bus=nats_server.url) as there, \
            cxlang.Runtime(bus=nats_server.url) as here:
        there.on("job.step", lambda e: seen.append((e.parent_id, e.depth, e.timestamp)),
                 inline=True)
        await asyncio.sleep(0.1)

        def fan(event: cxlang.Event) -> None:
            for _ in range(5):
                here.emit("job.step", {})

        here.on("job.start", fan, inline=True)
        start = here.emit("job.start", {})
        await until(lambda: len(seen) == 5)
    assert {(parent, depth) for parent, depth, _ in seen} == {(start.id, 1)}
    assert all(isinstance(when, float) and when >= start.timestamp for _, _, when in seen)
