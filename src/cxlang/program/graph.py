"""A program's event graph, read from its source without running it: who emits what, which
handlers a service call fans out to and where its results join, what a model may call.

The facts come from the compiler (each call's parallel handler parameters, decided as they are
when the program runs) and the syntax tree (emits, handlers lists, tools, ``on`` patterns);
the services' default completion and error events from the registry. Rendered as Mermaid
(it draws on GitHub) or as Graphviz's DOT.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..compiler import compile_program
from ..compiler.sites import CallSite
from ..runtime.events import EventPattern
from ..services.registry import SERVICES
from ..syntax import nodes as n
from ..syntax import parse

__all__ = ["Edge", "EventGraph", "Vertex", "event_graph", "walk"]

VertexKind = Literal["program", "handler", "call", "event"]
EdgeKind = Literal["emits", "calls", "parallel", "joins", "fails", "tool", "delivers",
                   "creates"]
_AI_EVENTS = frozenset({"think", "learn", "infer", "generate", "chat", "adapt"})


@dataclass(frozen=True, slots=True)
class Vertex:
    id: str
    label: str
    kind: VertexKind


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind
    label: str = ""


@dataclass
class EventGraph:
    """Vertices (the program, handlers, service calls, events) and the edges between them."""

    vertices: dict[str, Vertex] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    event_ids: dict[str, str] = field(default_factory=dict)

    def add(self, vertex: Vertex) -> str:
        self.vertices.setdefault(vertex.id, vertex)
        return vertex.id

    def event(self, name: str) -> str:
        known = self.event_ids.get(name)
        if known is None:
            known = self.event_ids[name] = self.add(Vertex(f"e{len(self.event_ids)}", name,
                                                           "event"))
        return known

    def link(self, source: str, target: str, kind: EdgeKind, label: str = "") -> None:
        edge = Edge(source, target, kind, label)
        if edge not in self.edges:
            self.edges.append(edge)

    def mermaid(self) -> str:
        lines = ["flowchart LR"]
        shapes = {"program": '(["{}"])', "handler": '["{}"]', "call": '{{{{"{}"}}}}',
                  "event": '("{}")'}
        for vertex in self.vertices.values():
            text = vertex.label.replace('"', "#quot;")
            lines.append(f"    {vertex.id}{shapes[vertex.kind].format(text)}")
        arrows = {"emits": "-->", "calls": "-->", "parallel": "==>", "joins": "-->",
                  "fails": "-.->", "tool": "-.->", "delivers": "-->", "creates": "-->"}
        for edge in self.edges:
            label = _edge_label(edge)
            arrow = arrows[edge.kind]
            middle = f"{arrow}|{label}|" if label else arrow
            lines.append(f"    {edge.source} {middle} {edge.target}")
        lines.append("    classDef event fill:#eef,stroke:#669")
        lines.append("    classDef call fill:#ffe,stroke:#996")
        for kind in ("event", "call"):
            ids = [v.id for v in self.vertices.values() if v.kind == kind]
            if ids:
                lines.append(f"    class {','.join(ids)} {kind}")
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        shapes = {"program": "oval", "handler": "box", "call": "hexagon", "event": "ellipse"}
        fills = {"program": "white", "handler": "white", "call": "#ffffee", "event": "#eeeeff"}
        lines = ["digraph cx {", "    rankdir=LR;", '    node [fontname="Helvetica"];',
                 '    edge [fontname="Helvetica", fontsize=10];']
        for v in self.vertices.values():
            lines.append(f'    {v.id} [label={_quoted(v.label)}, shape={shapes[v.kind]}, '
                         f'style=filled, fillcolor="{fills[v.kind]}"];')
        styles = {"parallel": "bold", "fails": "dashed", "tool": "dotted"}
        for e in self.edges:
            attributes = [f"label={_quoted(_edge_label(e))}"] if _edge_label(e) else []
            if e.kind in styles:
                attributes.append(f"style={styles[e.kind]}")
            lines.append(f"    {e.source} -> {e.target} [{', '.join(attributes)}];")
        lines.append("}")
        return "\n".join(lines) + "\n"


def event_graph(text: str, filename: str = "<input>") -> EventGraph:
    """The event graph of the CX program *text*; raises ``CxError`` if it does not compile."""
    sites = {(s.span.line, s.span.column): s for s in compile_program(text, filename).call_sites}
    tree = parse(text, filename)
    builder = _Builder(sites)
    top = builder.graph.add(Vertex("program", "top level", "program"))
    for item in tree.body:
        if isinstance(item, n.EntityDecl) and item.realize is not None:
            span = item.realize.span
            builder.realizers[item.name] = builder.graph.add(
                Vertex(f"r{span.line}_{span.column}", f"{item.name}: realize", "handler"))
    for item in tree.body:
        if isinstance(item, n.OnHandler):
            builder.handler(item, "")
        elif isinstance(item, n.EntityDecl):
            builder.entity(item)
        else:
            builder.body(item, top)
    builder.subscribe()
    graph = builder.graph
    if not any(top in (edge.source, edge.target) for edge in graph.edges):
        del graph.vertices[top]  # a program all of whose work is in its handlers
    return graph


class _Builder:
    def __init__(self, sites: dict[tuple[int, int], CallSite]) -> None:
        self.sites = sites
        self.graph = EventGraph()
        self.patterns: list[tuple[EventPattern, str]] = []  # each handler's, for delivery
        self.realizers: dict[str, str] = {}  # entity type -> its realize vertex

    def handler(self, handler: n.OnHandler, owner: str) -> None:
        pattern = handler.pattern.dotted
        label = f"{owner}: on {pattern}" if owner else f"on {pattern}"
        vertex = self.graph.add(Vertex(f"h{handler.span.line}_{handler.span.column}", label,
                                       "handler"))
        self.patterns.append((EventPattern(pattern), vertex))
        for statement in handler.body:
            self.body(statement, vertex)

    def entity(self, entity: n.EntityDecl) -> None:
        for handler in entity.handlers:
            self.handler(handler, entity.name)
        if entity.realize is not None:
            for statement in entity.realize.body:
                self.body(statement, self.realizers[entity.name])

    def body(self, node: n.Node, owner: str) -> None:
        """The emits and service calls in *node* (a statement, at any depth), from *owner*."""
        for found in walk(node):
            if isinstance(found, n.Emit):
                segments = found.event.segments
                if len(segments) == 2 and segments[0] == "ai" and segments[1] in _AI_EVENTS:
                    self.call(found.span, segments[1], found.payload, owner)
                else:
                    self.graph.link(owner, self.graph.event(found.event.dotted), "emits")
            elif isinstance(found, n.ServiceCall):
                self.call(found.span, found.service, found.argument, owner)
            elif isinstance(found, n.New) and found.type_name in self.realizers:
                self.graph.link(owner, self.realizers[found.type_name], "creates")

    def call(self, span: n.Span, service: str, argument: n.Node | None, owner: str) -> None:
        call = self.graph.add(Vertex(f"c{span.line}_{span.column}",
                                     f"{service} {span.line}:{span.column}", "call"))
        self.graph.link(owner, call, "calls")
        site = self.sites.get((span.line, span.column))
        if site is not None:
            for name, event in site.parameters.pairs:
                self.graph.link(call, self.graph.event(event), "parallel", name)
        properties = argument.properties if isinstance(argument, n.ObjectLit) else ()
        completions = [e for p in properties if p.key == "handlers" for e in _entries(p.value)]
        spec = SERVICES.get(service)
        if not completions and spec is not None and spec.completion is not None:
            completions = [spec.completion]
        for event in completions:
            self.graph.link(call, self.graph.event(event), "joins")
        for event in (e for p in properties if p.key == "tools" for e in _entries(p.value)):
            self.graph.link(call, self.graph.event(event), "tool")
        if spec is not None and spec.error is not None:
            self.graph.link(call, self.graph.event(spec.error), "fails")

    def subscribe(self) -> None:
        """An edge from every event in the graph to each handler whose pattern it matches
        (``on order.any`` included); a pattern nothing here emits is an event of its own."""
        events = [v for v in self.graph.vertices.values() if v.kind == "event"]
        for pattern, handler in self.patterns:
            matched = [v.id for v in events if pattern.matches(v.label)]
            if not matched and not pattern.has_wildcard:
                matched = [self.graph.event(pattern.text)]
            for event in matched:
                self.graph.link(event, handler, "delivers")


def walk(node: n.Node) -> Iterator[n.Node]:
    """*node* and every node inside it, in source order (without recursion: a program may
    nest deeply)."""
    todo: list[object] = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, tuple):
            todo.extend(reversed(item))
        elif isinstance(item, n.Node) and dataclasses.is_dataclass(item):
            yield item
            todo.extend(reversed([getattr(item, f.name) for f in dataclasses.fields(item)]))


def _entries(value: n.Node) -> Iterator[str]:
    """The events a handlers or tools list names (the labelled entries are parameters)."""
    if not isinstance(value, n.ArrayLit):
        return
    for element in value.elements:
        found = n.listed_event(element)
        if found is not None:
            yield found[0]


def _edge_label(edge: Edge) -> str:
    if edge.kind == "parallel":
        return f"parallel: {edge.label}"
    return {"joins": "", "fails": "on failure", "tool": "tool", "creates": "new"}.get(
        edge.kind, edge.label)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
