"""Completion: the properties a service reads where a service call's property names go, and
the document's event names everywhere else.

Where the cursor is, is read from the text before it (a document being typed rarely parses):
the innermost bracket still open, with strings and comments skipped.
"""

from __future__ import annotations

import re

from lsprotocol import types

from ..services.registry import SERVICES
from .glossary import describe_property, service_properties
from .index import DocumentIndex
from .positions import PositionMap

__all__ = ["complete"]

_WORD = re.compile(r"[A-Za-z0-9_$.]*\Z")
_SERVICE_BEFORE = re.compile(
    r"(?:(?<![\w$.])(?:" + "|".join(SERVICES) + r")|\bemit\s+ai\.\w+)\s*\Z")
_EVENT_KEYWORD = re.compile(r"(?<![\w$.])(?:emit|on|async)\s*\Z")


def complete(index: DocumentIndex, places: PositionMap,
             position: types.Position) -> types.CompletionList:
    """What may be written at *position*."""
    before = places.prefix(position)
    word = _WORD.search(before)
    typed = word.group() if word is not None else ""
    start = places.position(len(before) - len(typed))
    replace = types.Range(start=start, end=places.position(len(before)))
    if _at_property_name(before[:len(before) - len(typed)]) and "." not in typed:
        items = [types.CompletionItem(
            label=key, kind=types.CompletionItemKind.Property, detail=describe_property(key),
            text_edit=types.TextEdit(range=replace, new_text=f"{key}: "), filter_text=key)
            for key in service_properties()]
        return types.CompletionList(is_incomplete=False, items=items)
    # Past a dot, only the names that go on from what is written (not after `event.`).
    stem = typed[:typed.rfind(".") + 1]
    items = [types.CompletionItem(label=name, kind=types.CompletionItemKind.Event,
                                  text_edit=types.TextEdit(range=replace, new_text=name),
                                  filter_text=name)
             for name in index.event_names() if name.startswith(stem)]
    return types.CompletionList(is_incomplete=False, items=items)


def _at_property_name(text: str) -> bool:
    """Whether *text* ends where a service call's object takes its next property name: after
    the ``{`` of ``think {`` or a ``,`` inside it."""
    stripped = text.rstrip()
    if _EVENT_KEYWORD.search(stripped):
        return False
    opener = _open_bracket(text)
    if opener is None or text[opener] != "{":
        return False
    if not _SERVICE_BEFORE.search(text[:opener]):
        return False
    return stripped.endswith(("{", ","))


def _open_bracket(text: str) -> int | None:
    """Where the innermost bracket still open at the end of *text* is, outside strings and
    comments."""
    stack: list[int] = []
    i, size = 0, len(text)
    while i < size:
        ch = text[i]
        if ch in "\"'":
            i += 1
            while i < size and text[i] != ch and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = size if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = size if end < 0 else end + 1
        elif ch in "{[(":
            stack.append(i)
        elif ch in "}])" and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None
