"""Answers about events and symbols: go to definition (an event's ``on`` handlers), find
references (every place that emits or names it), hover (who handles and who emits an event;
what a service does) and the document's outline."""

from __future__ import annotations

from lsprotocol import types

from ..services.registry import SERVICES
from ..syntax import nodes as n
from .glossary import describe_service
from .index import CallFact, DocumentIndex, Occurrence, is_pattern, names_match
from .positions import PositionMap

__all__ = ["definition", "document_symbols", "hover", "references"]


def definition(index: DocumentIndex, places: PositionMap, uri: str,
               position: types.Position) -> list[types.Location] | None:
    """The ``on`` handlers of the event at *position* (wildcard patterns included)."""
    found = index.occurrence_at(*places.cx_position(position))
    if found is None:
        return None
    return [types.Location(uri=uri, range=places.range(o.span))
            for o in index.handlers_of(found.event)]


def references(index: DocumentIndex, places: PositionMap, uri: str, position: types.Position,
               include_declaration: bool) -> list[types.Location] | None:
    """Every place that emits or names the event at *position* (for a pattern, every event
    it matches), and its handlers when *include_declaration*."""
    found = index.occurrence_at(*places.cx_position(position))
    if found is None:
        return None
    hits = index.uses_of(found.event)
    if include_declaration:
        hits += index.handlers_of(found.event)
    spans = sorted({o.span for o in hits})
    return [types.Location(uri=uri, range=places.range(span)) for span in spans]


def hover(index: DocumentIndex, places: PositionMap,
          position: types.Position) -> types.Hover | None:
    """For an event: its handlers and what emits it; for a service keyword: what the service
    does and its events."""
    line, column = places.cx_position(position)
    found = index.occurrence_at(line, column)
    if found is not None:
        return _hover(_event_text(index, found.event), places.range(found.span))
    call = index.call_at(line, column)
    if call is not None:
        return _hover(_service_text(index, call), places.range(call.keyword))
    return None


def _hover(text: str, where: types.Range) -> types.Hover:
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=where)


def _event_text(index: DocumentIndex, event: str) -> str:
    handlers = index.handlers_of(event)
    uses = index.uses_of(event)
    produced = index.produced_by(event)
    pattern = is_pattern(event)
    lines = [f"**{'pattern' if pattern else 'event'}** `{event}`", ""]
    if pattern:
        matched = [name for name in index.event_names() if names_match(event, name)]
        lines.append("Matches here: " + (", ".join(f"`{m}`" for m in matched) or "nothing"))
        lines.append("")
    else:
        lines.append("Handled by:" if handlers else "Handled by: no `on` handler here")
        lines += [f"- `{o.where}` (line {o.span.line})" for o in handlers]
        lines.append("")
    emitters = [_use(o, pattern) for o in uses] + [
        f"- {call.label} ({call.where}): {what} event" for call, what in produced]
    lines.append("Emitted or named by:" if emitters else "Emitted by: nothing here")
    lines += emitters
    return "\n".join(lines).rstrip()


def _use(o: Occurrence, pattern: bool) -> str:
    """A line on one place that emits or names an event (naming the event, under a
    pattern's hover)."""
    name = f"`{o.event}`: " if pattern and o.kind != "emit" else ""
    if o.kind == "emit":
        return f"- `emit {o.event}` at line {o.span.line} ({o.where})"
    if o.kind == "completion":
        return f"- {name}{o.call} ({o.where}): a completion event in its `handlers`"
    if o.kind == "parameter":
        return f"- {name}{o.call} ({o.where}): parallel handler parameter `{o.parameter}`"
    if o.kind == "tool":
        return f"- {name}{o.call or f'line {o.span.line}'} ({o.where}): a tool the model " \
               "may call"
    return f"- {name}named in a `handlers` list at line {o.span.line} ({o.where}), for " \
           "whoever serves that event"


def _service_text(index: DocumentIndex, call: CallFact) -> str:
    text = describe_service(call.service)
    spec = SERVICES.get(call.service)
    if spec is None:
        return text
    lines = []
    for event, what in call.emits():
        handlers = index.handlers_of(event)
        where = ", ".join(f"`{o.where}` (line {o.span.line})" for o in handlers) \
            or "no handler here"
        lines.append(f"- `{event}` ({what}): {where}")
    return text + "\n\nThis call emits:\n" + "\n".join(lines) if lines else text


def document_symbols(index: DocumentIndex, places: PositionMap) -> list[types.DocumentSymbol]:
    """Entities (with their fields, realize and handlers), handlers and top-level variables."""
    if index.tree is None:
        return []
    found: list[types.DocumentSymbol] = []
    for item in index.tree.body:
        if isinstance(item, n.OnHandler):
            found.append(_handler(item, places))
        elif isinstance(item, n.EntityDecl):
            children = [_symbol(field.name, types.SymbolKind.Field, field.span, field.name_span,
                                places) for field in item.fields]
            if item.realize is not None:
                children.append(_symbol("realize", types.SymbolKind.Constructor,
                                        item.realize.span, item.realize.span, places))
            children += [_handler(handler, places) for handler in item.handlers]
            found.append(_symbol(item.name, types.SymbolKind.Class, item.span, item.name_span,
                                 places, item.kind, children))
        elif isinstance(item, n.VarDecl):
            found.append(_symbol(item.name, types.SymbolKind.Variable, item.span,
                                 item.name_span, places))
    return found


def _handler(handler: n.OnHandler, places: PositionMap) -> types.DocumentSymbol:
    return _symbol(f"on {handler.pattern.dotted}", types.SymbolKind.Event, handler.span,
                   handler.pattern.span, places, "async" if handler.is_async else None)


def _symbol(name: str, kind: types.SymbolKind, span: n.Span, name_span: n.Span,
            places: PositionMap, detail: str | None = None,
            children: list[types.DocumentSymbol] | None = None) -> types.DocumentSymbol:
    whole, selection = places.range(span), places.range(name_span)
    if not (_key(whole.start) <= _key(selection.start)
            and _key(selection.end) <= _key(whole.end)):
        selection = whole  # editors refuse a name outside its symbol
    return types.DocumentSymbol(name=name or "?", kind=kind, range=whole,
                                selection_range=selection, detail=detail, children=children)


def _key(position: types.Position) -> tuple[int, int]:
    return position.line, position.character
