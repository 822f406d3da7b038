"""Which services exist, which events each emits, and which backends can serve them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .backend import Backend, BackendUnavailableError
from .cache import CachedBackend
from .config import BackendSettings
from .local import LocalBackend
from .recording import Recorder, Replayer

__all__ = [
    "ACTING",
    "BACKENDS",
    "SERVICES",
    "BackendInfo",
    "ServiceSpec",
    "backend_names",
    "create_backend",
    "service_for_event",
]

ServiceKind = Literal["complete", "chat", "learn", "condition", "timer", "execute"]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service: what it asks of the backend and the events it emits by default.

    ``completion`` is emitted when a call lists no ``handlers``; ``error`` when the backend
    fails or a parallel handler parameter fails. ``None``: the service emits no such event
    (``is``/``not``/``iam`` fire only the handlers they list).
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
        # Upstream's self-reflective condition: asked and answered as `is` is.
        ServiceSpec("iam", "condition", None, "iam.error"),
        ServiceSpec("await", "timer", "await.complete", None),
        ServiceSpec("execute", "execute", "execute.complete", "execute.error"),
    )
}

ACTING: tuple[str, ...] = tuple(name for name, spec in SERVICES.items()
                                if spec.kind in ("complete", "chat"))
"""The services whose model may answer to a ``schema:`` and call ``tools:``."""


def service_for_event(name: str) -> str | None:
    """``emit ai.generate {...}`` is the ``generate`` service: the service an event stands for."""
    prefix, _, service = name.partition(".")
    spec = SERVICES.get(service) if prefix == "ai" else None
    if spec is not None and spec.kind in ("complete", "chat", "learn"):
        return service
    return None


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """A backend ``--backend`` can name: what it is, and how to make one from the settings."""

    name: str
    summary: str
    create: Callable[[BackendSettings, float], Backend]


def _local(settings: BackendSettings, latency: float) -> Backend:
    return LocalBackend(latency)


# The real backends import their libraries (httpx, llama_cpp) only when chosen, so `cx run`
# on the default backend starts no slower and works without the optional extra.
def _openai(settings: BackendSettings, latency: float) -> Backend:
    from .openai import OpenAIBackend  # noqa: PLC0415

    return OpenAIBackend(settings)


def _llama(settings: BackendSettings, latency: float) -> Backend:
    from .llama import LlamaBackend  # noqa: PLC0415

    return LlamaBackend(settings)


BACKENDS: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo("local", "built in, deterministic answers derived from the call "
                    "(the default; --latency simulates a model's delay)", _local),
        BackendInfo("openai", "any OpenAI-compatible HTTP server: OpenAI, Ollama, "
                    "llama.cpp's server, vLLM, LM Studio", _openai),
        BackendInfo("llama", "a GGUF model in process through llama-cpp-python "
                    "(extra cxlang[local])", _llama),
    )
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def create_backend(
    name: str, *, latency: float = 0.0, settings: BackendSettings | None = None,
    record: str | Path | None = None, replay: str | Path | None = None,
    cache: str | Path | None = None,
) -> Backend:
    """The backend called *name*, configured by *settings* (model, server, limits);
    ``latency`` (seconds) applies to the embedded one. Raises ``BackendUnavailableError`` saying
    what to install or set when it cannot be made.

    *record*: every call and its answer is written to this file (:mod:`.recording`);
    *replay*: every call is answered from such a file, and the backend is never made (nor
    asked); *cache*: identical calls are answered from this directory across runs
    (:mod:`.cache`). A replay takes neither of the other two."""
    try:
        info = BACKENDS[name]
    except KeyError:
        known = ", ".join(backend_names())
        raise BackendUnavailableError(f"unknown backend {name!r}; available: {known}") from None
    if replay is not None:
        if record is not None or cache is not None:
            raise BackendUnavailableError("a replay asks no model, so it neither records nor "
                                          "caches: leave out --record and --cache")
        return Replayer(replay, name)
    settings = settings or BackendSettings(backend=name)
    backend = info.create(settings, latency)
    if cache is not None:
        backend = CachedBackend(backend, cache, settings.model)
    if record is not None:
        backend = Recorder(backend, record, settings.model)
    return backend
