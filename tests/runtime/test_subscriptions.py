"""Which subscriptions an event name reaches: in subscription order, found without a scan."""

from __future__ import annotations

import pytest

from cxlang import Runtime
from cxlang.runtime.events import EventPattern


def _noop(_: object) -> None:
    return None


async def test_exact_and_wildcard_subscriptions_run_in_subscription_order() -> None:
    async with Runtime() as rt:
        order = [
            rt.on("order.any", _noop, inline=True),
            rt.on("order.placed", _noop, inline=True),
            rt.on("any.placed", _noop, inline=True),
            rt.on("order.placed", _noop, inline=True),
            rt.on("order.shipped", _noop, inline=True),
        ]
        reached = rt.bus.handlers_for("order.placed")
        assert reached == (order[0], order[1], order[2], order[3])
        order[1].cancel()
        order[0].cancel()
        assert rt.bus.handlers_for("order.placed") == (order[2], order[3])
        assert rt.bus.handlers_for("order.shipped") == (order[4],)
        assert rt.bus.handlers_for("order.lost") == ()
        late = rt.on("order.placed", _noop, inline=True)
        assert rt.bus.handlers_for("order.placed") == (order[2], order[3], late)


async def test_names_are_found_without_matching_every_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A parallel call of K new names used to match every pattern for each: quadratic in K.
    matched: list[str] = []
    matches = EventPattern.matches

    def counting(self: EventPattern, name: str) -> bool:
        matched.append(self.text)
        return matches(self, name)

    monkeypatch.setattr(EventPattern, "matches", counting)
    async with Runtime() as rt:
        parameters = {f"p{i}": f"fan.out{i}" for i in range(2_000)}
        for event in parameters.values():
            rt.on(event, _noop, inline=True)
        rt.on("fan.any", _noop, inline=True)
        result = await rt.parallel(parameters, {})
    assert not result.failures
    assert set(matched) == {"fan.any"}  # only the wildcard pattern is ever matched
    assert len(matched) == len(parameters)
