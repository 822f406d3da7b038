"""cxlang: parallel handler parameters for Python, and the CX language that compiles to them.

The public surface is deliberately small; everything else lives in the subpackages.
"""

from ._version import __version__
from .runtime import (
    BranchOutcome,
    Event,
    ExecutionContext,
    Failure,
    HandlerParameterError,
    LimitExceeded,
    ParallelExecutionResult,
    ProcessHandlerError,
    QueueFull,
    Retry,
    Runtime,
    RuntimeClosed,
    Subscription,
    check_cancelled,
    current_context,
)
from .services import BackendError, Services

__all__ = [
    "BackendError",
    "BranchOutcome",
    "Event",
    "ExecutionContext",
    "Failure",
    "HandlerParameterError",
    "LimitExceeded",
    "ParallelExecutionResult",
    "ProcessHandlerError",
    "QueueFull",
    "Retry",
    "Runtime",
    "RuntimeClosed",
    "Services",
    "Subscription",
    "__version__",
    "check_cancelled",
    "current_context",
]
