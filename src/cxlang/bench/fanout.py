"""Scenarios 1 and 2: what one parallel call costs around K trivial handlers.

The handlers do nothing (or suspend once), so every microsecond measured is coordination: the
consolidated payload, per-branch timeouts and error capture on cxlang's side; tasks and a dict on
the baselines' side; graphs, events and state on the frameworks' side (:mod:`.peers`). Each call
runs in a batch and the median per-call time is reported.

cxlang is measured twice at each size, interleaved with the same baselines: with default
handlers, which get a task of their own from their first step (so task-bound code such as
``asyncio.timeout`` works in them), and with handlers subscribed ``inline=True`` (as compiled CX
handlers are), which get a task only if they suspend. Each gives a row of the report.

The frameworks take milliseconds a call at K=10 and up to 0.2 s at K=100, so ``--quick`` runs
them at K=10 only (``Budget.peers_up_to``), where the issue's targets are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..runtime import Runtime
from .baselines import (
    GATHER,
    NOT_INSTALLED,
    TASKGROUP,
    Branches,
    FanOut,
    check_same_result,
    gather_dict,
    payload_of,
    taskgroup_dict,
)
from .langchain_baseline import PEER as LANGCHAIN
from .langgraph_baseline import PEER as LANGGRAPH
from .llamaindex_baseline import LIST, SEND_EVENT
from .measure import Budget, Call, per_call_samples, run_async
from .model import (
    Comparison,
    Quantity,
    RatioStyle,
    ScenarioResult,
    Target,
    Unit,
    ratio_at_most,
    speedup_at_least,
)
from .peers import PEERS
from .workloads import AsyncHandler, return_at_once, suspend_once

__all__ = ["no_op", "suspending"]

SIZES = (10, 100)
PAYLOAD = {"prompt": "Analyse the Q3 numbers", "quarter": 3}
TIMEOUT = 30.0  # the runtime's default per-handler timeout, given to the TaskGroup baseline too

DEFAULT = "cxlang"
INLINE = "cxlang, inline handlers"

Targets = Mapping[str, Target]  # by baseline name


def no_op(budget: Budget) -> list[ScenarioResult]:
    """K=10 and K=100 handlers that return at once; the issue's targets are for K=10."""
    at_10 = {GATHER: ratio_at_most(1.0, "<= 1.0x gather"), LANGCHAIN.name: speedup_at_least(30)}
    # The targets against LangGraph and LlamaIndex are for default handlers.
    default_at_10 = {**at_10, LANGGRAPH.name: speedup_at_least(50),
                     SEND_EVENT.name: speedup_at_least(150), LIST.name: speedup_at_least(150)}
    rows: list[ScenarioResult] = []
    for k in SIZES:
        default, inline = (default_at_10, at_10) if k == 10 else ({}, {})
        rows.extend(run_async(_fanout("fanout", f"K={k} no-op fan-out", k, return_at_once,
                                      budget, default, inline)))
    return rows


def suspending(budget: Budget) -> list[ScenarioResult]:
    """The same with handlers that suspend once, so every branch becomes a real task."""
    targets = {GATHER: ratio_at_most(1.3, "<= 1.3x gather")}
    rows: list[ScenarioResult] = []
    for k in SIZES:
        rows.extend(run_async(_fanout("fanout-suspend", f"K={k} fan-out, suspend once", k,
                                      suspend_once, budget, targets, targets)))
    return rows


async def _fanout(
    scenario: str,
    title: str,
    k: int,
    handler: AsyncHandler,
    budget: Budget,
    default_targets: Targets,
    inline_targets: Targets,
) -> list[ScenarioResult]:
    branches: Branches = [(f"p{i}", handler) for i in range(k)]
    parameters = {name: f"bench.fanout.{name}" for name, _ in branches}
    runtimes = {DEFAULT: Runtime(), INLINE: Runtime()}
    for contender, rt in runtimes.items():
        for event in parameters.values():
            rt.on(event, handler, inline=contender == INLINE)
    payload = dict(PAYLOAD)
    # What is timed: each contender's call as a program makes it...
    calls: dict[str, Call] = {
        contender: _bound_parallel(rt, parameters, payload) for contender, rt in runtimes.items()
    }
    calls[GATHER] = lambda: gather_dict(branches, payload)
    calls[TASKGROUP] = lambda: taskgroup_dict(branches, payload, TIMEOUT)
    # ... and what is checked first: that each returns the same consolidated payload.
    results: dict[str, FanOut] = {
        contender: payload_of(rt, parameters) for contender, rt in runtimes.items()
    }
    results[TASKGROUP] = lambda p: taskgroup_dict(branches, p, TIMEOUT)
    peers_run = k <= budget.peers_up_to
    for peer in PEERS if peers_run else ():
        fan_out = peer.build(branches)
        if fan_out is not None:
            calls[peer.name] = _bound(fan_out, payload)
            results[peer.name] = fan_out
    try:
        await check_same_result(results, branches, payload)
        samples = await per_call_samples(calls, budget.rounds, budget.min_batch)
    finally:
        for rt in runtimes.values():
            await rt.aclose()

    # A peer that is not installed still gets its line ("not installed"); above
    # budget.peers_up_to the peers are left out of the rows.
    names = (GATHER, TASKGROUP, *(peer.name for peer in PEERS if peers_run))

    def row(contender: str, row_title: str, targets: Targets) -> ScenarioResult:
        return ScenarioResult(
            scenario, row_title, Quantity.median_of(samples[contender], Unit.SECONDS),
            tuple(_comparison(name, samples, targets) for name in names),
        )

    return [row(DEFAULT, title, default_targets),
            row(INLINE, f"{title}, inline handlers", inline_targets)]


def _comparison(name: str, samples: Mapping[str, list[float]], targets: Targets) -> Comparison:
    style = RatioStyle.TIMES if name in (GATHER, TASKGROUP) else RatioStyle.FASTER
    if name not in samples:
        return Comparison(name, None, style, targets.get(name), note=NOT_INSTALLED)
    return Comparison(name, Quantity.median_of(samples[name], Unit.SECONDS), style,
                      targets.get(name))


def _bound(fan_out: FanOut, payload: dict[str, Any]) -> Call:
    return lambda: fan_out(payload)


def _bound_parallel(rt: Runtime, parameters: dict[str, str], payload: dict[str, Any]) -> Call:
    return lambda: rt.parallel(parameters, payload)
