"""The backend's small parts: retry schedule, Retry-After, SSE framing, memory, prompts."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from cxlang import Runtime
from cxlang.runtime.resolver import HandlerParameters
from cxlang.services import BackendError, Memory, ServiceInvoker, ServiceRequest
from cxlang.services.invoker import ServiceFailure
from cxlang.services.local import LocalBackend
from cxlang.services.prompts import (
    chat_messages,
    classify_messages,
    completion_prompt,
    parse_yes_no,
)
from cxlang.services.retry import RetryPolicy, parse_retry_after
from cxlang.services.sse import SseEvent, sse_events


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_doubles_within_jittered_windows_up_to_the_cap(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, rng=random.Random(attempt))
    window = min(8.0, 0.5 * 2 ** attempt)
    draws = [policy.delay(attempt) for _ in range(50)]
    assert all(window / 2 <= d <= window for d in draws)
    assert len(set(draws)) > 1  # jitter: clients that failed together retry apart


def test_retry_after_is_a_floor_for_the_backoff() -> None:
    policy = RetryPolicy(rng=random.Random(1))
    assert policy.delay(0, retry_after=5.0) == 5.0
    assert 0.25 <= policy.delay(0, retry_after=0.0) <= 0.5


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


def test_a_retry_policy_checks_its_numbers() -> None:
    with pytest.raises(ValueError, match="max_retries must be 0 or more"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="base_delay <= max_delay"):
        RetryPolicy(base_delay=10, max_delay=1)


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_sse_events() -> None:
    events = [e async for e in sse_events(lines(
        ": keep-alive", "", "data: one", "", "event: note\r\n", "data: two", "data:three",
        "", "data: {\"x\": 1}", "id: 7", "retry: 100", "", "data: tail"))]
    assert events == [SseEvent("one"), SseEvent("two\nthree", "note"), SseEvent('{"x": 1}'),
                      SseEvent("tail")]


def test_memory_recalls_the_most_similar_first() -> None:
    memory = Memory()
    memory.add("tea", [1.0, 0.0, 0.0])
    memory.add("coffee", [0.0, 1.0, 0.0])
    memory.add("green tea", [0.9, 0.1, 0.0])
    memory.add("empty", [0.0, 0.0, 0.0])
    assert len(memory) == 4
    assert memory.recall([1.0, 0.05, 0.0], 2) == ["tea", "green tea"]
    assert memory.recall([0.0, 2.0, 0.0], 1) == ["coffee"]
    assert memory.recall([1.0, 0.0, 0.0], 0) == []
    assert Memory().recall([1.0], 3) == []


def test_chat_messages_carry_memories_context_and_system() -> None:
    request = ServiceRequest("think", {"prompt": "What now?", "context": "Q3 went well",
                                       "system": "Be brief."}, ("sales rose", "costs fell"))
    system, user = chat_messages(request)
    assert system == {"role": "system", "content": "Be brief.\n\nThings learnt earlier (use "
                      "them where they help):\n- sales rose\n- costs fell"}
    assert user == {"role": "user", "content": "Context: Q3 went well\n\nWhat now?"}


def test_a_bad_history_says_how_it_should_look() -> None:
    with pytest.raises(BackendError, match=r'messages must be a list like \[\{ role: "user"'):
        chat_messages(ServiceRequest("chat", {"messages": [{"role": "user"}]}))


def test_completion_prompts_for_base_models() -> None:
    prompt, stop = completion_prompt(ServiceRequest("infer", {"prompt": "it rained"}))
    assert (prompt, stop) == ("Facts: it rained\nConclusion:", ["\n\n", "\nFacts:"])
    prompt, stop = completion_prompt(ServiceRequest("chat", {
        "message": "and you?", "messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"}]}))
    assert prompt == "User: hi\nAssistant: hello\nUser: and you?\nAssistant:"
    assert "\nUser:" in stop


HISTORY = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
           {"role": "assistant", "content": "hello"}, {"role": "user", "content": "2 + 2?"}]


def test_a_chat_without_a_prompt_answers_the_history_s_last_turn() -> None:
    prompt, _ = completion_prompt(ServiceRequest("chat", {"messages": HISTORY}))
    assert prompt == "User: hi\nAssistant: hello\nUser: 2 + 2?\nAssistant:"


@pytest.mark.parametrize("properties", [
    {"messages": HISTORY},
    {"messages": HISTORY, "message": "and 3 + 3?"},
    {"message": "hi"},
    {},
])
def test_completion_prompt_has_the_same_turns_as_chat_messages(
    properties: dict[str, object]
) -> None:
    """Both backends must read one call the same way: the turns match role for role."""
    request = ServiceRequest("chat", properties)
    prompt, _ = completion_prompt(request)
    turns = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
             for m in chat_messages(request) if m["role"] != "system"]
    assert prompt == "\n".join(turns) + "\nAssistant:"


@pytest.mark.parametrize(("text", "holds"), [
    ("yes", True), ("Yes.", True), ("**YES**", True), ("true", True),
    ("No", False), (" no, because", False), ("False", False),
])
def test_parse_yes_no(text: str, holds: bool) -> None:
    assert parse_yes_no(text) is holds


def test_an_answer_that_is_neither_is_an_error() -> None:
    with pytest.raises(BackendError, match="neither yes nor no"):
        parse_yes_no("Maybe")
    with pytest.raises(BackendError, match="needs evaluate:"):
        classify_messages(ServiceRequest("is", {}))


async def test_a_fault_inside_a_backend_is_said_as_cxlangs_without_python_names() -> None:
    class Broken(LocalBackend):
        async def complete(self, request: ServiceRequest) -> str:
            raise ValueError("an index went wrong")

    told: list[ServiceFailure] = []
    async with Runtime() as rt:
        invoker = ServiceInvoker(rt, Broken())
        value = await invoker.call("think", {"prompt": "p"}, HandlerParameters({}), [],
                                   told.append)
    assert value is None
    [failure] = told
    assert failure.message == ("the think service failed inside cxlang (an index went wrong); "
                               "this is a bug of cxlang's, please report it")
