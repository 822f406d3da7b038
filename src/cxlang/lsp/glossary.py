"""What the service keywords and the properties the services read mean, in a line or two: the
text of hovers and completion items. The events and the words come from the services
(``SERVICES``, ``PROPERTIES``, ``CONTROLS``); only the prose is here."""

from __future__ import annotations

from ..services.controls import CONTROLS, PROPERTIES
from ..services.registry import SERVICES

__all__ = ["describe_property", "describe_service", "service_properties"]

_SERVICES: dict[str, str] = {
    "think": "Asks the model about `prompt:`; the answer is the call's `result`.",
    "learn": "Embeds `data:` (or any value: `learn self;`) and keeps it in the run's memory; "
             "later model calls are given the learnt texts closest to their prompt.",
    "infer": "Asks the model to draw a conclusion from `prompt:`/`data:`.",
    "generate": "Asks the model to write text for `prompt:` (also `emit ai.generate {...}`).",
    "chat": "Continues a conversation: `messages:` (a chat history) or `message:`.",
    "adapt": "Asks the model to adapt `data:`/`prompt:` to what the call says.",
    "is": "Asks whether `evaluate:` (with `context:`, `data:`) holds; fires its `handlers` "
          "only if it does.",
    "not": "Asks whether `evaluate:` (with `context:`, `data:`) holds; fires its `handlers` "
           "only if it does not.",
    "iam": "Upstream's self-reflective condition, asked and answered as `is` is.",
    "await": "A real timer: waits `durationMs:` (or the middle of `minDurationMs:` and "
             "`maxDurationMs:`); the value is the wait in milliseconds.",
    "execute": "Runs `command:` (with `arguments:`, `workingDirectory:`, `timeout:`), only "
               "under `cx run --allow-execute`; gives `{ success, output, error, exitCode }`.",
}

_PROPERTIES: dict[str, str] = {
    "prompt": "what the call is about",
    "message": "what the call is about (a chat's next message)",
    "data": "what the call is about; for `learn`, what to keep",
    "text": "what the call is about",
    "system": "instructions instead of the service's own",
    "context": "background given with the prompt (and to `is`/`not`)",
    "messages": 'a chat history, `[{ role: "user", content: "hi" }, ...]`',
    "evaluate": "for `is`/`not`: the statement the model answers yes or no to",
    "condition": "for `is`/`not` on the local backend: its truthiness is the answer",
    "handlers": "the completion events, `[ done, label: parameter.event ]` (labelled entries "
                "are parallel handler parameters)",
    "command": "for `execute`: the command line to run",
    "arguments": "for `execute`: more words after the command",
    "workingDirectory": "for `execute`: where the command runs",
    "schema": "the shape the model's answer must have (JSON Schema words)",
    "tools": 'events whose handlers the model may call, `[ lookup { description: "..." } ]`',
}


def describe_service(name: str) -> str:
    """Markdown: what the service *name* does and the events it emits."""
    spec = SERVICES.get(name)
    text = f"**{name}** (service): {_SERVICES.get(name, 'a CX service.')}"
    if spec is None:
        return text
    events = []
    if spec.completion is not None:
        events.append(f"completion `{spec.completion}` (when the call lists no `handlers`)")
    else:
        events.append("no completion event of its own: only the `handlers` it lists")
    if spec.error is not None:
        events.append(f"error `{spec.error}`")
    return f"{text}\n\nEvents: {'; '.join(events)}."


def describe_property(key: str) -> str:
    """A line on what the services read in property *key*."""
    control = CONTROLS.get(key)
    if control is not None:
        return control.expected
    return _PROPERTIES.get(key, "read by the services")


def service_properties() -> list[str]:
    """Every property a service reads, sorted."""
    return sorted(PROPERTIES)
