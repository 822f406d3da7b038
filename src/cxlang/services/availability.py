"""``cx backends``: which backends can run here, and for those that cannot, why not.

Checks are cheap and touch nothing: the ``llama`` check looks for the extra and the model file
without loading it; the ``openai`` check asks the server for its model list once, briefly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .backend import BackendError
from .config import BackendSettings
from .registry import BACKENDS

__all__ = ["BackendStatus", "backend_statuses", "render_statuses"]


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    available: bool
    detail: str
    selected: bool


async def backend_statuses(settings: BackendSettings) -> list[BackendStatus]:
    checks = {"local": _local, "openai": _openai, "llama": _llama}
    statuses = []
    for name in BACKENDS:
        available, detail = await checks[name](settings)
        statuses.append(BackendStatus(name, available, detail, name == settings.backend))
    return statuses


def render_statuses(statuses: list[BackendStatus], settings: BackendSettings) -> str:
    width = max(len(s.name) for s in statuses)
    lines = []
    for status in statuses:
        mark = "*" if status.selected else " "
        state = "available  " if status.available else "unavailable"
        lines.append(f"{mark} {status.name:<{width}}  {state}  {status.detail}")
    lines.append(f"(* selected, from {settings.source}; choose with --backend NAME, CX_BACKEND "
                 "or backend = \"NAME\" in cx.toml)")
    return "\n".join(lines)


async def _local(settings: BackendSettings) -> tuple[bool, str]:
    return True, BACKENDS["local"].summary


async def _openai(settings: BackendSettings) -> tuple[bool, str]:
    from .openai import list_models  # noqa: PLC0415 - httpx only when asked

    try:
        models = await list_models(settings)
    except BackendError as exc:
        return False, str(exc)
    listed = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
    if not settings.model:
        return False, (f"{settings.base_url} answers, but no model is chosen: set --model or "
                       f"CX_MODEL (it lists: {listed or 'none'})")
    if models and not {settings.model, f"{settings.model}:latest"} & set(models):
        # Still usable: a server with one model (llama-cpp-python's) serves it by any name.
        return True, (f"{settings.base_url}, model {settings.model}: not listed by the server "
                      f"(it lists: {listed}); a server with one model may take any name, "
                      "others answer 404")
    return True, f"{settings.base_url}, model {settings.model}"


async def _llama(settings: BackendSettings) -> tuple[bool, str]:
    from .llama import MODEL_HINT, missing_extra  # noqa: PLC0415 - cheap, but optional

    reason = missing_extra()
    if reason is not None:
        return False, reason
    if not settings.model:
        return False, f"no model: give --model PATH to a .gguf file; {MODEL_HINT}"
    path = Path(settings.model).expanduser()
    if not path.is_file():
        return False, f"model {path} is not a file"
    return True, f"model {path}"
