"""The two fan-out workflows LlamaIndex's "concurrent execution" guide teaches, as it writes them.

* :data:`SEND_EVENT`: the start step calls ``ctx.send_event`` once per branch; the join step
  gathers the results with ``ctx.collect_events(ev, [Done] * K)``, which returns ``None`` until
  all K are in.
* :data:`LIST`: the start step returns a ``list[Task]`` (one event per element, one batch) and
  the join step takes a ``list[Done]`` parameter, which fires once on the whole batch.

In both, one ``work`` step runs the branch's handler on the payload, with ``num_workers=K`` so
that all K run at once (the default, 4, would queue the rest). ``StopEvent.result`` holds the
results by branch name.

This module imports llama-index-workflows directly (its types are what the ``@step`` decorator
and mypy read), so only :mod:`.llamaindex_baseline` imports it, lazily, when it is installed.
"""

from __future__ import annotations

from typing import Any

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from .baselines import Branches

__all__ = ["LIST", "SEND_EVENT", "workflow_classes"]

SEND_EVENT = "send_event"
LIST = "list"


def workflow_classes(branches: Branches) -> dict[str, type[Workflow]]:
    """Both workflows over *branches*, by form; built per set of branches because K is in them."""
    handlers = dict(branches)
    k = len(handlers)

    class Task(Event):
        name: str
        payload: dict[str, Any]

    class Done(Event):
        name: str
        value: Any

    class SendEventFlow(Workflow):
        @step
        async def fan_out(self, ctx: Context, ev: StartEvent) -> Task | None:
            for name in handlers:
                ctx.send_event(Task(name=name, payload=ev.payload))
            return None

        @step(num_workers=k)
        async def work(self, ev: Task) -> Done:
            return Done(name=ev.name, value=await handlers[ev.name](ev.payload))

        @step
        async def join(self, ctx: Context, ev: Done) -> StopEvent | None:
            done = ctx.collect_events(ev, [Done] * k)
            if done is None:
                return None
            return StopEvent(result={d.name: d.value for d in done})

    class ListFlow(Workflow):
        @step
        async def fan_out(self, ev: StartEvent) -> list[Task]:
            return [Task(name=name, payload=ev.payload) for name in handlers]

        @step(num_workers=k)
        async def work(self, ev: Task) -> Done:
            return Done(name=ev.name, value=await handlers[ev.name](ev.payload))

        @step
        async def join(self, done: list[Done]) -> StopEvent:
            return StopEvent(result={d.name: d.value for d in done})

    return {SEND_EVENT: SendEventFlow, LIST: ListFlow}
