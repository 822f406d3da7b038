"""The interface every model backend implements.

Methods are coroutines so a backend can wait on the network without blocking the loop, and so a
branch that times out or is cancelled cancels its request too (cancellation propagates into the
awaiting coroutine). ``stream`` yields text as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Backend", "BackendError", "BackendUnavailableError", "ServiceRequest",
           "plain_data"]


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
