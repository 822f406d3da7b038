"""The embedded ``local`` backend: deterministic, no network, answers derived from the call.

Examples and tests need stable output, and a demo needs to show parallel speed-up without a
model: ``latency`` makes every call take that long (a real ``asyncio.sleep``, so calls overlap
exactly as network calls would).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from .backend import ServiceRequest

__all__ = ["LocalBackend"]

_VERBS = {
    "think": "Thought about",
    "generate": "Generated",
    "infer": "Inferred from",
    "adapt": "Adapted to",
    "chat": "Reply to",
}


class LocalBackend:
    """Deterministic stand-in for a model; see the module docstring."""

    name = "local"

    def __init__(self, latency: float = 0.0) -> None:
        if latency < 0:
            raise ValueError(f"latency must not be negative, got {latency}")
        self.latency = latency

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def complete(self, request: ServiceRequest) -> str:
        await self._wait()
        return f"{_VERBS.get(request.service, 'Answered')}: {request.prompt}"

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        text = await self.complete(request)
        for word in text.split(" "):
            yield word + " "

    async def chat(self, request: ServiceRequest) -> str:
        return await self.complete(ServiceRequest("chat", request.properties))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        await self._wait()
        return [_hash_vector(text) for text in texts]

    async def classify(self, request: ServiceRequest) -> bool:
        await self._wait()
        if "condition" not in request.properties:
            return True
        return _truthy(request.properties["condition"])

    async def aclose(self) -> None:
        return None


def _hash_vector(text: str, size: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:size]]


def _truthy(value: object) -> bool:
    # CX truthiness: null, false, 0 and "" are false; everything else, [] and {} included, true.
    return not (value is None or value is False or value in (0, ""))
