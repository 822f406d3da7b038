"""``cx bench --only nats`` runs its three measurements against a real server (not timed)."""

from __future__ import annotations

import sys

import pytest

from cxlang.bench.measure import Budget
from cxlang.bench.nats_bus import nats_bus
from cxlang.bench.report import table

from .nats_server import require_binary

TINY = Budget(rounds=1, min_batch=0.001, slow_rounds=1, events=200)


def test_the_nats_scenario_measures_events_fanout_and_cpu_beside_faststream() -> None:
    require_binary()
    results = nats_bus(TINY)
    assert [r.title.split(",")[0] for r in results] == [
        "bus over NATS (loopback)", "K=10 no-op fan-out", "8 CPU-bound handlers (CX loop)"]
    assert all(r.cxlang.value > 0 for r in results)
    shown = table(results)
    assert "in-process bus" in shown
    events, fanout, _ = results
    for result in (events, fanout):
        faststream = result.comparisons[-1]
        assert faststream.baseline.startswith("FastStream NatsBroker")
        assert faststream.value is not None and faststream.value.value > 0


def test_without_faststream_its_columns_say_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_binary()
    monkeypatch.setitem(sys.modules, "faststream.nats", None)  # import fails: not installed
    events, fanout, _ = nats_bus(TINY)
    for result in (events, fanout):
        faststream = result.comparisons[-1]
        assert faststream.value is None and faststream.note == "not installed"
