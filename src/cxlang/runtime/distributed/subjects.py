"""Event names as NATS subjects, and the subjects cxlang keeps for itself.

CX event names map one to one onto subjects: the event ``analytics.complete`` is the subject
``analytics.complete``, and a pattern's ``any`` segment is NATS's ``*`` (which CX also accepts).
What cxlang sends for its own purposes lives under ``_CX.``; subjects that start with ``_`` or
``$`` (cxlang's own, NATS's reply inboxes and its system subjects) are never taken for events,
even by a pattern such as ``any.any.any`` that would match them.

A process's calls and announcements are on subjects that name its group and member id
(``_CX.call.<group>.<member>``, ``_CX.presence.<group>.<member>``), so that the NATS server's
permissions can reserve them to the processes of that group (docs/security.md).
"""

from __future__ import annotations

import re

from ..events import WILDCARDS

__all__ = [
    "CALLS",
    "DURABLE",
    "PRESENCE",
    "PRESENCE_ALL",
    "PRESENCE_QUERY",
    "STREAM",
    "call_subject",
    "check_group",
    "is_event_subject",
    "is_local",
    "pattern_subject",
    "portable_name",
    "presence_subject",
]

CALLS = "_CX.call."  # + group.member: calls of that member's handlers
PRESENCE = "_CX.presence"  # + .group.member: who serves which patterns, said by that member
PRESENCE_ALL = "_CX.presence.*.*"  # every member's announcements
PRESENCE_QUERY = "_CX.presence.query"  # "everyone, announce yourself again"
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


def call_subject(group: str, member: str) -> str:
    """Where *member* of *group* takes its calls: ``_CX.call.<group>.<member>``."""
    return f"{CALLS}{group}.{member}"


def presence_subject(group: str, member: str) -> str:
    return f"{PRESENCE}.{group}.{member}"


def check_group(group: str) -> str:
    if not _GROUP.fullmatch(group):
        raise ValueError(f"invalid group {group!r}: use letters, digits, '-' and '_' only")
    return group
