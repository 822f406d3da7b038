"""A model turn that calls 10 tools, against the same 10 handlers called directly.

Tools are handlers, and the tool calls of one turn are one parallel call, so the difference
is what the tool loop adds: two turns of the built-in ``local`` backend (the first asks for every
tool, the second answers), reading the calls, checking their arguments against the tools'
parameters, and writing each result back for the model. The handlers return at once, so all of
it shows.
"""

from __future__ import annotations

from typing import Any

from ..runtime import Event, Runtime
from ..services import Services
from .measure import Budget, per_call_samples, run_async
from .model import Comparison, Quantity, ScenarioResult, Unit

__all__ = ["tool_turn"]

TOOLS = 10
DIRECT = "the 10 handlers by rt.parallel"


async def _look_up(event: Event) -> dict[str, Any]:
    return {"city": event.payload.get("city"), "celsius": 21}


def tool_turn(budget: Budget) -> list[ScenarioResult]:
    return [run_async(_tool_turn(budget))]


async def _tool_turn(budget: Budget) -> ScenarioResult:
    rt = Runtime()
    events = [f"bench.tool.t{i}" for i in range(TOOLS)]
    for event in events:
        rt.on(event, _look_up)
    tools = [{"event": event, "parameters": {"city": "string"}} for event in events]
    parameters = {f"t{i}": event for i, event in enumerate(events)}
    payload = {"city": "example"}
    services = Services(rt, backend="local")
    try:
        answer = await services.think("the weather, ten times", tools=tools)
        if "bench.tool.t9" not in answer:
            raise RuntimeError(f"the tool turn did not call every tool: {answer!r}")
        samples = await per_call_samples(
            {"cxlang": lambda: services.think("the weather, ten times", tools=tools),
             DIRECT: lambda: rt.parallel(parameters, payload)},
            budget.rounds, budget.min_batch)
    finally:
        await services.aclose()
        await rt.aclose()
    return ScenarioResult(
        "tools", f"a model turn with {TOOLS} tool calls (local backend)",
        Quantity.median_of(samples["cxlang"], Unit.SECONDS),
        (Comparison(DIRECT, Quantity.median_of(samples[DIRECT], Unit.SECONDS)),),
    )
