"""The ``local.llm.*`` events, as upstream CX's local LLM service answered them, served by the
run's backend (the one ``--backend`` chose: the model is the run's, not the event's).

- ``local.llm.load { modelPath }``: ``local.llm.model.loaded { modelPath, modelName,
  backend, success }``; failing, ``local.llm.model.load.error``;
- ``local.llm.generate { prompt }``: ``local.llm.text.generated { prompt, response }``;
  failing, ``local.llm.text.generation.error``;
- ``local.llm.stream { prompt }``: ``local.llm.stream.start { prompt }``, a
  ``local.llm.token { token, index }`` per piece, then ``local.llm.stream.complete { prompt,
  response }``; failing, ``local.llm.stream.error``.

``load`` loads nothing: the run's backend already answers, so it says which one. ``generate``
and ``stream`` read the request as ``generate`` does (``prompt``, ``system``, ``maxTokens``,
``temperature``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .backend import Backend, BackendError, ServiceRequest
from .controls import check_controls, shown
from .event_routes import Emit, Route

__all__ = ["local_llm_routes"]


def local_llm_routes(backend: Backend) -> dict[str, Route]:
    """The ``local.llm.*`` routes on *backend*."""
    model = _Model(backend)
    return {
        "local.llm.load": Route(model.load, "local.llm.model.load.error"),
        "local.llm.generate": Route(model.generate, "local.llm.text.generation.error"),
        "local.llm.stream": Route(model.stream, "local.llm.stream.error"),
    }


class _Model:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def load(self, payload: Mapping[str, Any], emit: Emit) -> tuple[str, dict[str, Any]]:
        path = payload.get("modelPath")
        name = PurePath(path).name if isinstance(path, str) and path else self.backend.name
        return "local.llm.model.loaded", {"modelPath": path, "modelName": name,
                                          "backend": self.backend.name, "success": True}

    async def generate(self, payload: Mapping[str, Any],
                       emit: Emit) -> tuple[str, dict[str, Any]]:
        request = _request(payload)
        response = await self.backend.complete(request)
        return "local.llm.text.generated", {"prompt": request.prompt, "response": response}

    async def stream(self, payload: Mapping[str, Any], emit: Emit) -> tuple[str, dict[str, Any]]:
        request = _request(payload)
        await emit("local.llm.stream.start", {"prompt": request.prompt})
        pieces: list[str] = []
        async for piece in self.backend.stream(request):
            await emit("local.llm.token", {"token": piece, "index": len(pieces)})
            pieces.append(piece)
        return "local.llm.stream.complete", {"prompt": request.prompt,
                                             "response": "".join(pieces)}


def _request(payload: Mapping[str, Any]) -> ServiceRequest:
    prompt = payload.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BackendError(f"prompt: must be a non-empty text, got {shown(prompt)}")
    properties = {k: v for k, v in payload.items() if k != "handlers"}
    check_controls(properties)
    return ServiceRequest("generate", properties)
