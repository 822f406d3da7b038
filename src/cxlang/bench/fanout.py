"""Scenarios 1 and 2: what one parallel call costs around K trivial handlers.

The handlers do nothing (or suspend once), so every microsecond measured is coordination: the
consolidated payload, per-branch timeouts and error capture on cxlang's side; tasks and a dict on
the baselines' side. Each call runs in a batch and the median per-call time is reported.

Each size is measured twice: with default handlers, which get a task of their own from their
first step (so task-bound code such as ``asyncio.timeout`` works in them), and with handlers
subscribed ``inline=True`` (as compiled CX handlers are), which get a task only if they suspend.
"""

from __future__ import annotations

from typing import Any

from ..runtime import Runtime
from . import langchain_baseline
from .baselines import GATHER, TASKGROUP, Branches, gather_dict, taskgroup_dict
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
from .workloads import AsyncHandler, return_at_once, suspend_once

__all__ = ["no_op", "suspending"]

SIZES = (10, 100)
PAYLOAD = {"prompt": "Analyse the Q3 numbers", "quarter": 3}
TIMEOUT = 30.0  # the runtime's default per-handler timeout, given to the TaskGroup baseline too


def no_op(budget: Budget) -> list[ScenarioResult]:
    """K=10 and K=100 handlers that return at once; the brief's targets are for K=10."""
    return [
        run_async(_fanout("fanout", f"K={k} no-op fan-out{_kind(inline)}", k, return_at_once,
                          budget, inline=inline,
                          gather_target=ratio_at_most(1.0, "<= 1.0x gather") if k == 10 else None,
                          langchain_target=speedup_at_least(30) if k == 10 else None))
        for k in SIZES for inline in (False, True)
    ]


def suspending(budget: Budget) -> list[ScenarioResult]:
    """The same with handlers that suspend once, so every branch becomes a real task."""
    return [
        run_async(_fanout("fanout-suspend", f"K={k} fan-out, suspend once{_kind(inline)}", k,
                          suspend_once, budget, inline=inline,
                          gather_target=ratio_at_most(1.3, "<= 1.3x gather"),
                          langchain_target=None))
        for k in SIZES for inline in (False, True)
    ]


def _kind(inline: bool) -> str:
    return ", inline handlers" if inline else ""


async def _fanout(
    scenario: str,
    title: str,
    k: int,
    handler: AsyncHandler,
    budget: Budget,
    *,
    inline: bool,
    gather_target: Target | None,
    langchain_target: Target | None,
) -> ScenarioResult:
    rt = Runtime()
    branches: Branches = [(f"p{i}", handler) for i in range(k)]
    parameters = {name: f"bench.fanout.{name}" for name, _ in branches}
    for event in parameters.values():
        rt.on(event, handler, inline=inline)
    payload = dict(PAYLOAD)
    calls: dict[str, Call] = {
        "cxlang": lambda: rt.parallel(parameters, payload),
        GATHER: lambda: gather_dict(branches, payload),
        TASKGROUP: lambda: taskgroup_dict(branches, payload, TIMEOUT),
    }
    runnable = langchain_baseline.runnable_parallel(branches)
    if runnable is not None:
        ainvoke = runnable.ainvoke
        calls[langchain_baseline.NAME] = lambda: ainvoke(payload)
    try:
        await _check_same_result(rt, parameters, branches, payload)
        samples = await per_call_samples(calls, budget.rounds, budget.min_batch)
    finally:
        await rt.aclose()

    def measured(name: str) -> Quantity | None:
        return Quantity.median_of(samples[name], Unit.SECONDS) if name in samples else None

    langchain = measured(langchain_baseline.NAME)
    return ScenarioResult(
        scenario,
        title,
        Quantity.median_of(samples["cxlang"], Unit.SECONDS),
        (
            Comparison(GATHER, measured(GATHER), target=gather_target),
            Comparison(TASKGROUP, measured(TASKGROUP)),
            Comparison(langchain_baseline.NAME, langchain, RatioStyle.FASTER, langchain_target,
                       note="" if langchain else langchain_baseline.NOT_INSTALLED),
        ),
    )


async def _check_same_result(
    rt: Runtime, parameters: dict[str, str], branches: Branches, payload: dict[str, Any]
) -> None:
    """Refuse to time contenders that do not do the same work."""
    result = await rt.parallel(parameters, payload)
    expected = await gather_dict(branches, payload)
    if result.failures or result.payload != expected:
        raise RuntimeError(f"cxlang and gather disagree: {result!r} vs {expected!r}")
