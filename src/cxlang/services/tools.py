"""A model that acts: the turns of a call with ``schema:`` or ``tools:``.

Each turn the model answers with text or asks for tools. A tool is an event: its handlers are
the tool, the model's arguments the event's payload, the handler's result what the model
reads next turn. Every tool call of one turn runs at once, each as a parallel call of the
runtime under the call's ``timeout:`` (per handler), ``maxConcurrency:`` (tool calls running
at once) and ``failFast:``, so a tool gets what any parallel handler gets: isolation, a
deadline, its context and its trace. A tool that fails or times out answers the model
``{ "error": ... }``; the others keep their results. The loop ends with the model's answer,
or with an error after ``maxSteps:`` turns (default 8) that still asked for tools.

With ``schema:`` the answer is read as JSON and must fit (:mod:`.schema`); one that does not
is asked for again with what did not fit, ``schemaRetries:`` times (default 1), then the
call fails quoting it. The result is the answer (text, or the object that fits) and, when the
call has tools, the record of its tool calls in order, ``[{ name, arguments, result,
error? }]``, for the call's events.

Why a parallel call per tool call rather than one per turn: the runtime's parallel call gives
every branch the same payload, and each tool call has arguments of its own. The turn's cap and
fail-fast are kept here across them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator

from ..runtime import Runtime
from .backend import (
    BackendError,
    Correction,
    Entry,
    Reply,
    Tool,
    ToolCall,
    ToolResult,
    Turn,
    plain_data,
)
from .controls import ControlValueError, shown
from .schema import ShapeError, checker, fit, json_schema, parse_answer

__all__ = ["DEFAULT_MAX_STEPS", "DEFAULT_SCHEMA_RETRIES", "Acted", "Acting", "tools_of"]

DEFAULT_MAX_STEPS = 8  # model turns: enough for a few rounds of tools, a bound on a loop
DEFAULT_SCHEMA_RETRIES = 1  # a second chance helps a model that slipped; more rarely do
TOOL_KEYS = ("event", "description", "parameters")
NO_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}

AskModel = Callable[[Turn], Awaitable[Reply]]
"""One model turn, as the invoker asks it (within the call's timeout, traced)."""


@dataclass(frozen=True, slots=True)
class Acted:
    """What the model gave: the answer, and its tool calls (``None``: it had no tools)."""

    result: Any
    tool_calls: list[dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class Acting:
    """What a call asks of the model beyond text, read from its properties."""

    tools: tuple[Tool, ...]
    schema: Mapping[str, Any] | None
    max_steps: int
    schema_retries: int
    timeout: float | None  # seconds, each tool call's handlers (None: the runtime's default)
    max_concurrency: int | None
    fail_fast: bool
    checks: Mapping[str | None, Validator]  # by tool event; None: the answer's schema

    @classmethod
    def of(cls, properties: Mapping[str, Any],
           max_concurrency: int | None = None) -> Acting | None:
        """The call's ``schema:`` and ``tools:``; ``None`` when it has neither (plain text).
        Raises :class:`ControlValueError` for a schema or tool list that cannot be one: a
        mistake of the program's, as a wrong control value is. The controls themselves were
        checked already (:func:`.controls.check_controls`)."""
        shape, listed = properties.get("schema"), properties.get("tools")
        if shape is None and listed is None:
            return None
        try:
            schema = None if shape is None else json_schema(shape)
        except ShapeError as exc:
            raise ControlValueError(str(exc)) from None
        timeout = properties.get("timeout")
        max_steps = properties.get("maxSteps")
        retries = properties.get("schemaRetries")
        tools = tools_of(listed)
        checks: dict[str | None, Validator] = {t.event: checker(t.parameters) for t in tools}
        if schema is not None:
            checks[None] = checker(schema)
        return cls(
            tools=tools,
            schema=schema,
            max_steps=DEFAULT_MAX_STEPS if max_steps is None else max_steps,
            schema_retries=DEFAULT_SCHEMA_RETRIES if retries is None else retries,
            timeout=None if timeout is None else timeout / 1000,
            max_concurrency=properties.get("maxConcurrency") or max_concurrency,
            fail_fast=properties.get("failFast") is True,
            checks=checks,
        )

    async def run(self, runtime: Runtime, ask: AskModel) -> Acted:
        """Turns until the model answers; see the module docstring."""
        transcript: list[Entry] = []
        records: list[dict[str, Any]] = []
        turns = corrections = 0
        while True:
            reply = await ask(Turn(self.tools, self.schema, tuple(transcript)))
            turns += 1
            if reply.calls:
                if turns >= self.max_steps:
                    raise BackendError(
                        f"the model still asked for tools on its turn {turns} of maxSteps: "
                        f"{self.max_steps}; raise maxSteps:, or make the prompt say when "
                        "the model has enough to answer")
                transcript.append(reply)
                for call, value, error in await self._call_tools(runtime, reply.calls):
                    transcript.append(ToolResult(call, _for_model(value, error)))
                    records.append(_record(call, value, error))
                continue
            tool_calls = records if self.tools else None
            if self.schema is None:
                return Acted(reply.text, tool_calls)
            value, problem = parse_answer(reply.text)
            if problem is None:
                problem = fit(value, self.checks[None])
            if problem is None:
                return Acted(value, tool_calls)
            if corrections >= self.schema_retries:
                asked = corrections + 1
                raise BackendError(f"the model's answer does not fit the schema: {problem} "
                                   f"(asked {asked} time{'s' if asked > 1 else ''}; "
                                   "schemaRetries: allows more)")
            corrections += 1
            transcript += [reply, Correction(
                f"That answer does not fit the JSON schema: {problem}. Answer again with "
                "only JSON that fits the schema.")]

    # Tool calls ------------------------------------------------------------------------------

    async def _call_tools(
        self, runtime: Runtime, calls: Sequence[ToolCall]
    ) -> list[tuple[ToolCall, Any, str | None]]:
        """Each call's result or error, in the model's order; the runnable ones all at once."""
        known = {tool.event: tool for tool in self.tools}
        outcomes: dict[int, tuple[Any, str | None]] = {}
        runnable: dict[int, ToolCall] = {}
        for index, call in enumerate(calls):
            refusal = self._refusal(call, known)
            if refusal is None:
                runnable[index] = call
            else:
                outcomes[index] = (None, refusal)
        if runnable:
            outcomes.update(await self._run_all(runtime, runnable))
        return [(call, *outcomes[index]) for index, call in enumerate(calls)]

    def _refusal(self, call: ToolCall, known: Mapping[str, Tool]) -> str | None:
        """Why *call* cannot run (told to the model as its result), or ``None``."""
        if call.name not in known:
            return (f"there is no tool called {call.name}; the tools are "
                    f"{', '.join(known) or 'none'}")
        if call.problem is not None:
            return call.problem
        problem = fit(call.arguments, self.checks[call.name], "the arguments")
        return None if problem is None else f"the arguments do not fit the tool: {problem}"

    async def _run_all(
        self, runtime: Runtime, calls: Mapping[int, ToolCall]
    ) -> dict[int, tuple[Any, str | None]]:
        """Every tool call of the turn at once, as one parallel call of the coordinator (each
        branch with its own arguments): the call's timeout, concurrency cap and fail-fast hold
        as for parallel handler parameters. Branches are named by the call's id (unique in
        the turn) and its tool, as traces show them."""
        names = {index: f"{call.name} ({call.id})" for index, call in calls.items()}
        done = await runtime.parallel_each(
            {names[index]: (call.name, call.arguments) for index, call in calls.items()},
            timeout=self.timeout, max_concurrency=self.max_concurrency,
            fail_fast=self.fail_fast)
        outcomes: dict[int, tuple[Any, str | None]] = {}
        for index, name in names.items():
            failure = done.failures.get(name)
            outcomes[index] = (None, failure.message) if failure is not None else \
                (done.payload[name], None)
        return outcomes


def tools_of(listed: Any) -> tuple[Tool, ...]:
    """The tools a call lists (``tools: [weather.lookup { description: "..." }, ...]``, which
    the compiler makes ``[{ event, description?, parameters? }]``); raises
    :class:`ControlValueError` for a list that cannot be one."""
    if listed is None:
        return ()
    if not isinstance(listed, list):
        raise ControlValueError(f"tools must be a list of events, like [weather.lookup], got "
                                f"{shown(listed)}")
    tools: list[Tool] = []
    for entry in listed:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("event"), str):
            raise ControlValueError(f"a tool is an event, like weather.lookup {{ description: "
                                    f"\"...\" }}, got {shown(entry)}")
        event = entry["event"]
        unknown = [key for key in entry if key not in TOOL_KEYS]
        if unknown:
            raise ControlValueError(f"the tool {event} has {', '.join(map(str, unknown))}; a "
                                    "tool takes description: and parameters:")
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            raise ControlValueError(f"the description of the tool {event} must be text, got "
                                    f"{shown(description)}")
        parameters = entry.get("parameters")
        try:
            schema = NO_PARAMETERS if parameters is None else \
                json_schema(parameters, f"the parameters of {event}")
        except ShapeError as exc:
            raise ControlValueError(str(exc)) from None
        if any(tool.event == event for tool in tools):
            raise ControlValueError(f"the tool {event} is listed twice")
        tools.append(Tool(event, description, schema))
    return tuple(tools)


def _for_model(value: Any, error: str | None) -> str:
    """A tool's result as the model reads it: JSON, ``{"error": ...}`` when it failed."""
    try:
        return json.dumps({"error": error} if error is not None else value,
                          ensure_ascii=False, default=plain_data)
    except (ValueError, RecursionError):
        return json.dumps({"error": "the tool's result cannot be written as JSON"})


def _record(call: ToolCall, value: Any, error: str | None) -> dict[str, Any]:
    """One entry of the call's ``toolCalls``."""
    record = {"name": call.name, "arguments": call.arguments, "result": value}
    if error is not None:
        record["error"] = error
    return record
