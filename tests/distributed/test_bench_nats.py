"""``cx bench --only nats`` runs its three measurements against a real server (not timed)."""

from __future__ import annotations

from cxlang.bench.measure import Budget
from cxlang.bench.nats_bus import nats_bus
from cxlang.bench.report import table

from .nats_server import require_binary

TINY = Budget(rounds=1, min_batch=0.001, slow_rounds=1, events=200)


def test_the_nats_scenario_measures_events_fanout_and_cpu() -> None:
    require_binary()
    results = nats_bus(TINY)
    assert [r.title.split(",")[0] for r in results] == [
        "bus over NATS (loopback)", "K=10 no-op fan-out", "8 x ~0.1 s CPU (CX loop)"]
    assert all(r.cxlang.value > 0 for r in results)
    assert "in-process bus" in table(results)
