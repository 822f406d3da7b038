"""Checks of a compiled program against what the services take, before it runs.

The compiler knows the language; the services know their words and control values. This joins
the two: a literal control value a call does not take is an error at its position (``timeout:
"soon"``, a ``maxDurationMs`` below the ``minDurationMs``), and a property spelt almost like a
service word (``promt:``) is a warning, since any other property is data for the handlers and
a typo would otherwise pass without a word.

A literal ``schema:`` and the literal ``parameters:`` of ``tools:`` entries are checked as
shapes (an unknown type word like ``"strin"`` is an error, with what was probably meant), at
the place in the shape that is wrong; a literal ``retry:`` at its part that is wrong
(``attempts: 0``, ``on: ["oops"]``). The compiler records an object literal's position but
not its value, so those values are read back from the source here.
"""

from __future__ import annotations

from typing import Any

from ..compiler import CompiledProgram, compile_program
from ..compiler.sites import NOT_LITERAL, CallSite, PropertyFact
from ..services.controls import control_error, likely_meant, range_error, retry_error
from ..services.registry import ACTING
from ..services.schema import ShapeError, json_schema
from ..services.tools import TOOL_KEYS
from ..syntax import nodes as n
from ..syntax.diagnostics import CxError, CxSyntaxError, Diagnostic, SourceFile
from ..syntax.parser import parse

__all__ = ["check_program", "compile_checked"]


def compile_checked(text: str, filename: str) -> tuple[CompiledProgram, list[Diagnostic]]:
    """Compile and check *text*: the program and its warnings; raises :class:`CxError` with
    every error found."""
    program = compile_program(text, filename)
    found = check_program(program)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise CxError(errors)
    return program, found


def check_program(program: CompiledProgram) -> list[Diagnostic]:
    """Errors and warnings for the program's service calls, in source order."""
    source = program.source
    found: list[Diagnostic] = []
    for site in program.call_sites:
        literal = {fact.key: fact for fact in site.properties if fact.value is not NOT_LITERAL}
        low, high = literal.get("minDurationMs"), literal.get("maxDurationMs")
        if low is not None and high is not None:
            problem = range_error(low.value, high.value)
            if problem is not None:
                found.append(source.diagnostic(problem, high.value_span))
        for fact in site.properties:
            if fact.key in ("schema", "tools"):
                found += _shape_problems(source, site, fact)
                continue
            if fact.key == "retry" and fact.value is NOT_LITERAL:
                found += _retry_problems(source, fact)
                continue
            if fact.value is not NOT_LITERAL:
                problem = control_error(fact.key, fact.value)
                if problem is not None:
                    found.append(source.diagnostic(problem, fact.value_span))
                    continue
            meant = likely_meant(fact.key)
            if meant is not None:
                found.append(source.diagnostic(
                    f"{site.service} does not read {fact.key!r}, so it reaches the handlers "
                    f"as data; did you mean {meant!r}?", fact.key_span, "warning"))
    return sorted(found, key=Diagnostic.sort_key)


def _shape_problems(source: SourceFile, site: CallSite, fact: PropertyFact) -> list[Diagnostic]:
    """Errors in a call's literal ``schema:``, or in the ``tools:`` entries' literal
    ``parameters:`` and keys."""
    if site.service not in ACTING:
        return [source.diagnostic(f"{site.service} takes no {fact.key}:; schema: and tools: "
                                  f"are for {', '.join(ACTING)}", fact.key_span)]
    node = _value_node(source, fact.value_span)
    if fact.key == "schema":
        return _shape(source, node, "schema")
    found: list[Diagnostic] = []
    elements = node.elements if isinstance(node, n.ArrayLit) else ()
    for element in elements:
        if not isinstance(element, n.EventWithPayload):
            continue
        event = ".".join(n.dotted_path(element.event) or ())
        for prop in element.payload.properties:
            if prop.key == "parameters":
                found += _shape(source, prop.value, f"the parameters of {event}")
            elif prop.key not in TOOL_KEYS:
                found.append(source.diagnostic(
                    f"the tool {event} has {prop.key}; a tool takes description: and "
                    "parameters:", prop.key_span))
    return found


def _retry_problems(source: SourceFile, fact: PropertyFact) -> list[Diagnostic]:
    """The error in a call's ``retry:`` object, if it is a literal one, at its wrong part."""
    node = _value_node(source, fact.value_span)
    data = _literal_data(node)
    if node is None or data is NOT_LITERAL:
        return []
    problem = retry_error(data)
    if problem is None:
        return []
    key, message = problem
    return [source.diagnostic(message, _span_at(node, (key,) if key else ()))]


def _shape(source: SourceFile, node: n.Node | None, what: str) -> list[Diagnostic]:
    """The error in *node* as a shape, if it is a literal one, at the part that is wrong."""
    data = _literal_data(node)
    if node is None or data is NOT_LITERAL:
        return []
    try:
        json_schema(data, what)
    except ShapeError as exc:
        return [source.diagnostic(str(exc), _span_at(node, exc.path))]
    return []


def _value_node(source: SourceFile, span: n.Span) -> n.Node | None:
    """The expression at *span*, parsed again with its positions as in the source: the
    lines before it blank, ``var _=`` on the line just before (or before it on its line)."""
    lines = source.lines[span.line - 1:span.end_line]
    if not lines:
        return None
    text = "\n".join(lines)
    cut = len(text) - len(lines[-1]) + span.end_column - 1
    value = " " * (span.column - 1) + text[span.column - 1:cut]
    if span.line > 1:
        prefix = "\n" * (span.line - 2) + "var _=\n"
    elif span.column > len("var _="):
        prefix, value = "var _=", value[len("var _="):]
    else:
        return None
    try:
        program = parse(f"{prefix}{value};", source.name)
    except CxSyntaxError:
        return None  # the whole program parsed, so this cannot happen: no check then
    declaration = program.body[0] if program.body else None
    return declaration.init if isinstance(declaration, n.VarDecl) else None


def _literal_data(node: n.Node | None) -> Any:
    """A literal's value (objects and lists of literals too), else :data:`NOT_LITERAL`."""
    if isinstance(node, n.StringLit | n.NumberLit | n.BoolLit):
        return node.value
    if isinstance(node, n.NullLit):
        return None
    if isinstance(node, n.Unary) and node.op == "-" and isinstance(node.operand, n.NumberLit):
        return -node.operand.value
    if isinstance(node, n.ArrayLit):
        items = [_literal_data(element) for element in node.elements]
        return NOT_LITERAL if any(item is NOT_LITERAL for item in items) else items
    if isinstance(node, n.ObjectLit):
        values = {prop.key: _literal_data(prop.value) for prop in node.properties}
        return NOT_LITERAL if any(v is NOT_LITERAL for v in values.values()) else values
    return NOT_LITERAL


def _span_at(node: n.Node, path: tuple[str | int, ...]) -> n.Span:
    """Where the part of a literal at *path* (property names, list positions) is; as far
    down as the path goes."""
    for step in path:
        found: n.Node | None
        if isinstance(node, n.ObjectLit) and isinstance(step, str):
            found = next((p.value for p in node.properties if p.key == step), None)
        elif isinstance(node, n.ArrayLit) and isinstance(step, int) \
                and step < len(node.elements):
            found = node.elements[step]
        else:
            found = None
        if found is None:
            break
        node = found
    return node.span
