"""``--quick`` stays quick: its budget's numbers are small (never a wall-clock assertion).

A new user's ``cx bench --quick`` took 56-70 s on a busy 2-core machine; these bounds keep the
numbers that made it slow where they were sized to keep the whole run under 30 s.
"""

from __future__ import annotations

from cxlang.bench import cpu
from cxlang.bench.measure import FULL, QUICK


def test_quick_runs_the_peers_only_where_the_targets_are() -> None:
    assert QUICK.peers_up_to == 10  # LlamaIndex takes 0.1-0.2 s a call at K=100
    assert FULL.peers_up_to >= 100


def test_quick_cpu_work_is_a_few_seconds_at_most() -> None:
    # Each round runs the handlers in process, then in the runtime's pool and in a bare pool,
    # which take about half as long each on two cores.
    in_process = cpu.HANDLERS * QUICK.cpu_seconds * QUICK.slow_rounds
    assert 2 * in_process <= 3.0
    assert QUICK.cpu_seconds < FULL.cpu_seconds


def test_quick_is_smaller_than_full_everywhere() -> None:
    assert QUICK.rounds < FULL.rounds
    assert QUICK.min_batch < FULL.min_batch
    assert QUICK.slow_rounds < FULL.slow_rounds
    assert QUICK.events * QUICK.slow_rounds <= 100_000  # a few tenths of a second of bus
