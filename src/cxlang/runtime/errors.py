"""Errors the runtime raises to its callers (handler faults are captured, never raised)."""

from __future__ import annotations

__all__ = ["HandlerParameterError", "ProcessHandlerError", "QueueFull", "RuntimeClosed"]


class QueueFull(RuntimeError):  # noqa: N818 - named like asyncio.QueueFull, which users know
    """The event queue is at its bound and the caller cannot wait for room."""


class HandlerParameterError(ValueError):
    """A parallel call named its handler parameters wrongly (duplicate name, empty event, ...)."""


class ProcessHandlerError(RuntimeError):
    """A ``cpu_bound`` handler, its event or its result could not cross to a worker process."""


class RuntimeClosed(RuntimeError):  # noqa: N818 - a state, like asyncio's InvalidStateError
    """The runtime was closed; it accepts no more work."""
