"""The bus's subscriptions, and which of them an event name reaches.

Which subscriptions a name reaches is asked once per name (then cached until the subscriptions
change), but a parallel call of K parameters asks it for K new names at once. Scanning every
subscription for each name made that first call quadratic: about 8 s at K=10,000. Patterns
without a wildcard are therefore indexed by their text, and only wildcard patterns are
scanned; the two are merged back into subscription order, which is the order handlers run in.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

from .handlers import Subscription

__all__ = ["SubscriptionTable"]


class SubscriptionTable:
    """Subscriptions in subscription order, looked up by event name."""

    __slots__ = ("_exact", "_order", "_sequence", "_wildcards", "reached")

    def __init__(self) -> None:
        self._order: dict[Subscription, int] = {}  # insertion-ordered: subscription order
        self._sequence = count()
        self._exact: dict[str, list[Subscription]] = {}
        self._wildcards: list[Subscription] = []
        # What each name reached when it was last asked; the bus's drain reads it directly.
        self.reached: dict[str, tuple[Subscription, ...]] = {}

    def add(self, sub: Subscription) -> None:
        self._order[sub] = next(self._sequence)
        if sub.pattern.has_wildcard:
            self._wildcards.append(sub)
        else:
            self._exact.setdefault(sub.pattern.text, []).append(sub)
        self.reached.clear()

    def remove(self, sub: Subscription) -> None:
        del self._order[sub]
        if sub.pattern.has_wildcard:
            self._wildcards.remove(sub)
        else:
            same = self._exact[sub.pattern.text]
            same.remove(sub)
            if not same:
                del self._exact[sub.pattern.text]
        self.reached.clear()

    def __iter__(self) -> Iterator[Subscription]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def reaching(self, name: str) -> tuple[Subscription, ...]:
        """The subscriptions an event called *name* reaches, in subscription order, worked out
        and kept in :attr:`reached`, where callers look first."""
        exact = self._exact.get(name, ())
        wild = [s for s in self._wildcards if s.pattern.matches(name)]
        if not wild:
            subs = tuple(exact)
        elif not exact:
            subs = tuple(wild)
        else:
            subs = tuple(sorted((*exact, *wild), key=self._order.__getitem__))
        self.reached[name] = subs
        return subs
