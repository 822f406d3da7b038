"""Tokens the models of a run used, what they cost, and the run's token budget.

A backend says what each model request used with :func:`report_usage` (the server's
``usage``, llama-cpp-python's counts, the local backend's words); whoever wraps the call
(:class:`.metered.MeteredBackend`, the recorder) collects those reports with :func:`tallying`.
The reports travel in a context variable, so the :class:`.backend.Backend` protocol stays as
it is and a backend that reports nothing still works.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelUsage", "Price", "Usage", "UsageMeter", "report_usage", "tallied", "tallying"]


@dataclass(frozen=True, slots=True)
class Usage:
    """One model request: its model as ``<backend>:<model>``, its tokens; ``counted`` is false
    when the backend could not tell (a server that gives no usage), and the counts are 0."""

    model: str
    input_tokens: int
    output_tokens: int
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars (or any currency) per million tokens, as providers quote them."""

    input: float
    output: float


_tally: ContextVar[list[Usage] | None] = ContextVar("cx_usage_tally", default=None)


def report_usage(usage: Usage) -> None:
    """What a model request used, to whoever is tallying the call (nobody: it is dropped)."""
    tally = _tally.get()
    if tally is not None:
        tally.append(usage)


@contextmanager
def tallying() -> Iterator[list[Usage]]:
    """Collect the reports of the model requests made inside the block (they go here only,
    not to an outer tally)."""
    tally: list[Usage] = []
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


async def tallied(pieces: AsyncIterator[str], tally: list[Usage]) -> AsyncGenerator[str, None]:
    """*pieces*, with the reports made while each is produced going to *tally*. Set and reset
    around each step, never across a ``yield``: the consumer's context must not keep it."""
    try:
        while True:
            token = _tally.set(tally)
            try:
                piece = await anext(pieces)
            except StopAsyncIteration:
                return
            finally:
                _tally.reset(token)
            yield piece
    finally:
        if isinstance(pieces, AsyncGenerator):  # stopped early: so is the request
            await pieces.aclose()


@dataclass(slots=True)
class ModelUsage:
    """One model's calls and tokens in a run."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    uncounted: int = 0  # calls whose tokens the backend could not tell

    def cost(self, price: Price | None) -> float | None:
        if price is None:
            return None
        return (self.input_tokens * price.input + self.output_tokens * price.output) / 1e6


class UsageMeter:
    """The run's usage per model, priced by *prices* (keyed by model name, or by
    ``<backend>:<model>``); past *budget* tokens in all, *spent* is called once."""

    def __init__(self, prices: Mapping[str, Price] | None = None, budget: int | None = None,
                 spent: Callable[[int], None] | None = None) -> None:
        self.prices = dict(prices or {})
        self.budget = budget
        self.spent = spent
        self.models: dict[str, ModelUsage] = {}
        self.total = 0

    @property
    def exhausted(self) -> bool:
        return self.budget is not None and self.total >= self.budget

    def add(self, usage: Usage) -> None:
        was_exhausted = self.exhausted
        model = self.models.setdefault(usage.model, ModelUsage())
        model.calls += 1
        model.input_tokens += usage.input_tokens
        model.output_tokens += usage.output_tokens
        model.uncounted += not usage.counted
        self.total += usage.input_tokens + usage.output_tokens
        if self.exhausted and not was_exhausted and self.spent is not None:
            self.spent(self.total)

    def price(self, key: str) -> Price | None:
        return self.prices.get(key) or self.prices.get(key.partition(":")[2])

    def as_data(self) -> dict[str, dict[str, Any]]:
        """``{"<backend>:<model>": {calls, input_tokens, output_tokens, cost}}``."""
        return {key: {"calls": model.calls, "input_tokens": model.input_tokens,
                      "output_tokens": model.output_tokens,
                      "cost": model.cost(self.price(key))}
                for key, model in sorted(self.models.items())}

    def lines(self) -> list[str]:
        """A line per model, for ``cx run --stats``."""
        lines = []
        for key, model in sorted(self.models.items()):
            cost = model.cost(self.price(key))
            priced = "no price set" if cost is None else f"cost {cost:.8f}"
            unknown = f"; tokens of {model.uncounted} unknown (the server gave no usage)" \
                if model.uncounted else ""
            lines.append(f"{key}: {model.calls} call{'s' * (model.calls != 1)}, "
                         f"{model.input_tokens} input tokens, {model.output_tokens} output "
                         f"tokens, {priced}{unknown}")
        return lines
