"""Who serves what: the other processes on the bus and the patterns of their handlers.

Every process announces its group and the patterns of its handlers, in subscription order, on
its own subject, when it connects and whenever they change, and says there when it leaves; it
announces itself again when asked. From that a caller knows, without a round trip, which
groups serve an event, with how many handlers each (that is how many results to wait for), and
which members to call for each.

A process killed without a word stays listed until a call to it gets "no responders" (nobody
subscribes to its call subject any more): then the caller forgets it (:meth:`Directory.leave`)
and calls another member of its group.
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
        # event name -> group -> (member, its handlers of the event), members in arrival order
        self._serving: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self.version = 0  # bumped on every change, so users can drop what they derived

    def announce(self, announcement: Announcement) -> None:
        self._members[announcement.member] = (
            announcement.group, tuple(EventPattern(p) for p in announcement.patterns))
        self._changed()

    def leave(self, member: str) -> None:
        if self._members.pop(member, None) is not None:
            self._changed()

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def servers(self, name: str) -> tuple[tuple[str, int], ...]:
        """``(group, handlers)`` for every other group that handles *name*, by group name;
        *handlers* is the most that any of its members serves."""
        return tuple(sorted((group, max(n for _, n in members))
                            for group, members in self._of(name).items()))

    def serving(self, name: str, group: str, index: int) -> tuple[str, ...]:
        """The members of *group* that serve a handler number *index* of *name*."""
        return tuple(member for member, n in self._of(name).get(group, ()) if n > index)

    def _of(self, name: str) -> dict[str, list[tuple[str, int]]]:
        found = self._serving.get(name)
        if found is None:
            found = self._serving[name] = {}
            for member, (group, patterns) in self._members.items():
                count = sum(p.matches(name) for p in patterns)
                if count and group != self.own_group:
                    found.setdefault(group, []).append((member, count))
        return found

    def _changed(self) -> None:
        self._serving.clear()
        self.version += 1
