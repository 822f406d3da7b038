"""The embedded ``local`` backend: deterministic, no network, answers derived from the call.

Examples and tests need stable output, and a demo needs to show parallel speed-up without a
model: ``latency`` makes every call take that long (a real ``asyncio.sleep``, so calls overlap
exactly as network calls would).

A condition (``is``, ``not``, ``iam``) is answered, first rule that applies:

1. ``condition:`` on the call, else ``condition`` in its ``data``: its CX truthiness;
2. no question at all (no ``evaluate``, ``context`` or ``data``): it holds;
3. else a hash of the question (those three) and of how many times this run asked exactly it
   before: it holds when SHA-256 of that text starts with an even byte. The same program
   gets the same answers on every run, and a question asked over and over (a handler that
   asks again whenever the answer is yes) is answered yes about half the time, so such a
   loop ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping

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
        self._asked: Counter[str] = Counter()  # questions without a condition, by their text

    async def _wait(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    async def complete(self, request: ServiceRequest) -> str:
        await self._wait()
        return f"{_VERBS.get(request.service, 'Answered')}: {request.prompt}"

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        words = (await self.complete(request)).split(" ")
        for word in words[:-1]:
            yield word + " "
        yield words[-1]  # the pieces make up what complete() answers, to the character

    async def chat(self, request: ServiceRequest) -> str:
        return await self.complete(ServiceRequest("chat", request.properties))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        await self._wait()
        return [_hash_vector(text) for text in texts]

    async def classify(self, request: ServiceRequest) -> bool:
        await self._wait()
        properties = request.properties
        data = properties.get("data")
        if "condition" in properties:
            return _truthy(properties["condition"])
        if isinstance(data, Mapping) and "condition" in data:
            return _truthy(data["condition"])
        question = [request.text(key) for key in _QUESTION]
        if all(part is None for part in question):
            return True
        text = json.dumps(question, ensure_ascii=False)
        asked = self._asked[text]
        self._asked[text] += 1
        return hashlib.sha256(f"{text}#{asked}".encode()).digest()[0] % 2 == 0

    async def aclose(self) -> None:
        return None


_QUESTION = ("evaluate", "context", "data")


def _hash_vector(text: str, size: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:size]]


def _truthy(value: object) -> bool:
    # CX truthiness: null, false, 0 and "" are false; everything else, [] and {} included, true.
    return not (value is None or value is False or value in (0, ""))
