"""Faults at the stages of a parallel call the other suites leave out.

Covered elsewhere, and not repeated here (docs/reliability.md lists them all):
exceptions, timeouts, cancellation mid-branch and fail-fast in tests/runtime/test_coordinator.py;
backend faults (5xx, 429, dropped connections, a timed-out branch cancelling its request) in
tests/services/test_services_on_models.py; a NATS worker killed mid-call and the server
restarted in tests/distributed/test_processes.py. Here: cancellation *before* branches start,
and faults *during the consolidated emit* of a service call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cxlang import Event, Runtime
from cxlang.runtime.resolver import HandlerParameterResolver
from cxlang.services import ServiceInvoker, create_backend

WAIT = 10.0  # every wait in this file is bounded


async def test_cancelling_before_the_branches_start_runs_none_of_them() -> None:
    async with Runtime() as runtime:
        started: list[str] = []
        gate = asyncio.Event()

        def branch(name: str) -> Any:
            async def handler(event: Event) -> str:
                started.append(name)
                await gate.wait()
                return name
            return handler

        for name in ("a", "b", "c"):
            runtime.on(f"stage.{name}", branch(name))
        call = asyncio.ensure_future(runtime.parallel(
            {n: f"stage.{n}" for n in ("a", "b", "c")}, max_concurrency=1))
        await asyncio.wait_for(_until(lambda: started == ["a"]), WAIT)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, WAIT)
        assert started == ["a"], "b and c were waiting for a slot and must never start"
        gate.set()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.001)


async def _service_call(runtime: Runtime, completions: list[tuple[str, None]]) -> Any:
    invoker = ServiceInvoker(runtime, create_backend("local"))
    parameters = HandlerParameterResolver().resolve({"score": "stage.score"})
    return await invoker.call("think", {"prompt": "p"}, parameters, completions)


async def test_cancelling_during_the_consolidated_emit_cancels_the_completion_handlers() -> None:
    async with Runtime() as runtime:
        runtime.on("stage.score", lambda event: 7, inline=True)
        entered = asyncio.Event()
        outcome: list[str] = []

        @runtime.on("stage.done")
        async def done(event: Event) -> None:
            entered.set()
            try:
                await asyncio.sleep(WAIT * 10)
            except asyncio.CancelledError:
                outcome.append(f"cancelled with score {event.payload['score']}")
                raise

        call = asyncio.ensure_future(_service_call(runtime, [("stage.done", None)]))
        await asyncio.wait_for(entered.wait(), WAIT)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, WAIT)
        assert outcome == ["cancelled with score 7"], "the handler ended before the call did"


async def test_a_completion_handler_failing_leaves_the_others_and_the_result() -> None:
    async with Runtime() as runtime:
        runtime.on("stage.score", lambda event: 7, inline=True)
        received: list[Any] = []
        errors: list[dict[str, Any]] = []

        def broken(event: Event) -> None:
            raise ValueError("completion handler broke")

        runtime.on("stage.done", broken, inline=True)
        runtime.on("stage.also", lambda event: received.append(event.payload["score"]),
                   inline=True)
        runtime.on("system.error", lambda event: errors.append(event.payload), inline=True)
        payload = await asyncio.wait_for(
            _service_call(runtime, [("stage.done", None), ("stage.also", None)]), WAIT)
        await asyncio.wait_for(runtime.run_until_idle(), WAIT)
        assert payload["score"] == 7
        assert received == [7]
        assert [(e["event"], e["error"]) for e in errors] == \
            [("stage.done", "completion handler broke")]


async def test_a_branch_that_fails_before_its_first_await_is_captured_like_any_other() -> None:
    async with Runtime() as runtime:
        def at_once(event: Event) -> None:
            raise RuntimeError("failed while starting")

        async def later(event: Event) -> int:
            await asyncio.sleep(0)
            return 1

        runtime.on("stage.now", at_once, inline=True)
        runtime.on("stage.later", later)
        result = await asyncio.wait_for(
            runtime.parallel({"now": "stage.now", "later": "stage.later"}), WAIT)
        assert result.payload["later"] == 1
        assert result.payload["now"] is None
        assert result.payload["_errors"]["now"]["type"] == "error"
