"""The LlamaIndex Workflows peer, in both fan-out forms its docs teach (see
:mod:`.llamaindex_workflows` for the workflows themselves).

Each workflow is built once per scenario and ``run`` per call, with the runtime's default
timeout; the source payload is merged into its result after, as :func:`~.baselines.gather_dict`
does.
"""

from __future__ import annotations

import importlib
from typing import Any

from .baselines import Branches, FanOut, Peer

__all__ = ["LIST", "SEND_EVENT"]

TIMEOUT = 30.0  # seconds: the runtime's default per-handler timeout


def send_event_form(branches: Branches) -> FanOut | None:
    return _fan_out(branches, "send_event")


def list_form(branches: Branches) -> FanOut | None:
    return _fan_out(branches, "list")


def _fan_out(branches: Branches, form: str) -> FanOut | None:
    try:
        # Imported by name: it imports the optional llama-index-workflows at its top.
        flows = importlib.import_module(f"{__package__}.llamaindex_workflows")
    except ImportError:
        return None
    run = flows.workflow_classes(branches)[form](timeout=TIMEOUT).run

    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, **await run(payload=payload)}

    return call


SEND_EVENT = Peer("LlamaIndex send_event+collect_events", "llama-index-workflows",
                  send_event_form)
LIST = Peer("LlamaIndex list[E] fan-out", "llama-index-workflows", list_form)
