"""Python types as ``schema=`` of the Python face: a dataclass or a Pydantic model describes
the answer, and the answer comes back as an instance of it.

A dataclass's fields become a closed object schema from their type hints (``str``, ``int``,
``float``, ``bool``, ``list[...]``, ``dict``, ``X | None``, nested dataclasses); a field with a
default may be missing. A Pydantic model (when Pydantic is installed: it is not a dependency)
gives its own JSON Schema and validates the answer itself.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["answer_type"]

_SCALARS: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def answer_type(shape: Any) -> tuple[Any, Callable[[Any], Any]]:
    """The ``schema:`` to send for *shape*, and what makes the answer that fits it into the
    value to return: an instance of a dataclass or Pydantic model; anything else (shorthand,
    JSON Schema) is sent as it is and its answer returned as it is."""
    if isinstance(shape, type) and dataclasses.is_dataclass(shape):
        return _dataclass_schema(shape), lambda value: _instance(shape, value)
    validate = getattr(shape, "model_validate", None)
    describe = getattr(shape, "model_json_schema", None)
    if isinstance(shape, type) and callable(validate) and callable(describe):
        return describe(), validate
    return shape, _same


def _same(value: Any) -> Any:
    return value


def _dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        properties[field.name] = _type_schema(hints[field.name], f"{cls.__name__}.{field.name}")
        if field.default is dataclasses.MISSING and \
                field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if hint is typing.Any:
        return {}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_schema(hint)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple) and arguments:
        return {"type": "array", "items": _type_schema(arguments[0], where)}
    if hint is dict or origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        kinds = [_type_schema(argument, where) for argument in arguments
                 if argument is not type(None)]
        choice = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        return {"anyOf": [choice, {"type": "null"}]} if type(None) in arguments else choice
    raise TypeError(f"schema=: {where} is {hint!r}, which cannot be described to the model; "
                    "use str, int, float, bool, list[...], dict, X | None or a dataclass")


def _instance(cls: type, value: Any) -> Any:
    """*value* (which fits *cls*'s schema) as an instance of *cls*, nested dataclasses too."""
    hints = typing.get_type_hints(cls)
    return cls(**{name: _converted(hints[name], item) for name, item in value.items()})


def _converted(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instance(hint, value)
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple) and arguments:
        items = [_converted(arguments[0], item) for item in value]
        return tuple(items) if origin is tuple else items
    if origin in (typing.Union, types.UnionType):
        inner = [argument for argument in arguments if argument is not type(None)]
        return _converted(inner[0], value) if len(inner) == 1 else value
    if hint is float and isinstance(value, int):
        return float(value)
    return value
