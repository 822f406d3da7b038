"""Property tests: pattern matching, the payload mapper, the parameter resolver."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxlang.runtime import (
    BranchOutcome,
    EventPattern,
    Failure,
    HandlerParameterError,
    HandlerParameterResolver,
    PayloadPropertyMapper,
)

segment = st.text(alphabet="abcxyz_", min_size=1, max_size=4).filter(lambda s: s != "any")
names = st.lists(segment, min_size=1, max_size=4)


@given(names, st.data())
def test_a_pattern_matches_a_name_iff_each_segment_matches(
    name: list[str], data: st.DataObject
) -> None:
    pattern = [data.draw(st.sampled_from([s, "any", "x"])) for s in name]
    expected = all(p in ("any", n) for p, n in zip(pattern, name, strict=True))
    assert EventPattern(".".join(pattern)).matches(".".join(name)) == expected


@given(names, names)
def test_patterns_never_match_names_of_another_length(a: list[str], b: list[str]) -> None:
    if len(a) != len(b):
        wild = ".".join("any" for _ in a)
        assert not EventPattern(wild).matches(".".join(b))


@pytest.mark.parametrize("bad", ["", ".", "a.", ".a", "a..b"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid event pattern"):
        EventPattern(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                               max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(st.text(max_size=4), json_values, max_size=5),
    st.lists(st.tuples(st.text(min_size=1, max_size=4), json_values, st.booleans()),
             max_size=6, unique_by=lambda t: t[0]),
)
def test_mapper_properties(source: dict[str, Any], branches: list[tuple[str, Any, bool]]) -> None:
    snapshot = dict(source)
    outcomes = [
        BranchOutcome(name, None if failed else value,
                      Failure("error", "boom") if failed else None, 0.0, 1.0)
        for name, value, failed in branches
    ]
    payload = PayloadPropertyMapper().consolidate(source, outcomes)
    assert source == snapshot, "the source payload is never mutated"
    for name, value, failed in branches:
        assert payload[name] == (None if failed else value)
    failed_names = [name for name, _, failed in branches if failed]
    if failed_names:
        assert list(payload["_errors"]) == failed_names
        assert all(e == {"type": "error", "message": "boom"} for e in payload["_errors"].values())
    else:
        assert "_errors" not in payload or "_errors" in source
    for key, value in source.items():
        if key not in {name for name, _, _ in branches} | {"_errors"}:
            assert payload[key] == value
    new_keys = [k for k in payload if k not in source and k != "_errors"]
    assert new_keys == [n for n, _, _ in branches if n not in source]


def test_resolver_keeps_declaration_order_and_rejects_mistakes() -> None:
    resolver = HandlerParameterResolver()
    params = resolver.resolve({"b": "x.done", "a": "y.done"})
    assert params.pairs == (("b", "x.done"), ("a", "y.done"))
    assert resolver.resolve([("a", "x.y")]).names == ("a",)
    with pytest.raises(HandlerParameterError, match="named twice"):
        resolver.resolve([("a", "x.y"), ("a", "z.w")])
    with pytest.raises(HandlerParameterError, match="empty event"):
        resolver.resolve({"a": ""})
    with pytest.raises(HandlerParameterError, match="needs a name"):
        resolver.resolve({"": "x.y"})
    with pytest.raises(HandlerParameterError, match="wildcards"):
        resolver.resolve({"a": "x.any"})
    with pytest.raises(HandlerParameterError, match="pair of strings"):
        resolver.resolve([("a", 1)])  # type: ignore[list-item]


event_names = names.map(".".join)


@given(st.dictionaries(segment, event_names, min_size=1, max_size=5), st.data())
def test_resolver_keeps_any_valid_mapping_and_always_refuses_errors_as_a_name(
    spec: dict[str, str], data: st.DataObject
) -> None:
    resolver = HandlerParameterResolver()
    for _ in range(2):  # the second time the names are known: the quick path must agree
        assert resolver.resolve(spec).pairs == tuple(spec.items())
    items = list(spec.items())
    items.insert(data.draw(st.integers(0, len(items))), ("_errors", items[0][1]))
    with pytest.raises(HandlerParameterError, match="'_errors' is reserved"):
        resolver.resolve(dict(items))
