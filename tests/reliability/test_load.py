"""Load: many events, a wide fan-out, many entities, a long multi-agent run; nothing lost.

The default suite runs each at a small size. ``make soak`` (``CX_SOAK=1``) runs them at the
sizes docs/reliability.md reports: 1,000,000 events, 10,000 branches, 1,000 entities.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
from pathlib import Path

from cxlang import Runtime
from cxlang.program import ExitCode, RunOptions, run_source
from cxlang.program.watchdog import resident_bytes

SOAK = os.environ.get("CX_SOAK", "") not in ("", "0")
EVENTS = 1_000_000 if SOAK else 20_000
BRANCHES = 10_000 if SOAK else 500
ENTITIES = 1_000 if SOAK else 100
ROUNDS = 200 if SOAK else 5
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLAT = 64 * 2**20  # memory growth allowed between a tenth of the events and all of them


async def test_events_through_the_bus_in_equal_out_with_flat_memory() -> None:
    async with Runtime() as runtime:
        handled = [0]
        total = [0]

        def count(event: object) -> None:
            handled[0] += 1

        async def add(event: object) -> None:
            total[0] += 1
            if total[0] % 100 == 0:
                await asyncio.sleep(0)  # some handlers suspend, as real ones do

        runtime.on("load.tick", count, inline=True)
        runtime.on("load.tick", add)
        early: int | None = None
        for i in range(EVENTS):
            await runtime.emit_async("load.tick", {"i": i})
            if i == EVENTS // 10:
                await asyncio.wait_for(runtime.run_until_idle(), 60)
                gc.collect()
                early = resident_bytes()
        await asyncio.wait_for(runtime.run_until_idle(), 600)
        gc.collect()
        late = resident_bytes()
        assert handled[0] == total[0] == runtime.bus.handled == EVENTS
        if early is not None and late is not None:
            assert late - early < FLAT, f"memory grew by {(late - early) / 2**20:.0f} MiB"


async def test_a_fan_out_of_many_branches_returns_every_result() -> None:
    async with Runtime() as runtime:
        for i in range(BRANCHES):
            async def branch(event: object, i: int = i) -> int:
                await asyncio.sleep(0)
                return i

            runtime.on(f"wide.b{i}", branch)
        parameters = {f"b{i}": f"wide.b{i}" for i in range(BRANCHES)}
        result = await asyncio.wait_for(runtime.parallel(parameters, {"source": 1}), 600)
        assert not result.has_partial_failures
        assert [result.payload[f"b{i}"] for i in range(BRANCHES)] == list(range(BRANCHES))
        assert result.payload["source"] == 1


def test_many_entities_each_get_every_event() -> None:
    source = f"""
conscious Agent {{
    realize(self: conscious) {{ emit agent.ready {{ name: self.name }}; }}
    on round.start (e) {{ emit agent.done {{ name: self.name, round: e.round }}; }}
}}
var ready = 0; var done = 0;
on agent.ready (e) {{ ready += 1; }}
on agent.done (e) {{ done += 1; }}
var i = 0;
while (i < {ENTITIES}) {{ new Agent({{ name: "a" + i }}); i += 1; }}
on system.start (e) {{ emit round.start {{ round: 1 }}; emit round.start {{ round: 2 }}; }}
on report.now (e) {{ print(ready); print(done); }}
on agent.done (e) {{ if (done == {2 * ENTITIES}) {{ emit report.now; }} }}
"""
    out, err = io.StringIO(), io.StringIO()
    code = run_source(source, "entities.cx", RunOptions(out=out, err=err, timeout=600))
    assert (code, err.getvalue()) == (ExitCode.OK, "")
    assert out.getvalue().split() == [str(ENTITIES), str(2 * ENTITIES)]


def test_a_multi_agent_program_soaks_with_the_same_output_every_round() -> None:
    program = (EXAMPLES / "multi_agent.cx").read_text()
    expected = (EXAMPLES / "expected" / "multi_agent.out").read_text()
    for _ in range(ROUNDS):
        out, err = io.StringIO(), io.StringIO()
        code = run_source(program, "examples/multi_agent.cx",
                          RunOptions(out=out, err=err, timeout=60))
        assert (code, out.getvalue(), err.getvalue()) == (ExitCode.OK, expected, "")
