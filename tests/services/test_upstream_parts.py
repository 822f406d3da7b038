"""The parts behind upstream CX's services, one by one: the memory's records, the await rule,
the range check, the local backend's conditions, execute's refusal and the served events'
``handlers`` entries."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from cxlang.runtime import Runtime
from cxlang.services import LocalBackend, Memory, ServiceRequest
from cxlang.services.controls import ControlValueError, check_controls, range_error
from cxlang.services.execute import ExecuteError, run_command
from cxlang.services.registry import SERVICES, service_for_event
from cxlang.services.served_events import ServedEvents, ServedFailure, unserved_family
from cxlang.services.timer import await_duration


def test_iam_and_execute_are_services() -> None:
    assert SERVICES["iam"].kind == "condition"
    assert SERVICES["iam"].error == "iam.error"
    assert (SERVICES["execute"].completion, SERVICES["execute"].error) == \
        ("execute.complete", "execute.error")
    assert service_for_event("ai.generate") == "generate"
    assert service_for_event("ai.execute") is None
    assert service_for_event("ai.iam") is None


def test_memory_records_have_ids_metadata_and_can_be_removed() -> None:
    memory = Memory()
    tea = memory.add("tea", [1.0, 0.0], {"kind": "drink"})
    named = memory.add("cake", [0.0, 1.0], record_id="c")
    assert (tea.id, named.id) == ("memory-1", "c")
    assert memory.ids() == ["memory-1", "c"]
    ((found, score),) = memory.search([1.0, 0.1], 1)
    assert found is tea and 0.99 < score <= 1.0
    memory.add("pie", [0.0, 1.0], record_id="c")  # the same id: replaced
    assert len(memory) == 2
    assert memory.get("c") is not None and memory.get("c").text == "pie"  # type: ignore[union-attr]
    assert memory.remove("c") and not memory.remove("c")
    assert memory.clear() == 1 and len(memory) == 0


@pytest.mark.parametrize(("properties", "wait"), [
    ({"durationMs": 30}, 30),
    ({"minDurationMs": 100, "maxDurationMs": 300}, 200),
    ({"minDurationMs": 1, "maxDurationMs": 2}, 1.5),
    ({"minDurationMs": 40}, 40),
    ({"maxDurationMs": 40}, 40),
    ({"durationMs": 5, "minDurationMs": 10, "maxDurationMs": 20}, 5),
    ({}, 0),
])
def test_await_waits_the_middle_of_its_range(properties: dict[str, Any], wait: float) -> None:
    assert await_duration(properties) == wait


def test_an_await_range_must_not_end_before_it_starts() -> None:
    assert range_error(10, 10) is None
    assert range_error(None, 5) is None
    assert range_error(10, 5) == "maxDurationMs must be at least minDurationMs (10), got 5"
    with pytest.raises(ControlValueError, match="minDurationMs must be a number"):
        check_controls({"minDurationMs": "soon"})
    with pytest.raises(ControlValueError, match="at least minDurationMs"):
        check_controls({"minDurationMs": 10, "maxDurationMs": 5})


async def test_the_local_backend_answers_conditions_by_rule() -> None:
    backend = LocalBackend()

    async def holds(**properties: Any) -> bool:
        return await backend.classify(ServiceRequest("is", properties))

    assert await holds(condition=0, evaluate="x") is False
    assert await holds(data={"condition": "yes"}) is True
    assert await holds(data={"condition": None}, evaluate="x") is False
    assert await holds() is True  # no question at all
    first = [await holds(evaluate="Go on?") for _ in range(40)]
    again = LocalBackend()
    assert [await again.classify(ServiceRequest("is", {"evaluate": "Go on?"}))
            for _ in range(40)] == first  # the same answers in every run
    assert True in first and False in first  # asked over and over, not always the same


async def test_execute_is_refused_unless_allowed() -> None:
    with pytest.raises(ExecuteError, match="--allow-execute"):
        await run_command({"command": "echo hi"}, allowed=False)
    result = await run_command({"command": sys.executable,
                                "arguments": ["-c", "print(1 + 1)"]}, allowed=True)
    assert result["output"].strip() == "2"
    assert (result["exitCode"], result["success"], result["error"]) == (0, True, "")


@pytest.mark.parametrize(("properties", "message"), [
    ({"command": 'say "unclosed'}, "cannot be split into words"),
    ({"command": "x", "arguments": "y"}, "arguments: must be a list"),
    ({"command": "x", "arguments": [True]}, "each argument must be a text or a number"),
    ({"command": "x", "workingDirectory": 3}, "workingDirectory: must be"),
])
async def test_execute_says_what_is_wrong_with_a_call(properties: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ExecuteError, match=message):
        await run_command(properties, allowed=True)


def test_unserved_families() -> None:
    assert unserved_family("realtime.session.create") == "realtime"
    assert unserved_family("voice.input") == "voice"
    assert unserved_family("vector.add.text") is None
    assert unserved_family("realtimeish") is None


async def test_served_events_go_to_their_handlers_entries() -> None:
    runtime = Runtime()
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in ("a.b", "c.d", "vector.count.failed"):
        runtime.on(name, lambda event: seen.append((event.name, dict(event.payload))))
    served = ServedEvents(runtime, Memory(), LocalBackend())
    failures: list[ServedFailure] = []
    route = served.route("vector.count")
    assert route is not None
    await served.serve("vector.count", {"handlers": ["a.b", {"c.d": {"x": 1}}]}, route,
                       failures.append)
    await served.serve("vector.count", {"handlers": [{"c.d": 2}]}, route, failures.append)
    await runtime.bus.run_until_idle()
    names = [(name, payload.get("count"), payload.get("x")) for name, payload in seen]
    assert names == [("a.b", 0, None), ("c.d", 0, 1), ("vector.count.failed", None, None)]
    (failure,) = failures
    assert failure.message == "the payload of c.d in handlers: must be an object, got 2"
    assert (failure.failed, failure.handled) == ("vector.count.failed", True)
    await runtime.aclose()
