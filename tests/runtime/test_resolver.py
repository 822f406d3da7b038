"""How a library call's parameters are refused: what was passed, and why it cannot work."""

from __future__ import annotations

import re

import pytest

import cxlang
from cxlang.runtime import HandlerParameterResolver
from cxlang.runtime import resolver as resolver_module
from cxlang.runtime.events import EventPattern


async def test_errors_is_refused_as_a_parameter_name(rt: cxlang.Runtime) -> None:
    rt.on("a.b", lambda event: 1, inline=True)
    with pytest.raises(cxlang.HandlerParameterError) as caught:
        await rt.parallel({"_errors": "a.b"})
    assert str(caught.value) == (
        "handler parameter '_errors' is reserved: the consolidated payload keeps the failures "
        "of a call's parameters under '_errors'; give the parameter another name")
    with pytest.raises(cxlang.HandlerParameterError, match="reserved"):
        rt.as_completed([("ok", "a.b"), ("_errors", "a.b")])


async def test_a_string_is_not_taken_for_parameters(rt: cxlang.Runtime) -> None:
    with pytest.raises(cxlang.HandlerParameterError) as caught:
        await rt.parallel("a.b")  # type: ignore[arg-type]
    assert str(caught.value) == ('parameters must map names to event names, like '
                                 '{"result": "a.b"}; got the string \'a.b\'')


@pytest.mark.parametrize("spec", [b"a.b", 5, None])
def test_other_things_that_are_no_parameters_say_what_is_expected(spec: object) -> None:
    with pytest.raises(cxlang.HandlerParameterError,
                       match=re.escape('like {"result": "a.b"}; got ' + repr(spec))):
        HandlerParameterResolver().resolve(spec)  # type: ignore[arg-type]


def test_a_call_larger_than_the_check_cache_is_checked_in_full_only_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cache of names seen valid grows with the largest call: a call of 12,000 parameters
    # (more than the 10,000 it starts with) is not checked name by name on every call.
    made: list[str] = []

    class CountingPattern(EventPattern):
        def __init__(self, text: str) -> None:
            made.append(text)
            super().__init__(text)

    monkeypatch.setattr(resolver_module, "EventPattern", CountingPattern)
    spec = {f"p{i}": f"cache.size.e{i}" for i in range(12_000)}
    resolver = HandlerParameterResolver()
    first = resolver.resolve(spec)
    checked_first = len(made)
    again = resolver.resolve(spec)
    assert list(again.items()) == list(first.items()) == list(spec.items())
    assert checked_first == 12_000
    assert len(made) == checked_first  # the second call met every name in the cache
