"""The optional LangChain baseline: ``RunnableParallel`` over the same async handlers.

langchain-core is not a dependency of cxlang (only of its ``bench`` extra), so it is imported
lazily and by name: without it the report says "not installed" instead of failing, and mypy
needs no stubs for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from .baselines import Branches

__all__ = ["NAME", "NOT_INSTALLED", "Invokable", "installed_version", "runnable_parallel"]

NAME = "RunnableParallel.ainvoke"
NOT_INSTALLED = "not installed"


class Invokable(Protocol):
    def ainvoke(self, payload: dict[str, Any], /) -> Awaitable[Any]: ...


def installed_version() -> str | None:
    try:
        return version("langchain-core")
    except PackageNotFoundError:
        return None


def runnable_parallel(branches: Branches) -> Invokable | None:
    """``RunnableParallel(name=RunnableLambda(handler), ...)``, or ``None`` without langchain."""
    try:
        runnables = importlib.import_module("langchain_core.runnables")
    except ImportError:
        return None
    parallel: Invokable = runnables.RunnableParallel(
        **{name: runnables.RunnableLambda(handler) for name, handler in branches}
    )
    return parallel
