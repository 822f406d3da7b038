"""Several ``cx`` processes on one real nats-server: events, calls, kills, restarts, durability.

Every test has the server and at least two ``cx`` processes (often the test's own runtime as a
further one); each bounds its waits and stops everything it started, even when it fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import cxlang

from .children import children
from .nats_server import NatsServer


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


async def test_events_cross_processes_with_their_context(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    listener = write(tmp_path, "listen.cx", """
        var count = 0;
        on order.any (e) {
            count += 1; print("got " + e.n);
            if (count == 3) { emit system.shutdown; }
        }
        print("ready");
    """)
    emitter = write(tmp_path, "emit.cx", """
        on order.created (e) { print("local " + e.n); }
        on go (e) { emit order.created { n: 2 }; emit order.created { n: 3 }; }
        emit order.created { n: 1 };
        emit go;
    """)
    seen: list[cxlang.Event] = []
    async with cxlang.Runtime(bus=nats_server.url) as rt:
        rt.on("order.created", seen.append, inline=True)
        await rt.connect()
        with children() as start:
            listen = start("run", listener, "--bus", nats_server.url, "--serve")
            await asyncio.to_thread(listen.wait_line, "ready")
            emit = start("run", emitter, "--bus", nats_server.url)
            assert await asyncio.to_thread(emit.wait_exit) == 0
            # The emitter's own handler ran in the emitter, and only there.
            assert emit.lines() == ["local 1", "local 2", "local 3"]
            assert await asyncio.to_thread(listen.wait_exit) == 0
            assert listen.lines() == ["ready", "got 1", "got 2", "got 3"]
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    assert [e.payload for e in seen] == [{"n": 1}, {"n": 2}, {"n": 3}]
    first, second, _ = seen
    assert first.parent_id is None and first.depth == 0
    # Emitted by the handler of "go": the causal parent crossed with the event.
    assert second.parent_id is not None and second.depth == 1
    assert abs(second.timestamp - time.time()) < 30
    assert len({e.id for e in seen}) == 3


async def test_parallel_call_with_handlers_in_two_worker_processes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    first = write(tmp_path, "first.cx", """
        on analytics.complete (e) { return { tone: "positive", prompt: e.prompt }; }
    """)
    second = write(tmp_path, "second.cx", """
        on analytics.complete (e) { return "second"; }
        on reporting.ready (e) { return "report on " + e.prompt; }
    """)
    main = write(tmp_path, "main.cx", """
        on analytics.complete (e) { return "local"; }
        think { prompt: "Q3", analytics: analytics.complete, reporting: reporting.ready,
                missing: nobody.home, handlers: [ analysis.done ] };
        on analysis.done (e) { print(e); }
        on thinking.error (e) { }  // the missing parameter's failure is expected: handled
    """)
    with children() as start:
        workers = [start("worker", first, "--bus", nats_server.url, "--group", "a-first"),
                   start("worker", second, "--bus", nats_server.url, "--group", "b-second")]
        for worker in workers:
            worker.wait_line("cx worker:", stream="err")
        run = start("run", main, "--bus", nats_server.url, "--timeout", "20s")
        assert run.wait_exit() == 0, run.lines("err")
        (line,) = run.lines()
    payload = json.loads(line)
    # Local handlers first, then each group's, groups by name.
    assert payload["analytics"] == ["local", {"tone": "positive", "prompt": "Q3"}, "second"]
    assert payload["reporting"] == "report on Q3"
    assert payload["missing"] is None
    assert payload["_errors"] == {"missing": {
        "type": "no_handler", "message": "no handler is subscribed to 'nobody.home'"}}


async def test_a_worker_killed_mid_call_times_out_its_parameters_only(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow.cx", """
        on slow.work (e) {
            print("started " + e.job); var w = await { durationMs: 20000 }; return "late";
        }
    """)
    fast = write(tmp_path, "fast.cx", """
        on fast.work (e) { return "fast " + e.job; }
    """)
    with children() as start:
        doomed = start("worker", slow, "--bus", nats_server.url)
        alive = start("worker", fast, "--bus", nats_server.url)
        for worker in (doomed, alive):
            await asyncio.to_thread(worker.wait_line, "cx worker:", "err")
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            call = asyncio.ensure_future(rt.parallel(
                {"slow": "slow.work", "fast": "fast.work"}, {"job": 7}, timeout=3.0))
            await asyncio.to_thread(doomed.wait_line, "started 7")
            doomed.kill()
            result = await asyncio.wait_for(call, 15)
            # The dead worker's group is listed still, but nobody serves it: said at once.
            again = await asyncio.wait_for(rt.parallel({"slow": "slow.work"}, {}), 15)
    assert result.results == {"fast": "fast 7"}
    assert result.failures["slow"].kind == "timeout"
    assert again.failures["slow"].kind == "no_handler"


async def test_a_worker_killed_mid_batch_fails_only_its_units_still_running(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    doomed_source = write(tmp_path, "doomed.cx", """
        on slow.work (e) {
            print("started " + e.job); var w = await { durationMs: 20000 }; return "late";
        }
        on quick.work (e) { return "quick " + e.job; }
    """)
    fast = write(tmp_path, "fast.cx", """
        on fast.work (e) { return "fast " + e.job; }
    """)
    with children() as start:
        doomed = start("worker", doomed_source, "--bus", nats_server.url)
        alive = start("worker", fast, "--bus", nats_server.url)
        for worker in (doomed, alive):
            await asyncio.to_thread(worker.wait_line, "cx worker:", "err")
        outcomes: dict[str, cxlang.BranchOutcome] = {}
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            # slow and quick go to the doomed worker in one request; quick is answered at once,
            # and the worker dies while slow runs.
            async for name, outcome in rt.as_completed(
                    {"slow": "slow.work", "quick": "quick.work", "fast": "fast.work"},
                    {"job": 7}, timeout=3.0):
                outcomes[name] = outcome
                if name == "quick":
                    await asyncio.to_thread(doomed.wait_line, "started 7")
                    doomed.kill()
    assert {name: o.value for name, o in outcomes.items()} == \
        {"quick": "quick 7", "fast": "fast 7", "slow": None}
    failure = outcomes["slow"].failure
    assert failure is not None and failure.kind == "timeout"


async def test_processes_reconnect_after_a_server_restart_and_lose_no_emit(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    listener = write(tmp_path, "listen.cx", """
        var count = 0;
        on tick (e) { count += 1; print("tick " + e.n); if (count == 6) { emit system.shutdown; } }
        print("ready");
    """)
    worker = write(tmp_path, "echo.cx", """
        on echo.me (e) { return "echo " + e.word; }
    """)
    with children() as start:
        listen = start("run", listener, "--bus", nats_server.url, "--serve")
        echo = start("worker", worker, "--bus", nats_server.url)
        await asyncio.to_thread(listen.wait_line, "ready")
        await asyncio.to_thread(echo.wait_line, "cx worker:", "err")
        async with cxlang.Runtime(bus=nats_server.url) as rt:
            for n in range(3):
                rt.emit("tick", {"n": n})
            await asyncio.to_thread(listen.wait_line, "tick 2")
            nats_server.stop()
            for n in range(3, 6):
                rt.emit("tick", {"n": n})  # kept while the server is away
            await asyncio.sleep(0.5)
            nats_server.start()
            assert await asyncio.to_thread(listen.wait_exit) == 0, listen.lines("err")
            result = await asyncio.wait_for(rt.parallel({"echo": "echo.me"}, {"word": "hi"},
                                                        timeout=10), 15)
        assert listen.lines() == ["ready"] + [f"tick {n}" for n in range(6)]
        assert any("reconnected" in line for line in listen.lines("err"))
    assert result.payload["echo"] == "echo hi"


async def test_durable_events_are_redelivered_when_a_worker_dies(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    jobs = 20
    worker = write(tmp_path, "jobs.cx", """
        on job.run (e) {
            print("start " + e.n); var w = await { durationMs: 150 }; print("done " + e.n);
        }
    """)
    emitter = write(tmp_path, "emit.cx", f"""
        var n = 0;
        while (n < {jobs}) {{ emit job.run {{ n: n }}; n += 1; }}
    """)
    durable = ["--bus", nats_server.url, "--durable", "--ack-wait", "1s"]
    with children() as start:
        doomed = start("worker", worker, "--group", "jobs", *durable)
        survivor = start("worker", worker, "--group", "jobs", *durable)
        for each in (doomed, survivor):
            each.wait_line("cx worker:", stream="err")
        emit = start("run", emitter, *durable)
        doomed.wait_line("start ")
        doomed.kill()  # mid-handler: started, not done, not acknowledged
        assert emit.wait_exit() == 0, emit.lines("err")

        def done(lines: list[str]) -> set[int]:
            return {int(line.split()[1]) for line in lines if line.startswith("done ")}

        survivor.wait_for(lambda lines: done(doomed.lines()) | done(lines) >= set(range(jobs)),
                          timeout=30)
        handled = done(doomed.lines()) | done(survivor.lines())
        started_only = {int(line.split()[1]) for line in doomed.lines()
                        if line.startswith("start ")} - done(doomed.lines())
    assert started_only, "the worker was to be killed mid-handler"
    assert handled == set(range(jobs))  # count in == count out: nothing lost
