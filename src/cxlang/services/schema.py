"""The shape a model's answer must have (``schema:``): shorthand or JSON Schema, checked with
``jsonschema``, with what did not fit said in CX words.

A program writes a shape the short way, ``{ city: "string", celsius: "number", note:
"string?", tags: ["string"], where: { lat: "number" } }``, or as a JSON Schema object (one
with ``type`` or ``$schema`` at its top). Either becomes a JSON Schema here: the one thing
backends send, validators check and the ``local`` backend builds its answers from. Short
shapes are closed (``additionalProperties: false``): a model that invents a property is
asked again rather than handing the program a key it does not expect.

Messages quote the value that did not fit as ``print`` writes it and name where it is
(``tags[1]``, ``where.lat``), never ``jsonschema``'s own wording, which is Python's
(``'21' is not of type 'number'``).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator

from .controls import shown

__all__ = ["TYPE_WORDS", "ShapeError", "checker", "example_of", "fit", "json_schema",
           "parse_answer"]

TYPE_WORDS: Mapping[str, str] = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
}
"""The type words of the short form (each may end in ``?``: optional, or null)."""


class ShapeError(ValueError):
    """A ``schema:`` (or a tool's ``parameters:``) that is no shape; the message says what
    to write instead, ``path`` where in the shape (property names and list positions), so
    that a compile-time check can point at it."""

    def __init__(self, message: str, path: Sequence[str | int] = ()) -> None:
        super().__init__(message)
        self.path = tuple(path)


def json_schema(shape: Any, what: str = "schema") -> dict[str, Any]:
    """*shape* (shorthand or JSON Schema) as a JSON Schema; raises :class:`ShapeError`.
    *what* names the shape in messages (``schema``, ``the parameters of weather.lookup``)."""
    if not isinstance(shape, Mapping):
        raise ShapeError(f"{what} must be an object like {{ city: \"string\" }} or a JSON "
                         f"Schema, got {shown(shape)}")
    if "type" in shape or "$schema" in shape:
        schema: dict[str, Any] = _plain(shape)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = _where(exc.absolute_path, top="its top")
            raise ShapeError(f"{what} is not a valid JSON Schema: {where} is "
                             f"{shown(exc.instance)}, which JSON Schema does not allow there",
                             tuple(exc.absolute_path)) from None
        return schema
    return _object(shape, what, ())


def checker(schema: Mapping[str, Any]) -> Validator:
    """What checks values against *schema* (a JSON Schema, as :func:`json_schema` gives): one
    per shape, kept, since a program asks with the same tools and schemas again and again and
    making a validator costs more than using it."""
    return _checker(json.dumps(schema))  # in its order: which error is named first depends on it


@functools.lru_cache(maxsize=256)
def _checker(schema: str) -> Validator:
    return Draft202012Validator(json.loads(schema))


def fit(value: Any, check: Validator, subject: str = "the answer") -> str | None:
    """What in *value* does not fit the schema of *check* (:func:`checker`), in CX words;
    ``None`` when it fits. *subject* names the value as a whole (``the answer``, ``the
    arguments``)."""
    if check.is_valid(value):
        return None  # the usual case, without ranking errors there are none of
    error = best_match(check.iter_errors(value))
    return None if error is None else _problem(error, subject)


def parse_answer(text: str) -> tuple[Any, str | None]:
    """A model's answer as a value, or why it is none: JSON, perhaps in a Markdown fence
    (models that were asked for JSON in their instructions often add one)."""
    stripped = _FENCE.sub("", text.strip()).strip()
    try:
        return json.loads(stripped), None
    except (ValueError, RecursionError):
        return None, f"the answer is not JSON: {shown(text.strip())}"


def example_of(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """A value that fits *schema*, the same every time: ``"example"`` for text, 1 for
    numbers, true, one element per list, every property of an object. What the ``local``
    backend answers, and the arguments it calls tools with. *root*: the whole schema, where
    ``$ref`` (``#/$defs/...``, as Pydantic writes them) are looked up."""
    root = schema if root is None else root
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = root
        for step in reference[2:].split("/"):
            target = target.get(step, {}) if isinstance(target, Mapping) else {}
        return example_of(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf", "allOf"):
        if schema.get(choice):
            return example_of(schema[choice][0], root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_of(sub, root) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        count = max(1, schema.get("minItems", 1))
        return [example_of(items, root) for _ in range(count)] \
            if isinstance(items, Mapping) else []
    if kind in ("number", "integer"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


# Shorthand -----------------------------------------------------------------------------------

def _object(shape: Mapping[str, Any], what: str, path: tuple[str | int, ...]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, sub in shape.items():
        schema, optional = _member(sub, what, (*path, name))
        properties[name] = schema
        if not optional:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _member(shape: Any, what: str, path: tuple[str | int, ...]) -> tuple[dict[str, Any], bool]:
    """One property's schema, and whether it is optional (``"string?"``)."""
    if isinstance(shape, str):
        word, optional = (shape[:-1], True) if shape.endswith("?") else (shape, False)
        if word not in TYPE_WORDS:
            raise ShapeError(_unknown_word(shape, word, what, path), path)
        kind = TYPE_WORDS[word]
        return {"type": [kind, "null"] if optional else kind}, optional
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ShapeError(f"{what}: {_where(path)} is a list of {len(shape)} shapes; a list "
                             "shape has one, the shape of every element: [\"string\"]", path)
        items, _ = _member(shape[0], what, (*path, 0))
        return {"type": "array", "items": items}, False
    if isinstance(shape, Mapping):
        return _object(shape, what, path), False
    raise ShapeError(f"{what}: {_where(path)} is {shown(shape)}; write a type word "
                     f"({_words()}), [\"string\"] for a list or {{ ... }} for an object", path)


def _unknown_word(shape: str, word: str, what: str, path: tuple[str | int, ...]) -> str:
    close = difflib.get_close_matches(word.lower(), TYPE_WORDS, n=1, cutoff=0.6)
    meant = f"; did you mean {json.dumps(close[0] + shape[len(word):])}?" if close else ""
    return (f"{what}: {_where(path)} has the unknown type {json.dumps(shape)}{meant} "
            f"(the types are {_words()}, each with ? when it may be missing)")


def _words() -> str:
    return ", ".join(f'"{word}"' for word in TYPE_WORDS)


def _plain(value: Any) -> Any:
    """A schema as plain JSON data: a program's objects may be entities or read-only views."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# What did not fit ----------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")

_KINDS = {"string": "text", "number": "a number", "integer": "a whole number",
          "boolean": "true or false", "object": "an object", "array": "a list", "null": "null"}


def _problem(error: ValidationError, subject: str) -> str:
    where = _where(error.absolute_path, subject)
    value = error.instance
    rule, expected = error.validator, error.validator_value
    if rule == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_KINDS.get(str(kind), str(kind)) for kind in kinds)
        return f"{where} is {shown(value)}, not {wanted}"
    if rule == "required" and isinstance(value, Mapping) and isinstance(expected, list):
        missing = [name for name in expected if name not in value]
        verb = "is" if len(missing) == 1 else "are"
        inside = _where(error.absolute_path, "")
        return f"{inside + ': ' if inside else ''}{', '.join(missing)} {verb} missing"
    if rule == "additionalProperties" and isinstance(value, Mapping):
        known: Any = error.schema.get("properties", {}) \
            if isinstance(error.schema, Mapping) else {}
        extra = [name for name in value if name not in known]
        return (f"{where} has {', '.join(extra)}, which the schema does not have "
                f"(it has {', '.join(known) or 'no properties'})")
    if rule == "enum":
        return f"{where} is {shown(value)}, not one of {shown(expected)}"
    return f"{where} is {shown(value)}, which breaks the schema's rule {rule}: {shown(expected)}"


def _where(path: Any, top: str = "the answer") -> str:
    """``tags[1]``, ``where.lat``; *top* at the top."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or top

