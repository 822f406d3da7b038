"""Who serves what: the other processes on the bus and the patterns of their handlers.

Every process announces its group and the patterns of its handlers, in subscription order,
when it connects and whenever they change, and says when it leaves; it answers a query with the
same announcement. From that a caller knows, without a round trip, which groups serve an event
and with how many handlers each: that is how many results to wait for.

A process killed without a word stays listed. That is harmless while its group has a live
member (NATS routes calls to live subscribers only); when none is left, a call gets "no
responders" at once and the caller forgets the group (:meth:`Directory.forget_group`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import EventPattern

__all__ = ["Announcement", "Directory"]


@dataclass(frozen=True, slots=True)
class Announcement:
    member: str
    group: str
    patterns: tuple[str, ...]


class Directory:
    """The latest announcement of every other process, and what serves an event."""

    def __init__(self, own_group: str) -> None:
        self.own_group = own_group
        self._members: dict[str, tuple[str, tuple[EventPattern, ...]]] = {}
        self._servers: dict[str, tuple[tuple[str, int], ...]] = {}
        self.version = 0  # bumped on every change, so users can drop what they derived

    def announce(self, announcement: Announcement) -> None:
        # Re-inserted at the end: the latest announcement of a group is its last member's.
        self._members.pop(announcement.member, None)
        self._members[announcement.member] = (
            announcement.group, tuple(EventPattern(p) for p in announcement.patterns))
        self._changed()

    def leave(self, member: str) -> None:
        if self._members.pop(member, None) is not None:
            self._changed()

    def forget_group(self, group: str) -> None:
        for member in [m for m, (g, _) in self._members.items() if g == group]:
            del self._members[member]
        self._changed()

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def servers(self, name: str) -> tuple[tuple[str, int], ...]:
        """``(group, handlers)`` for every other group that handles *name*, by group name."""
        found = self._servers.get(name)
        if found is None:
            latest: dict[str, tuple[EventPattern, ...]] = {}
            for group, patterns in self._members.values():
                if group != self.own_group:
                    latest[group] = patterns
            counts = {g: sum(p.matches(name) for p in ps) for g, ps in latest.items()}
            found = self._servers[name] = tuple(sorted((g, n) for g, n in counts.items() if n))
        return found

    def _changed(self) -> None:
        self._servers.clear()
        self.version += 1
