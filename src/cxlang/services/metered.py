"""A backend whose every call is counted into the run's :class:`.usage.UsageMeter`, and
refused once the run's token budget is spent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TypeVar

from ..runtime.observe import current_span
from .backend import Backend, BackendError, PieceSink, Reply, ServiceRequest, Turn
from .usage import Usage, UsageMeter, tallied, tallying

__all__ = ["MeteredBackend"]

T = TypeVar("T")


class MeteredBackend:
    """*inner*, metered by *meter*; ``hint`` is how the budget is raised, in the caller's
    terms (``--token-budget`` for ``cx run``)."""

    def __init__(self, inner: Backend, meter: UsageMeter, hint: str = "token_budget=...") -> None:
        self.inner = inner
        self.meter = meter
        self.hint = hint
        self.name = inner.name

    async def complete(self, request: ServiceRequest) -> str:
        return await self._metered(lambda: self.inner.complete(request))

    async def chat(self, request: ServiceRequest) -> str:
        return await self._metered(lambda: self.inner.chat(request))

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        self._check_budget()
        tally: list[Usage] = []
        try:
            async with aclosing(tallied(self.inner.stream(request), tally)) as pieces:
                async for piece in pieces:  # closed when the caller stops early
                    yield piece
        finally:
            self._count(tally)

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        return await self._metered(lambda: self.inner.act(request, turn, pieces))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._metered(lambda: self.inner.embed(texts))

    async def classify(self, request: ServiceRequest) -> bool:
        return await self._metered(lambda: self.inner.classify(request))

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _metered(self, call: Callable[[], Awaitable[T]]) -> T:
        self._check_budget()
        with tallying() as tally:
            try:
                return await call()
            finally:
                self._count(tally)

    def _check_budget(self) -> None:
        if self.meter.exhausted:
            raise BackendError(f"the run's token budget of {self.meter.budget} tokens is "
                               f"spent, so no more model calls start; raise it with "
                               f"{self.hint}")

    def _count(self, tally: list[Usage]) -> None:
        """Into the meter, and onto the service span the call runs in (traced runs)."""
        for usage in tally:
            self.meter.add(usage)
        span = current_span()
        if tally and span is not None and span.kind == "service":
            attrs = span.attrs
            attrs["model"] = tally[-1].model
            for usage in tally:
                attrs["input_tokens"] = attrs.get("input_tokens", 0) + usage.input_tokens
                attrs["output_tokens"] = attrs.get("output_tokens", 0) + usage.output_tokens
