"""Errors of the distributed bus that its users can cause and fix."""

from __future__ import annotations

__all__ = ["BusUnavailable", "NotPortable"]


class BusUnavailable(RuntimeError):  # noqa: N818 - a state, like RuntimeClosed
    """The NATS server cannot be reached or lacks what the run needs (JetStream)."""


class NotPortable(TypeError):  # noqa: N818 - reads as "payload not portable"
    """An event or a result cannot cross to another process (not JSON, or a bad name)."""

    message_is_complete = True  # shown as is in ``_errors`` (see Failure.from_exception)
