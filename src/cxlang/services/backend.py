"""The interface every model backend implements.

Methods are coroutines so a backend can wait on the network without blocking the loop, and so a
branch that times out or is cancelled cancels its request too (cancellation propagates into the
awaiting coroutine). ``stream`` yields text as it arrives.

A call with ``schema:`` or ``tools:`` is a conversation of turns (:mod:`.tools` runs it): each
turn the backend is given the conversation so far (:class:`Turn`) and answers with text or
with tool calls (:class:`Reply`); the tools' results and any correction ("that answer did not
fit the schema") go back in the next turn. The data here is the backends' common vocabulary
for it; each renders it in its own API's words.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Backend", "BackendError", "BackendUnavailableError", "Correction", "Entry",
           "PieceSink", "Reply", "ServiceRequest", "Tool", "ToolCall", "ToolResult", "Turn",
           "plain_data", "wire_names"]


class BackendError(Exception):
    """A model call failed in a way the program should hear about: the message says what to do.

    The service turns it into its error event (``thinking.error``...) with this message.
    """


class BackendUnavailableError(BackendError):
    """The backend cannot be created at all: a missing extra, a missing model file, no model."""


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """What a service call asks of a model: the service's name, the call's properties and the
    memories (``learn``-ed texts) found relevant to it."""

    service: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    memories: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """The text the call is about: ``prompt``, else ``message``, else ``data``, else ``""``."""
        for key in ("prompt", "message", "data", "text"):
            value = self.properties.get(key)
            if value is not None:
                return value if isinstance(value, str) else _as_text(value)
        return ""

    def text(self, key: str) -> str | None:
        """Property *key* as text (objects as JSON), ``None`` when the call does not set it."""
        value = self.properties.get(key)
        if value is None:
            return None
        return value if isinstance(value, str) else _as_text(value)


@dataclass(frozen=True, slots=True)
class Tool:
    """An event whose handlers the model may call: its name, what it is for, and the JSON
    Schema of its arguments (the event's payload)."""

    event: str
    description: str | None
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the model asked for: the API's id for the call, the tool's event name (or the
    name the model gave, when it is no tool's), the arguments as sent (``text``) and as read
    (``arguments``), and ``problem`` when they could not be read as a JSON object."""

    id: str
    name: str
    arguments: Any
    text: str
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One model turn: its text, and the tool calls it asks for (none: it has answered)."""

    text: str
    calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool call gave, as JSON text for the model."""

    call: ToolCall
    content: str


@dataclass(frozen=True, slots=True)
class Correction:
    """Words to the model after an answer that did not fit the schema."""

    text: str


Entry = Reply | ToolResult | Correction


@dataclass(frozen=True, slots=True)
class Turn:
    """What a model turn is given besides the call itself: the tools it may call, the schema
    its answer must fit, and the conversation since the call's prompt."""

    tools: tuple[Tool, ...] = ()
    schema: Mapping[str, Any] | None = None
    transcript: tuple[Entry, ...] = ()


PieceSink = Callable[[str], Awaitable[None]]
"""Where a streamed turn's text goes, piece by piece, as it arrives."""


class Backend(Protocol):
    """A model behind the services. ``name`` is what ``--backend`` selects."""

    name: str

    async def complete(self, request: ServiceRequest) -> str:
        """Text for ``think``, ``generate``, ``infer``, ``adapt``."""
        ...

    def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        """The text ``complete`` (or, for the ``chat`` service, ``chat``) gives, in pieces as
        they are produced."""
        ...

    async def chat(self, request: ServiceRequest) -> str:
        """A reply for ``chat``."""
        ...

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        """One turn of a call with ``schema:`` or ``tools:``; with *pieces*, the text is
        streamed there as it arrives (``stream: true``)."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors for ``learn`` (and memory look-ups)."""
        ...

    async def classify(self, request: ServiceRequest) -> bool:
        """Does the condition hold? For ``is`` / ``not``."""
        ...

    async def aclose(self) -> None:
        """Release connections and models."""
        ...


def _as_text(value: Any) -> str:
    """A property that is no string, as the model reads it: JSON, an entity as its properties
    (as ``print`` writes it)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=plain_data)
    except (ValueError, RecursionError):
        # json's own words (a circular reference, Python's digit limit) mean nothing to a
        # CX program; the call fails with its error event, saying what to change.
        raise BackendError("a property of the call cannot be written as text for the model: "
                           "it contains itself, is nested too deeply or holds a number too "
                           "long to write; pass a simpler value") from None


def plain_data(value: Any) -> Any:
    """What JSON writes for a value it does not know: a value of the language above (a CX
    entity) offers its plain data through ``as_data()`` - the services cannot import the
    compiler, so they ask by name; anything else is written as its text."""
    as_data = getattr(value, "as_data", None)
    return as_data() if callable(as_data) else str(value)


_WIRE_NAME = re.compile(r"[^a-zA-Z0-9_-]")
WIRE_NAME_LENGTH = 64  # OpenAI's limit for a function's name; llama-cpp-python's too


def wire_names(events: Iterable[str]) -> dict[str, str]:
    """A function name per tool event, as APIs in OpenAI's style take them (letters, digits,
    ``_`` and ``-``, at most 64): ``weather.lookup`` is ``weather__lookup``. The mapping is
    wire name -> event, so a call's name reads back to its event; two events that would
    share a name (``a.b`` and ``a__b``) get ``_2``, ``_3``... instead of colliding."""
    names: dict[str, str] = {}
    for event in events:
        base = _WIRE_NAME.sub("_", event.replace(".", "__"))[:WIRE_NAME_LENGTH]
        name, number = base, 1
        while name in names:
            number += 1
            suffix = f"_{number}"
            name = base[:WIRE_NAME_LENGTH - len(suffix)] + suffix
        names[name] = event
    return names
