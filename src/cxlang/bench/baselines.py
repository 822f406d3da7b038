"""What a programmer would write instead of ``rt.parallel``: by hand, or with a framework.

Each returns what a parallel call's ``.payload`` holds (the source payload plus every branch's
result under its name), so the comparison is between equal work: building the consolidated
payload is part of the job, not an extra that only cxlang pays for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from ..runtime import Runtime
from .workloads import AsyncHandler

__all__ = ["GATHER", "NOT_INSTALLED", "SEQUENTIAL", "TASKGROUP", "Branches", "FanOut", "Peer",
           "check_same_result", "gather_dict", "installed_version", "payload_of",
           "sequential_dict", "taskgroup_dict"]

T = TypeVar("T")

Branches = Sequence[tuple[str, AsyncHandler]]

FanOut = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""One keyed fan-out with its join: the source payload in, the consolidated payload out."""

GATHER = "gather+dict"
TASKGROUP = "TaskGroup+timeout"
SEQUENTIAL = "sequential"
NOT_INSTALLED = "not installed"


@dataclass(frozen=True, slots=True)
class Peer:
    """A framework people pick for keyed fan-out, written as its own docs teach it.

    Peers are not dependencies of cxlang (only of its ``bench`` extra): each is imported lazily
    and by name, so without it ``build`` returns ``None``, the report says "not installed"
    instead of failing, and mypy needs no stubs for it.
    """

    name: str  # the row label; it names the form when the framework teaches several
    distribution: str  # the package, whose version the report's header shows
    build: Callable[[Branches], FanOut | None]  # set up once per scenario, called per call


def installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


async def gather_dict(branches: Branches, payload: dict[str, Any]) -> dict[str, Any]:
    """``asyncio.gather``: the floor for running coroutines at once, with none of the guarantees."""
    values = await asyncio.gather(*[handler(payload) for _, handler in branches])
    result = dict(payload)
    result.update(zip([name for name, _ in branches], values, strict=True))
    return result


async def taskgroup_dict(
    branches: Branches, payload: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """``TaskGroup`` with a timeout per branch: the nearest stdlib has to cxlang's semantics.

    (It still lacks keyed partial failures: one failing branch cancels the others.)
    """
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_within(timeout, handler(payload))) for _, handler in branches]
    result = dict(payload)
    result.update((name, task.result()) for (name, _), task in zip(branches, tasks, strict=True))
    return result


async def sequential_dict(branches: Branches, payload: dict[str, Any]) -> dict[str, Any]:
    """One branch after the other: what parallel handler parameters are meant to beat."""
    result = dict(payload)
    for name, handler in branches:
        result[name] = await handler(payload)
    return result


async def _within(timeout: float, awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(timeout):
        return await awaitable


def payload_of(rt: Runtime, parameters: dict[str, str]) -> FanOut:
    """A parallel call as a :data:`FanOut`: its consolidated payload (failures in ``_errors``)."""

    async def call(payload: dict[str, Any]) -> dict[str, Any]:
        return (await rt.parallel(parameters, payload)).payload

    return call


async def check_same_result(
    contenders: Mapping[str, FanOut], branches: Branches, payload: dict[str, Any]
) -> None:
    """Refuse to time contenders that do not do the same work as gather."""
    expected = await gather_dict(branches, payload)
    for name, fan_out in contenders.items():
        result = await fan_out(payload)
        if result != expected:
            raise RuntimeError(f"{name} and gather disagree: {result!r} vs {expected!r}")
