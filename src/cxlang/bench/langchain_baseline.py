"""The LangChain peer: ``RunnableParallel`` over the same async handlers.

``RunnableParallel(name=RunnableLambda(handler), ...)`` is how LangChain's docs run runnables at
once on one input; it returns only the branches' results, so the source payload is merged in
after, as :func:`~.baselines.gather_dict` does.
"""

from __future__ import annotations

import importlib
from typing import Any

from .baselines import Branches, FanOut, Peer

__all__ = ["PEER"]


def runnable_parallel(branches: Branches) -> FanOut | None:
    try:
        runnables = importlib.import_module("langchain_core.runnables")
    except ImportError:
        return None
    ainvoke = runnables.RunnableParallel(
        **{name: runnables.RunnableLambda(handler) for name, handler in branches}
    ).ainvoke

    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, **await ainvoke(payload)}

    return call


PEER = Peer("RunnableParallel.ainvoke", "langchain-core", runnable_parallel)
