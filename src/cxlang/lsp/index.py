"""One document's facts, as an editor asks about them: its diagnostics (those of ``cx check``),
every place an event is handled, emitted or named, and its service calls.

Built from whatever tree there is: the parsed program, else the one the parser recovered from
its errors (``CxSyntaxError.recovered``), else none (diagnostics only). Which properties of a
call are parallel handler parameters is the compiler's decision (from scopes) when the program
compiles; otherwise a dotted value whose root is declared nowhere in the file stands for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from ..compiler import CompiledProgram
from ..compiler.sites import CallSite
from ..program.checks import compile_checked
from ..program.graph import walk
from ..runtime.events import WILDCARDS, EventPattern
from ..services.registry import SERVICES, service_for_event
from ..syntax import CxError, CxSyntaxError, Diagnostic, parse
from ..syntax import nodes as n
from ..syntax.nodes import Span

__all__ = ["CallFact", "DocumentIndex", "Occurrence", "index_document", "is_pattern",
           "names_match"]

OccurrenceKind = Literal["handler", "emit", "completion", "parameter", "tool", "named"]
"""``handler``: an ``on`` pattern; ``emit``: ``emit a.b``; ``completion``: an entry of a service
call's ``handlers``; ``parameter``: a parallel handler parameter's event; ``tool``: an entry
of ``tools``; ``named``: an entry of a ``handlers`` list that is no call's (an ``emit``'s
payload: the events whoever serves it emits)."""

_T = TypeVar("_T")
_NOW = ("system", "time", "now")  # a value, not an event reference (see the compiler)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """An event name (or an ``on`` pattern) at one place in the document."""

    event: str
    span: Span
    kind: OccurrenceKind
    where: str  # the code it is in: "top level", "on a.b", "Shop: on a.b", "Shop: realize"
    call: str = ""  # for a call's entries: "think call at line 4"
    parameter: str = ""  # for a parallel handler parameter: its name


@dataclass(frozen=True, slots=True)
class CallFact:
    """A service call (``think {...}``, ``emit ai.generate {...}``)."""

    service: str
    keyword: Span
    where: str
    completions: tuple[str, ...]  # the unlabelled entries of its handlers list

    @property
    def label(self) -> str:
        return f"{self.service} call at line {self.keyword.line}"

    def emits(self) -> list[tuple[str, str]]:
        """The events the call emits by itself, each with what it is: its completion events
        (its ``handlers``, else the service's own) and the service's error event."""
        spec = SERVICES.get(self.service)
        found = [(event, "completion") for event in self.completions]
        if spec is not None:
            if not self.completions and spec.completion is not None:
                found.append((spec.completion, "the service's completion"))
            if spec.error is not None:
                found.append((spec.error, "the service's error"))
        return found


@dataclass(frozen=True, slots=True)
class DocumentIndex:
    """What one version of a document says."""

    diagnostics: tuple[Diagnostic, ...]
    tree: n.Program | None
    occurrences: tuple[Occurrence, ...]
    calls: tuple[CallFact, ...]

    def occurrence_at(self, line: int, column: int) -> Occurrence | None:
        """The event name at (or just after) CX (*line*, *column*)."""
        return _innermost((o for o in self.occurrences if _contains(o.span, line, column)),
                          lambda o: o.span)

    def call_at(self, line: int, column: int) -> CallFact | None:
        """The service call whose keyword is at CX (*line*, *column*)."""
        return _innermost((c for c in self.calls if _contains(c.keyword, line, column)),
                          lambda c: c.keyword)

    def handlers_of(self, event: str) -> list[Occurrence]:
        """The ``on`` handlers that *event* reaches (``on order.any`` for ``order.paid``); for
        a pattern with a wildcard, the handlers of exactly that pattern."""
        if is_pattern(event):
            return [o for o in self.occurrences if o.kind == "handler" and o.event == event]
        return [o for o in self.occurrences if o.kind == "handler" and names_match(o.event, event)]

    def uses_of(self, event: str) -> list[Occurrence]:
        """Every place that emits or names *event* (any event a pattern matches)."""
        return [o for o in self.occurrences if o.kind != "handler" and names_match(event, o.event)]

    def produced_by(self, event: str) -> list[tuple[CallFact, str]]:
        """The calls that emit *event* (or an event the pattern matches) as their service's
        completion or error event, each with which of the two it is."""
        return [(call, what) for call in self.calls for name, what in call.emits()
                if what != "completion" and names_match(event, name)]

    def event_names(self) -> list[str]:
        """Every event the document emits, names or handles (no patterns), sorted."""
        names = {o.event for o in self.occurrences}
        names.update(name for call in self.calls for name, _ in call.emits())
        return sorted(name for name in names if not is_pattern(name))


def index_document(text: str, filename: str) -> DocumentIndex:
    """The facts of *text*; raises nothing the program's own errors can cause."""
    compiled: CompiledProgram | None = None
    try:
        compiled, warnings = compile_checked(text, filename)
        diagnostics = tuple(warnings)
    except CxError as exc:
        diagnostics = exc.diagnostics
    tree: n.Program | None
    try:
        tree = parse(text, filename)
    except CxSyntaxError as exc:
        tree = exc.recovered
    if tree is None:
        return DocumentIndex(diagnostics, None, (), ())
    sites = None if compiled is None else \
        {(site.span.line, site.span.column): site for site in compiled.call_sites}
    collector = _Collector(sites, _declared_names(tree))
    collector.program(tree)
    return DocumentIndex(diagnostics, tree, tuple(collector.occurrences),
                         tuple(collector.calls))


def names_match(first: str, second: str) -> bool:
    """Whether two event names meet: equal, or one a pattern (``a.any``) the other matches."""
    if first == second:
        return True
    try:
        if is_pattern(first):
            return EventPattern(first).matches(second)
        if is_pattern(second):
            return EventPattern(second).matches(first)
    except ValueError:  # an empty segment: nothing the parser gives, but never a crash
        return False
    return False


def is_pattern(name: str) -> bool:
    """Whether *name* is an ``on`` pattern with a wildcard segment (``order.any``)."""
    return any(segment in WILDCARDS for segment in name.split("."))


def _contains(span: Span, line: int, column: int) -> bool:
    """Whether (*line*, *column*) is in *span* or just past its end (where a cursor stands
    after typing the name)."""
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def _innermost(found: Iterable[_T], span_of: Callable[[_T], Span]) -> _T | None:
    """The one of *found* whose span starts last (the innermost of nested ones)."""
    best: _T | None = None
    best_start = (0, 0)
    for item in found:
        span = span_of(item)
        if best is None or (span.line, span.column) > best_start:
            best, best_start = item, (span.line, span.column)
    return best


def _declared_names(tree: n.Program) -> frozenset[str]:
    """Every name the program declares anywhere (variables, parameters, loop variables): a
    dotted value rooted at one is no event reference, wherever it is."""
    names = {"this"}
    for node in walk(tree):
        if isinstance(node, n.VarDecl | n.Param | n.ForIn):
            names.add(node.name)
    return frozenset(names)


class _Collector:
    """Walks a tree once, collecting occurrences and calls with the code each is in."""

    def __init__(self, sites: dict[tuple[int, int], CallSite] | None,
                 declared: frozenset[str]) -> None:
        self.sites = sites
        self.declared = declared
        self.occurrences: list[Occurrence] = []
        self.calls: list[CallFact] = []

    def program(self, tree: n.Program) -> None:
        for item in tree.body:
            if isinstance(item, n.OnHandler):
                self.handler(item, "")
            elif isinstance(item, n.EntityDecl):
                for handler in item.handlers:
                    self.handler(handler, item.name)
                for field in item.fields:
                    self.body(field, item.name)
                if item.realize is not None:
                    self.body(item.realize, f"{item.name}: realize")
            else:
                self.body(item, "top level")

    def handler(self, handler: n.OnHandler, owner: str) -> None:
        pattern = handler.pattern.dotted
        where = f"{owner}: on {pattern}" if owner else f"on {pattern}"
        self.occurrences.append(Occurrence(pattern, handler.pattern.span, "handler", where))
        for statement in handler.body:
            self.body(statement, where)

    def body(self, node: n.Node, where: str) -> None:
        taken: set[int] = set()  # the handlers and tools lists read as a call's
        for found in walk(node):
            if isinstance(found, n.Emit):
                service = service_for_event(found.event.dotted)
                if service is not None:
                    self.call(service, found.event.span, found.span, found.payload, where,
                              taken)
                else:
                    self.occurrences.append(Occurrence(found.event.dotted, found.event.span,
                                                       "emit", where))
            elif isinstance(found, n.ServiceCall):
                start = found.span
                keyword = Span(start.line, start.column, start.line,
                               start.column + len(found.service))
                self.call(found.service, keyword, start, found.argument, where, taken)
            elif isinstance(found, n.Property) and id(found) not in taken \
                    and found.key in ("handlers", "tools"):
                kind: OccurrenceKind = "named" if found.key == "handlers" else "tool"
                for event, span in _entries(found.value):
                    self.occurrences.append(Occurrence(event, span, kind, where))

    def call(self, service: str, keyword: Span, start: Span, argument: n.Node | None,
             where: str, taken: set[int]) -> None:
        label = f"{service} call at line {keyword.line}"
        site = None if self.sites is None else self.sites.get((start.line, start.column))
        completions: list[str] = []
        properties = argument.properties if isinstance(argument, n.ObjectLit) else ()
        for prop in properties:
            if prop.key in ("handlers", "tools"):
                taken.add(id(prop))
                if not isinstance(prop.value, n.ArrayLit):
                    continue
                for element in prop.value.elements:
                    if isinstance(element, n.LabeledElement):
                        path = n.dotted_path(element.value) \
                            if isinstance(element.value, n.Name | n.Member) else None
                        if prop.key == "handlers" and path is not None and len(path) > 1:
                            self.occurrences.append(Occurrence(
                                ".".join(path), element.value.span, "parameter", where, label,
                                element.label))
                        continue
                    entry = _entry(element)
                    if entry is None:
                        continue
                    kind: OccurrenceKind = "completion" if prop.key == "handlers" else "tool"
                    if kind == "completion":
                        completions.append(entry[0])
                    self.occurrences.append(Occurrence(entry[0], entry[1], kind, where, label))
                continue
            event = self.parameter_event(prop, site)
            if event is not None:
                self.occurrences.append(Occurrence(event, prop.value.span, "parameter", where,
                                                   label, prop.key))
        self.calls.append(CallFact(service, keyword, where, tuple(completions)))

    def parameter_event(self, prop: n.Property, site: CallSite | None) -> str | None:
        """The event *prop* names as a parallel handler parameter, if it is one."""
        if not isinstance(prop.value, n.Name | n.Member):
            return None
        path = n.dotted_path(prop.value)
        if path is None or len(path) < 2:
            return None
        if site is not None:
            return dict(site.parameters.pairs).get(prop.key)
        if path[0] in self.declared or path == _NOW:
            return None
        return ".".join(path)


def _entries(value: n.Node) -> Iterator[tuple[str, Span]]:
    """The events an array of handlers or tools names, with where each is written."""
    if isinstance(value, n.ArrayLit):
        for element in value.elements:
            entry = _entry(element)
            if entry is not None:
                yield entry


def _entry(element: n.ArrayElement) -> tuple[str, Span] | None:
    """An unlabelled entry of a handlers or tools list as an event name and its place."""
    found = n.listed_event(element)
    return None if found is None else (found[0], found[1].span)
