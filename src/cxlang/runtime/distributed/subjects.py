"""Event names as NATS subjects, and the subjects cxlang keeps for itself.

CX event names map one to one onto subjects: the event ``analytics.complete`` is the subject
``analytics.complete``, and a pattern's ``any`` segment is NATS's ``*`` (which CX also accepts).
What cxlang sends for its own purposes lives under ``_CX.``; subjects that start with ``_`` or
``$`` (cxlang's own, NATS's reply inboxes and its system subjects) are never taken for events,
even by a pattern such as ``any.any.any`` that would match them.
"""

from __future__ import annotations

import re

from ..events import WILDCARDS

__all__ = [
    "CALLS",
    "DURABLE",
    "PRESENCE",
    "PRESENCE_QUERY",
    "STREAM",
    "call_subject",
    "check_group",
    "is_event_subject",
    "is_local",
    "pattern_subject",
    "portable_name",
]

CALLS = "_CX.call."  # + group + "." + event name: a call of one handler of that group
PRESENCE = "_CX.presence"  # who serves which patterns
PRESENCE_QUERY = "_CX.presence.query"  # "everyone, say who you are" (answered to the inbox)
DURABLE = "_CX.event."  # + event name: the subjects of the JetStream stream
STREAM = "CX_EVENTS"

_GROUP = re.compile(r"[A-Za-z0-9_-]+")
_SEGMENT = re.compile(r"[^\s.*>]+")
_portable: set[str] = set()  # names already found valid (the same few names, over and over)


def pattern_subject(pattern: str) -> str:
    """``user.any.created`` -> ``user.*.created``."""
    return ".".join("*" if s in WILDCARDS else s for s in pattern.split("."))


def is_local(name: str) -> bool:
    """``system.*`` events (start, error, console, shutdown) belong to their own process."""
    return name.startswith("system.")


def is_event_subject(subject: str) -> bool:
    return not subject.startswith(("_", "$"))


def portable_name(name: str) -> bool:
    """Whether *name* can be a subject: dotted, no blanks, no wildcards, not reserved."""
    if name in _portable:
        return True
    ok = is_event_subject(name) and all(_SEGMENT.fullmatch(s) for s in name.split("."))
    if ok and len(_portable) < 10_000:
        _portable.add(name)
    return ok


def call_subject(group: str, name: str) -> str:
    return f"{CALLS}{group}.{name}"


def check_group(group: str) -> str:
    if not _GROUP.fullmatch(group):
        raise ValueError(f"invalid group {group!r}: use letters, digits, '-' and '_' only")
    return group
