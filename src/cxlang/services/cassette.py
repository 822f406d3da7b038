"""The one way model calls and their answers are written down, for ``--record``/``--replay``
(:mod:`.recording`) and ``--cache`` (:mod:`.cache`).

A call is its backend method and what it was given (the request, the turn of a model that
acts, the texts to embed), as JSON; :func:`call_key` is that JSON with sorted keys, the same
text for the same call in every run. An answer is the method's value as JSON; a streamed
answer (``stream``, or ``act`` with a piece sink) also keeps its pieces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .backend import (
    Correction,
    Entry,
    Reply,
    ServiceRequest,
    ToolCall,
    ToolResult,
    Turn,
    plain_data,
)

__all__ = ["Call", "call_data", "call_key", "describe_call", "read_reply", "written_reply"]

Call = dict[str, Any]
"""``{"method": ..., "request": ..., "turn": ..., "texts": ...}`` (what the method takes)."""


def call_data(method: str, request: ServiceRequest | None = None, turn: Turn | None = None,
              texts: list[str] | None = None) -> Call:
    """The call as JSON data. Through JSON once, so that a recorded call and a live one
    compare equal (entities as their data, tuples as lists)."""
    call: Call = {"method": method}
    if request is not None:
        call["request"] = {"service": request.service, "properties": dict(request.properties),
                           "memories": list(request.memories)}
    if turn is not None:
        call["turn"] = {"tools": [{"event": t.event, "description": t.description,
                                   "parameters": t.parameters} for t in turn.tools],
                        "schema": turn.schema,
                        "transcript": [_entry(e) for e in turn.transcript]}
    if texts is not None:
        call["texts"] = texts
    plain: Call = json.loads(call_key(call))
    return plain


def call_key(call: Call) -> str:
    return json.dumps(call, sort_keys=True, ensure_ascii=False, default=plain_data)


def describe_call(call: Call, length: int = 240) -> str:
    """A call as a person reads it in an error message: its service and properties."""
    request = call.get("request")
    if isinstance(request, Mapping):
        what = f"{request.get('service')} " + json.dumps(request.get("properties"),
                                                         ensure_ascii=False, sort_keys=True)
        if call.get("turn") is not None:
            what += f" (a turn after {len(call['turn'].get('transcript', []))} entries)"
    else:
        what = f"{call.get('method')} of {json.dumps(call.get('texts'), ensure_ascii=False)}"
    return what if len(what) <= length else what[:length - 3] + "..."


def written_reply(reply: Reply) -> dict[str, Any]:
    return {"text": reply.text, "calls": [_call(c) for c in reply.calls]}


def read_reply(data: Mapping[str, Any]) -> Reply:
    return Reply(data["text"], tuple(_tool_call(c) for c in data["calls"]))


def _call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments, "text": call.text,
            "problem": call.problem}


def _tool_call(data: Mapping[str, Any]) -> ToolCall:
    return ToolCall(data["id"], data["name"], data["arguments"], data["text"], data["problem"])


def _entry(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, Reply):
        return {"reply": written_reply(entry)}
    if isinstance(entry, ToolResult):
        return {"result": {"call": _call(entry.call), "content": entry.content}}
    assert isinstance(entry, Correction)
    return {"correction": entry.text}

