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

A model that acts (``schema:``, ``tools:``) is as predictable: its first turn calls every tool
once, with arguments built from the tool's parameters (``"example"`` for text, 1 for numbers,
true; :func:`.schema.example_of`), and its next answers with its usual text followed by what
each tool gave; an answer with a schema is the object :func:`.schema.example_of` builds.

Usage (``cx run --stats``, ``--token-budget``) counts words as tokens, under the model name
``local:local``: the input is the call's prompt and the memories given with it (the texts, for
``learn``), the output the answer (a condition's answer is one word).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping

from .backend import PieceSink, Reply, ServiceRequest, ToolCall, ToolResult, Turn
from .schema import example_of
from .usage import Usage, report_usage

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
        text = f"{_VERBS.get(request.service, 'Answered')}: {request.prompt}"
        _used(_asked(request), text)
        return text

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        for piece in _pieces(await self.complete(request)):
            yield piece

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        results = [entry for entry in turn.transcript if isinstance(entry, ToolResult)]
        if turn.tools and not results:
            await self._wait()
            calls = tuple(_call(number, tool.event, example_of(tool.parameters))
                          for number, tool in enumerate(turn.tools, 1))
            _used(_asked(request), " ".join(call.text for call in calls))
            return Reply("", calls)
        if turn.schema is not None:
            await self._wait()
            text = json.dumps(example_of(turn.schema), ensure_ascii=False)
            _used(_asked(request), text)
        else:
            text = await self.complete(request)
            if results:
                text += " (tools: " + "; ".join(
                    f"{result.call.name} gave {result.content}" for result in results) + ")"
        if pieces is not None:
            for piece in _pieces(text):
                await pieces(piece)
        return Reply(text)

    async def chat(self, request: ServiceRequest) -> str:
        return await self.complete(ServiceRequest("chat", request.properties))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        await self._wait()
        _used(" ".join(texts), "")
        return [_hash_vector(text) for text in texts]

    async def classify(self, request: ServiceRequest) -> bool:
        await self._wait()
        _used(" ".join(filter(None, (request.text(key) for key in _QUESTION))), "yes")
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


def _asked(request: ServiceRequest) -> str:
    return " ".join((request.prompt, *request.memories))


def _used(asked: str, answer: str) -> None:
    report_usage(Usage("local:local", len(asked.split()), len(answer.split())))


def _pieces(text: str) -> list[str]:
    """*text* a word at a time, as a stream brings it: the pieces make it up to the
    character."""
    words = text.split(" ")
    return [word + " " for word in words[:-1]] + [words[-1]]


def _call(number: int, event: str, arguments: object) -> ToolCall:
    return ToolCall(f"call_{number}", event, arguments, json.dumps(arguments))


def _hash_vector(text: str, size: int = 16) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:size]]


def _truthy(value: object) -> bool:
    # CX truthiness: null, false, 0 and "" are false; everything else, [] and {} included, true.
    return not (value is None or value is False or value in (0, ""))
