"""The frameworks measured beside ``rt.parallel`` do the same work, or say they are missing.

Each peer must return the consolidated payload gather returns (the source payload plus every
branch's result under its name), or the bench would compare unequal work.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from cxlang.bench.baselines import Branches, Peer, gather_dict
from cxlang.bench.peers import PEERS
from cxlang.bench.workloads import AsyncHandler, return_at_once, suspend_once

PAYLOAD = {"prompt": "Analyse the Q3 numbers", "quarter": 3}
MODULE_OF = {"langchain-core": "langchain_core", "langgraph": "langgraph",
             "llama-index-workflows": "workflows"}
IDS = [peer.name for peer in PEERS]


def _numbered(i: int) -> AsyncHandler:
    """A handler whose result is its branch's number, so a result filed wrongly shows."""

    async def run(_: object) -> int:
        return i

    return run


def _needs(peer: Peer) -> None:
    pytest.importorskip(MODULE_OF[peer.distribution])


@pytest.mark.parametrize("peer", PEERS, ids=IDS)
@pytest.mark.parametrize("k", [1, 3, 12])
async def test_each_peer_returns_the_consolidated_payload(peer: Peer, k: int) -> None:
    _needs(peer)
    branches: Branches = [(f"p{i}", _numbered(i)) for i in range(k)]
    fan_out = peer.build(branches)
    assert fan_out is not None

    result = await fan_out(dict(PAYLOAD))

    assert result == await gather_dict(branches, dict(PAYLOAD))
    assert result == {**PAYLOAD, **{f"p{i}": i for i in range(k)}}


@pytest.mark.parametrize("peer", PEERS, ids=IDS)
@pytest.mark.parametrize("handler", [return_at_once, suspend_once])
async def test_each_peer_can_be_called_again(peer: Peer, handler: AsyncHandler) -> None:
    """Built once, called per call: the second call must not see the first one's state."""
    _needs(peer)
    fan_out = peer.build([("a", handler), ("b", handler)])
    assert fan_out is not None

    first = await fan_out({"n": 1})
    second = await fan_out({"n": 2})

    assert first == {"n": 1, "a": 1, "b": 1}
    assert second == {"n": 2, "a": 1, "b": 1}


@pytest.mark.parametrize("peer", PEERS, ids=IDS)
def test_a_peer_that_is_not_installed_builds_nothing(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def without_peers(name: str, package: str | None = None) -> ModuleType:
        if name.startswith(("langchain_core", "langgraph", "workflows", "cxlang.bench.llama")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_peers)

    assert peer.build([("a", return_at_once)]) is None
