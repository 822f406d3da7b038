"""The runtime: event bus, parallel handler coordinator, task pool and execution context.

It knows nothing of CX syntax; the library API (``cxlang.Runtime``) is all of it.
"""

from .bus import SYSTEM_ERROR, EventBus
from .context import ExecutionContext, check_cancelled, current_context, waiting
from .coordinator import BranchStream, ParallelHandlerCoordinator
from .errors import HandlerParameterError, ProcessHandlerError, QueueFull, RuntimeClosed
from .events import Event, EventPattern
from .handlers import HandlerKind, Subscription
from .limits import LimitExceeded
from .mapper import PayloadPropertyMapper
from .outcomes import BranchOutcome, BranchTiming, Failure, FailureKind, ParallelExecutionResult
from .pool import HandlerPool
from .resolver import HandlerParameterResolver, HandlerParameters
from .retry import Retry
from .runtime import Runtime

__all__ = [
    "SYSTEM_ERROR",
    "BranchOutcome",
    "BranchStream",
    "BranchTiming",
    "Event",
    "EventBus",
    "EventPattern",
    "ExecutionContext",
    "Failure",
    "FailureKind",
    "HandlerKind",
    "HandlerParameterError",
    "HandlerParameterResolver",
    "HandlerParameters",
    "HandlerPool",
    "LimitExceeded",
    "ParallelExecutionResult",
    "ParallelHandlerCoordinator",
    "PayloadPropertyMapper",
    "ProcessHandlerError",
    "QueueFull",
    "Retry",
    "Runtime",
    "RuntimeClosed",
    "Subscription",
    "check_cancelled",
    "current_context",
    "waiting",
]
