"""What a parallel call gives back: per-branch outcomes and the consolidated result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = ["BranchOutcome", "BranchTiming", "Failure", "FailureKind", "ParallelExecutionResult",
           "describe"]

FailureKind = Literal["error", "timeout", "no_handler", "cancelled"]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a branch has no result.

    ``error``: a handler raised; ``timeout``: it did not finish in time (and was cancelled);
    ``no_handler``: nothing is subscribed to the event; ``cancelled``: a sibling failed under
    ``fail_fast`` or the call itself was cancelled before the branch finished.

    ``attempts``: how many times the handler ran, when a :class:`~.retry.Retry` applied to it
    (``None`` otherwise), so that a failure after retries is told from a first one.
    """

    kind: FailureKind
    message: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    attempts: int | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        """``"ValueError: boom"``; just ``"boom"`` for exception classes that set
        ``message_is_complete = True`` (errors of the CX language read better that way)."""
        text = describe(exc)
        if getattr(exc, "message_is_complete", False):
            return cls("error", text, exc)
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return cls("error", message, exc)

    def to_payload(self) -> dict[str, str | int]:
        """The ``_errors.{name}`` entry of a consolidated payload (``attempts`` too, under a
        retry policy)."""
        if self.attempts is None:
            return {"type": self.kind, "message": self.message}
        return {"type": self.kind, "message": self.message, "attempts": self.attempts}


def describe(exc: BaseException) -> str:
    """``str(exc)``, or what can be said of an exception whose ``__str__`` itself fails (a
    failure report must never fail: it would leave its call waiting for ever)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message cannot be shown: its __str__ raised>"


class BranchTiming(NamedTuple):
    """When a branch started and finished, on the :func:`time.monotonic` clock."""

    started: float
    finished: float

    @property
    def duration(self) -> float:
        return self.finished - self.started


class BranchOutcome:
    """The end of one branch (one handler parameter): its value or its failure.

    ``attempts`` is how many times it ran: more than 1 when a :class:`~.retry.Retry` ran it
    again (with several handlers, the most runs any of them took).

    A slotted class rather than a dataclass because one is made per branch on the hot path.
    """

    __slots__ = ("attempts", "failure", "finished", "name", "started", "value")

    def __init__(
        self, name: str, value: Any, failure: Failure | None, started: float, finished: float,
        attempts: int = 1,
    ) -> None:
        self.name = name
        self.value = value
        self.failure = failure
        self.started = started
        self.finished = finished
        self.attempts = attempts

    @property
    def ok(self) -> bool:
        return self.failure is None

    def __repr__(self) -> str:
        shown = f"failure={self.failure!r}" if self.failure else f"value={self.value!r}"
        return f"BranchOutcome({self.name!r}, {shown})"


class ParallelExecutionResult:
    """The consolidated result of one parallel call.

    ``payload`` is what handlers of the completion event see: the source payload plus every
    parameter's result under its name (``None`` for a failure, explained in ``_errors``).
    """

    __slots__ = ("execution_id", "outcomes", "payload")

    def __init__(
        self, execution_id: str, payload: dict[str, Any], outcomes: tuple[BranchOutcome, ...]
    ) -> None:
        self.execution_id = execution_id
        self.payload = payload
        self.outcomes = outcomes

    @property
    def results(self) -> dict[str, Any]:
        """Each successful parameter's value, in declaration order."""
        return {o.name: o.value for o in self.outcomes if o.failure is None}

    @property
    def failures(self) -> dict[str, Failure]:
        """Each failed parameter's :class:`Failure`, in declaration order."""
        return {o.name: o.failure for o in self.outcomes if o.failure is not None}

    @property
    def timings(self) -> dict[str, BranchTiming]:
        return {o.name: BranchTiming(o.started, o.finished) for o in self.outcomes}

    @property
    def has_partial_failures(self) -> bool:
        return any(o.failure is not None for o in self.outcomes)

    @property
    def failed_names(self) -> list[str]:
        return [o.name for o in self.outcomes if o.failure is not None]

    def __repr__(self) -> str:
        return f"ParallelExecutionResult(payload={self.payload!r}, failures={self.failures!r})"
