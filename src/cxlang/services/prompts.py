"""From a service call to what a model reads: chat messages, or plain text for base models.

Both real backends share this so a program means the same thing to either. A call can steer
its prompt with ``system:`` (instructions), ``context:`` (background), ``messages:`` (a chat
history) and, for ``is``/``not``, ``evaluate:`` (the statement to check) and ``data:``;
``temperature:`` and ``maxTokens:`` tune the generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .backend import BackendError, ServiceRequest
from .controls import control_error, shown

__all__ = [
    "Generation",
    "chat_messages",
    "classify_messages",
    "classify_prompt",
    "completion_prompt",
    "generation",
    "parse_yes_no",
    "schema_instructions",
]

Message = dict[str, str]

_INSTRUCTIONS = {
    "think": "Think the question through and answer it clearly.",
    "generate": "Write what is asked for.",
    "infer": "Infer what follows from the information given; answer briefly.",
    "adapt": "Adapt the content as asked.",
    "chat": "You are a helpful assistant.",
}
_CLASSIFY = ("You check whether a statement holds, given the context and data. "
             "Answer with exactly one word: yes or no.")

# Base models continue text, so the prompt is the start of a document whose next line is the
# answer: a label for the task and one for the answer, stopping where a new task would begin.
_LABELS = {
    "think": ("Question", "Answer"),
    "generate": ("Request", "Response"),
    "infer": ("Facts", "Conclusion"),
    "adapt": ("Instruction", "Result"),
}


@dataclass(frozen=True, slots=True)
class Generation:
    """Sampling settings a call asked for; ``None`` leaves the model's own default."""

    temperature: float | None = None
    max_tokens: int | None = None


def generation(request: ServiceRequest) -> Generation:
    """The sampling a call asked for, checked by the same rules as every control value (a
    backend may be called without the invoker, which checks them first)."""
    for key in ("temperature", "maxTokens"):
        problem = control_error(key, request.properties.get(key))
        if problem is not None:
            raise BackendError(problem)
    temperature = request.properties.get("temperature")
    return Generation(None if temperature is None else float(temperature),
                      request.properties.get("maxTokens"))


def chat_messages(request: ServiceRequest) -> list[Message]:
    """System instructions (with the recalled memories), any history, then the prompt."""
    system = request.text("system") or _INSTRUCTIONS.get(request.service, _INSTRUCTIONS["think"])
    messages = [{"role": "system", "content": system + _notes(request.memories)}]
    history = request.properties.get("messages")
    if history is not None:
        messages.extend(_history(history))
    prompt = request.prompt
    context = request.text("context")
    if context:
        prompt = f"Context: {context}\n\n{prompt}"
    if prompt or history is None:
        messages.append({"role": "user", "content": prompt})
    return messages


def classify_messages(request: ServiceRequest) -> list[Message]:
    return [{"role": "system", "content": _CLASSIFY + _notes(request.memories)},
            {"role": "user", "content": _statement(request)}]


def completion_prompt(request: ServiceRequest) -> tuple[str, list[str]]:
    """Text for a base model to continue, and where to stop it."""
    notes = _notes(request.memories).strip()
    head = f"{notes}\n\n" if notes else ""
    context = request.text("context")
    if context:
        head += f"Context: {context}\n\n"
    if request.service == "chat":
        history = request.properties.get("messages")
        turns = [f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}"
                 for m in _history(history or []) if m["role"] != "system"]
        # As in chat_messages: without a prompt of its own the call answers the history's
        # last turn, and an empty user turn there would leave the model nothing to answer.
        if request.prompt or history is None:
            turns.append(f"User: {request.prompt}")
        return head + "\n".join(turns) + "\nAssistant:", ["\nUser:", "\n\n"]
    task, answer = _LABELS.get(request.service, _LABELS["think"])
    return f"{head}{task}: {request.prompt}\n{answer}:", ["\n\n", f"\n{task}:"]


def schema_instructions(schema: Mapping[str, Any]) -> str:
    """What a model is told when the API itself cannot hold it to a schema (a server that
    refuses ``json_schema``, a base model's prompt): the schema, and to answer with JSON."""
    return ("Answer with only a JSON value, nothing before or after it, that fits this JSON "
            f"Schema: {json.dumps(schema, ensure_ascii=False)}")


def classify_prompt(request: ServiceRequest) -> str:
    notes = _notes(request.memories).strip()
    head = f"{notes}\n\n" if notes else ""
    return f"{head}{_statement(request)}\nAnswer (yes or no):"


_WORD = re.compile(r"[a-z]+")


def parse_yes_no(text: str) -> bool:
    """The model's first word as a yes or a no; anything else is an error, not a guess."""
    match = _WORD.search(text.lower())
    word = match.group() if match else ""
    if word in ("yes", "true", "y"):
        return True
    if word in ("no", "false", "n"):
        return False
    raise BackendError(f"the model answered {shown(text.strip())}, neither yes nor no; "
                       "make evaluate: a yes/no statement, or use a stronger model")


def _statement(request: ServiceRequest) -> str:
    statement = (request.text("evaluate") or request.text("condition")
                 or request.text("prompt") or request.text("message"))
    if not statement:
        raise BackendError(f"{request.service} needs evaluate: the statement the model checks, "
                           f'e.g. {request.service} {{ evaluate: "the text is polite", '
                           "data: {...} }")
    parts = []
    context = request.text("context")
    if context:
        parts.append(f"Context: {context}")
    data = request.text("data")
    if data:
        parts.append(f"Data: {data}")
    parts.append(f"Statement: {statement}")
    parts.append("Does the statement hold?")
    return "\n".join(parts)


def _notes(memories: tuple[str, ...]) -> str:
    if not memories:
        return ""
    return "\n\nThings learnt earlier (use them where they help):\n" + "\n".join(
        f"- {text}" for text in memories)


def _history(value: Any) -> list[Message]:
    if not isinstance(value, list) or not all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str)
        and isinstance(m.get("content"), str) for m in value
    ):
        raise BackendError('messages must be a list like [{ role: "user", content: "hi" }]')
    return [{"role": m["role"], "content": m["content"]} for m in value]
