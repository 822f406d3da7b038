"""What a service call's properties mean to the services: the words they read, and the rules
for the values that steer a call.

Every other property is data: it reaches the call's handlers in the source payload, so a call
may carry anything (``think { prompt: p, userId: 7 }``). A key that is not one of these words
but is spelt almost like one (``promt``) is most likely a typo, and the compiler warns of it.

Control values (``timeout: 5000``) are checked before the call runs: a wrong one is a mistake
in the program, reported at the call, never a failure of the model to be handled.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime.retry import RETRYABLE, Retry, kind_not_retried

__all__ = ["CONTROLS", "PROPERTIES", "Control", "ControlValueError", "check_controls",
           "control_error", "likely_meant", "range_error", "retry_error", "retry_policy",
           "shown"]


class ControlValueError(ValueError):
    """A control value of a call is not one it accepts; the message says what it takes."""


@dataclass(frozen=True, slots=True)
class Control:
    """A property that steers the call, with the values it accepts."""

    accepts: Callable[[Any], bool]
    expected: str  # "a positive number of milliseconds": what the message asks for


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


CONTROLS: Mapping[str, Control] = {
    "timeout": Control(lambda v: _number(v) and v > 0,
                       "a positive number of milliseconds (each parallel handler's time)"),
    "maxConcurrency": Control(lambda v: _whole(v) and v >= 1,
                              "a whole number of at least 1 (handlers running at once)"),
    "failFast": Control(lambda v: isinstance(v, bool), "true or false"),
    "stream": Control(lambda v: isinstance(v, bool), "true or false"),
    "recall": Control(lambda v: _whole(v) and v >= 0,
                      "a whole number >= 0 (how many learnt texts to give the model)"),
    "temperature": Control(lambda v: _number(v) and v >= 0, "a number >= 0"),
    "maxTokens": Control(lambda v: _whole(v) and v >= 1,
                         "a whole number of at least 1 (the answer's length in tokens)"),
    "maxSteps": Control(lambda v: _whole(v) and v >= 1,
                        "a whole number of at least 1 (model turns, tool calls between them)"),
    "schemaRetries": Control(lambda v: _whole(v) and v >= 0,
                             "a whole number >= 0 (how often an answer that does not fit the "
                             "schema is asked for again)"),
    "durationMs": Control(lambda v: _number(v) and v >= 0, "a number of milliseconds >= 0"),
    "minDurationMs": Control(lambda v: _number(v) and v >= 0, "a number of milliseconds >= 0"),
    "maxDurationMs": Control(lambda v: _number(v) and v >= 0, "a number of milliseconds >= 0"),
    "retry": Control(lambda v: retry_error(v) is None,
                     "an object such as { attempts: 3, delayMs: 100, backoff: 2, on: "
                     "[\"error\", \"timeout\"] }"),
}

# The words the services read besides the controls; "handlers" lists the completion events,
# "schema" and "tools" make a model that acts (shapes checked by .schema and .tools).
PROPERTIES: frozenset[str] = frozenset(CONTROLS) | {
    "prompt", "message", "data", "text", "system", "context", "messages", "evaluate",
    "condition", "handlers", "command", "arguments", "workingDirectory", "schema", "tools",
}


def control_error(key: str, value: Any) -> str | None:
    """What is wrong with *value* as control *key*, or ``None`` when it is fine (or no
    control: ``None`` means "not set" and is always fine)."""
    control = CONTROLS.get(key)
    if control is None or value is None or control.accepts(value):
        return None
    if key == "retry":  # an object: say which of its parts is wrong
        _, problem = retry_error(value) or ("", "")
        return problem
    return f"{key} must be {control.expected}, got {shown(value)}"


_RETRY_PARTS: Mapping[str, Control] = {
    "attempts": Control(lambda v: _whole(v) and v >= 1,
                        "a whole number of at least 1 (runs of a branch in all, the first "
                        "included)"),
    "delayMs": Control(lambda v: _number(v) and 0 <= v < math.inf,
                       "a number of milliseconds >= 0 (the wait before the second run)"),
    "backoff": Control(lambda v: _number(v) and 1 <= v < math.inf,
                       "a number >= 1 (each wait is this many times the one before)"),
}


def retry_error(value: Any) -> tuple[str, str] | None:
    """What is wrong with a call's ``retry:`` value, and the key of the part that is
    (``""``: the whole), or ``None`` when it is fine."""
    if hasattr(value, "as_data"):  # an entity: see .backend.plain_data
        value = value.as_data()
    if not isinstance(value, Mapping):
        return "", f"retry must be {CONTROLS['retry'].expected}, got {shown(value)}"
    for key in value:
        if key not in (*_RETRY_PARTS, "on"):
            return key, f"retry takes attempts, delayMs, backoff and on, not {key}"
    if "attempts" not in value:
        return "", "retry needs attempts: how many times a branch runs in all, such as 3"
    for key, part in _RETRY_PARTS.items():
        if key in value and not part.accepts(value[key]):
            return key, f"retry's {key} must be {part.expected}, got {shown(value[key])}"
    kinds = value.get("on", ["error"])
    if not isinstance(kinds, list | tuple) or not kinds:
        return "on", ("retry's on must list the failure kinds to retry, such as "
                      f"{shown(list(RETRYABLE))}, got {shown(kinds)}")
    for kind in kinds:
        problem = kind_not_retried(kind)
        if problem is not None:
            return "on", f"retry's on: {problem.replace(repr(kind), shown(kind), 1)}"
    try:
        retry_policy(value)
    except ValueError as exc:  # each part is fine, but together they wait for ever
        return "", f"retry: {exc}"
    return None


def retry_policy(value: Any) -> Retry | None:
    """The :class:`~cxlang.runtime.retry.Retry` of a call's ``retry:`` (checked already),
    or ``None`` when it has none."""
    if value is None:
        return None
    if hasattr(value, "as_data"):
        value = value.as_data()
    return Retry(attempts=value["attempts"], delay=value.get("delayMs", 100) / 1000,
                 backoff=value.get("backoff", 2), on=tuple(value.get("on", ("error",))))


def range_error(minimum: Any, maximum: Any) -> str | None:
    """What is wrong with ``minDurationMs`` / ``maxDurationMs`` together (each accepted on its
    own), or ``None``: a range whose end comes before its start."""
    if _number(minimum) and _number(maximum) and maximum < minimum:
        return (f"maxDurationMs must be at least minDurationMs ({shown(minimum)}), "
                f"got {shown(maximum)}")
    return None


def check_controls(properties: Mapping[str, Any]) -> None:
    """Raise :class:`ControlValueError` for the first control value a call does not accept."""
    for key in CONTROLS.keys() & properties.keys():
        problem = control_error(key, properties[key])
        if problem is not None:
            raise ControlValueError(problem)
    problem = range_error(properties.get("minDurationMs"), properties.get("maxDurationMs"))
    if problem is not None:
        raise ControlValueError(problem)


def likely_meant(key: str) -> str | None:
    """The service word *key* is probably a typo of, or ``None`` when it reads as data."""
    if key in PROPERTIES:
        return None
    folded = {word.lower(): word for word in PROPERTIES}
    if key.lower() in folded:
        return folded[key.lower()]
    close = difflib.get_close_matches(key, sorted(PROPERTIES), n=1, cutoff=0.8)
    return close[0] if close else None


SHOWN_CHARACTERS = 40  # of a value in a message: enough to recognise it


def shown(value: Any) -> str:
    """*value* in a message, written as CX's ``print`` writes it (``"abc"``, ``[null, true]``,
    an entity as its properties) and cut to about :data:`SHOWN_CHARACTERS` characters.

    The services cannot import the compiler's writer (the layers point the other way), so
    this is a short one of their own; it stops as soon as it has written enough, so a huge or
    self-containing value costs no more than that to show."""
    parts: list[str] = []
    _write_shown(value, parts, 0)
    text = "".join(parts)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def _write_shown(value: Any, parts: list[str], written: int) -> int:
    """Append *value* to *parts* until about :data:`SHOWN_CHARACTERS` characters are there
    (*written* so far); how many there are then."""
    if written > SHOWN_CHARACTERS:
        return written
    if hasattr(value, "as_data"):  # an entity: see .backend.plain_data
        value = value.as_data()
    if isinstance(value, list | tuple | dict):
        is_list = not isinstance(value, dict)
        items = value.items() if isinstance(value, dict) else value
        parts.append("[" if is_list else "{")
        written += 1
        for i, item in enumerate(items):
            if written > SHOWN_CHARACTERS:
                break  # the rest is cut off anyway
            if i:
                parts.append(", ")
                written += 2
            element = item
            if not is_list:
                key, element = item
                label = json.dumps(str(key), ensure_ascii=False) + ": "
                parts.append(label)
                written += len(label)
            written = _write_shown(element, parts, written)
        parts.append("]" if is_list else "}")
        return written + 1
    text = _scalar(value)
    parts.append(text)
    return written + len(text)


def _scalar(value: Any) -> str:
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > 4 * SHOWN_CHARACTERS:  # past Python's digits limit, perhaps
            return f"a number of about {int(value.bit_length() / math.log2(10)) + 1:,} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"  # as print writes Infinity
    text = value if isinstance(value, str) else str(value)
    return json.dumps(text[:SHOWN_CHARACTERS + 1], ensure_ascii=False)
