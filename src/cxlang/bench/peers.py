"""The frameworks measured beside ``rt.parallel``, in the order of the report's rows.

Each is written as its own docs teach keyed fan-out with a join (see :class:`~.baselines.Peer`);
one module per framework says which form and why.
"""

from __future__ import annotations

from . import langchain_baseline, langgraph_baseline, llamaindex_baseline
from .baselines import Peer

__all__ = ["PEERS"]

PEERS: tuple[Peer, ...] = (
    langchain_baseline.PEER,
    langgraph_baseline.PEER,
    llamaindex_baseline.SEND_EVENT,
    llamaindex_baseline.LIST,
)
