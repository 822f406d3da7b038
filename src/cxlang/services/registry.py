"""Which services exist, which events each emits, and which backends can serve them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .backend import Backend
from .local import LocalBackend

__all__ = ["SERVICES", "ServiceSpec", "backend_names", "create_backend", "service_for_event"]

ServiceKind = Literal["complete", "chat", "learn", "condition", "timer"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service: what it asks of the backend and the events it emits by default.

    ``completion`` is emitted when a call lists no ``handlers``; ``error`` when the backend
    fails or a parallel handler parameter fails. ``None``: the service emits no such event
    (``is``/``not`` fire only the handlers they list).
    """

    name: str
    kind: ServiceKind
    completion: str | None
    error: str | None


SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("think", "complete", "thinking.complete", "thinking.error"),
        ServiceSpec("learn", "learn", "learning.complete", "learning.error"),
        ServiceSpec("infer", "complete", "inference.complete", "inference.error"),
        ServiceSpec("adapt", "complete", "adaptation.complete", "adaptation.error"),
        ServiceSpec("chat", "chat", "chat.complete", "chat.error"),
        ServiceSpec("generate", "complete", "ai.generated", "ai.generate.error"),
        ServiceSpec("is", "condition", None, "is.error"),
        ServiceSpec("not", "condition", None, "not.error"),
        ServiceSpec("await", "timer", "await.complete", None),
    )
}


def service_for_event(name: str) -> str | None:
    """``emit ai.generate {...}`` is the ``generate`` service: the service an event stands for."""
    prefix, _, service = name.partition(".")
    if prefix == "ai" and service in SERVICES and service not in ("is", "not", "await"):
        return service
    return None


_BACKENDS: dict[str, Callable[[float], Backend]] = {
    "local": LocalBackend,
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def create_backend(name: str, *, latency: float = 0.0) -> Backend:
    """The backend called *name*; ``latency`` (seconds) applies to the embedded one."""
    try:
        factory = _BACKENDS[name]
    except KeyError:
        known = ", ".join(backend_names())
        raise ValueError(f"unknown backend {name!r}; available: {known}") from None
    return factory(latency)
