"""The LangGraph peer: a ``StateGraph`` fanning out from ``START`` to one node per branch.

This is the form LangGraph's "parallel node execution" guide teaches: static edges from ``START``
to every node, and a reducer on the state key the branches write, so their updates merge instead
of overwriting each other. Every node runs the same async handler on the payload and writes its
result under its own name into ``results`` (a dict-merge reducer). The graph is compiled once,
without a checkpointer, and ``ainvoke``d per call.

Of the variants tried (one state key per branch instead of a reducer; a join node after the
branches), this one was as fast or faster, so it is the one measured: the branches all run in
one superstep, and ``ainvoke`` returns once that superstep's updates are applied, which is the
join. The source payload is merged into the result after, as :func:`~.baselines.gather_dict`
does.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, TypedDict

from .baselines import Branches, FanOut, Peer
from .workloads import AsyncHandler

__all__ = ["PEER"]

Node = Any  # an async function from the state to its update, as LangGraph calls it


def merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """The reducer of ``results``: each branch adds its own key."""
    return {**left, **right}


class FanOutState(TypedDict):
    payload: dict[str, Any]
    results: Annotated[dict[str, Any], merge]


def state_graph(branches: Branches) -> FanOut | None:
    try:
        graph_module = importlib.import_module("langgraph.graph")
    except ImportError:
        return None
    graph = graph_module.StateGraph(FanOutState)
    for name, handler in branches:
        graph.add_node(name, _node(name, handler))
        graph.add_edge(graph_module.START, name)
        graph.add_edge(name, graph_module.END)
    ainvoke = graph.compile().ainvoke

    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        state = await ainvoke({"payload": payload, "results": {}})
        return {**payload, **state["results"]}

    return call


def _node(name: str, handler: AsyncHandler) -> Node:
    async def node(state: FanOutState) -> dict[str, Any]:
        return {"results": {name: await handler(state["payload"])}}

    return node


PEER = Peer("LangGraph StateGraph.ainvoke", "langgraph", state_graph)
