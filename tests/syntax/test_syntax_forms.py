"""Every form of the dialect parses to the expected AST shape, with spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cxlang.syntax import Program, Span, nodes, parse
from cxlang.syntax.nodes import (
    ArrayLit,
    Assign,
    Binary,
    BoolLit,
    Break,
    Call,
    Continue,
    Emit,
    EntityDecl,
    EventWithPayload,
    ExprStmt,
    ForIn,
    If,
    Index,
    LabeledElement,
    Member,
    Name,
    New,
    NullLit,
    NumberLit,
    ObjectLit,
    OnHandler,
    Return,
    SelfRef,
    ServiceCall,
    Unary,
    VarDecl,
    While,
    dotted_path,
)


def first(source: str) -> Any:
    return parse(source).body[0]


def expr(source: str) -> Any:
    decl = first(f"var _ = {source};")
    assert isinstance(decl, VarDecl)
    return decl.init


def test_program_node() -> None:
    program = parse("var a = 1;\nprint(a);\n", "prog.cx")
    assert isinstance(program, Program)
    assert program.filename == "prog.cx"
    assert [type(n) for n in program.body] == [VarDecl, ExprStmt]
    assert program.span.line == 1


def test_empty_program_and_comments() -> None:
    assert parse("").body == ()
    assert parse("// only a comment\n/* and\n a block */\n").body == ()


def test_entity_with_realize_and_handler() -> None:
    source = (
        "conscious Agent {\n"
        "    realize(self: conscious) {\n"
        '        print("I am " + self.name);\n'
        "        learn self;\n"
        "    }\n"
        "    on user.message (event) {\n"
        "        var reply = think { prompt: event.text };\n"
        "    }\n"
        "}\n"
    )
    entity = first(source)
    assert isinstance(entity, EntityDecl)
    assert entity.kind == "conscious"
    assert entity.name == "Agent"
    assert entity.name_span == Span(1, 11, 1, 16)
    assert entity.span == Span(1, 1, 9, 2)
    assert entity.realize is not None
    (param,) = entity.realize.params
    assert (param.name, param.type_name) == ("self", "conscious")
    assert entity.realize.span.line == 2
    call, learn = entity.realize.body
    assert isinstance(call, ExprStmt) and isinstance(call.expr, Call)
    assert isinstance(learn, ExprStmt) and isinstance(learn.expr, ServiceCall)
    assert learn.expr.service == "learn" and isinstance(learn.expr.argument, SelfRef)
    (handler,) = entity.handlers
    assert handler.pattern.segments == ("user", "message")
    assert handler.param is not None and handler.param.name == "event"
    assert handler.span.line == 6


@pytest.mark.parametrize(
    ("source", "params"),
    [
        ("object C { realize() {} }", ()),
        ("object C { realize(cfg: object) {} }", (("cfg", "object"),)),
        ("object C { realize(a, b: thing,) {} }", (("a", None), ("b", "thing"))),
    ],
)
def test_realize_params(source: str, params: tuple[tuple[str, str | None], ...]) -> None:
    entity = first(source)
    assert entity.kind == "object"
    assert tuple((p.name, p.type_name) for p in entity.realize.params) == params


def test_entity_fields_and_optional_semicolons() -> None:
    entity = first("object Counter { var count = 0; var label; ; realize() { } };")
    assert [f.name for f in entity.fields] == ["count", "label"]
    assert isinstance(entity.fields[0].init, NumberLit)
    assert entity.fields[1].init is None
    assert entity.handlers == ()


@pytest.mark.parametrize(
    ("source", "segments", "param", "is_async"),
    [
        ("on analytics.complete (event) { }", ("analytics", "complete"), "event", False),
        ("on async reporting.ready (e) { }", ("reporting", "ready"), "e", True),
        ("on any.error (event) { }", ("any", "error"), "event", False),
        ("on system.start { }", ("system", "start"), None, False),
        ("on system.start () { }", ("system", "start"), None, False),
        ("on chat.complete (e) { }", ("chat", "complete"), "e", False),
        ("on await.complete { }", ("await", "complete"), None, False),
        ("on a.b.c.d (x) { }", ("a", "b", "c", "d"), "x", False),
    ],
)
def test_on_handlers(
    source: str, segments: tuple[str, ...], param: str | None, is_async: bool
) -> None:
    handler = first(source)
    assert isinstance(handler, OnHandler)
    assert handler.pattern.segments == segments
    assert handler.pattern.dotted == ".".join(segments)
    assert (handler.param.name if handler.param else None) == param
    assert handler.is_async is is_async


def test_handler_span_and_body() -> None:
    handler = first('on analytics.complete (event)  { return { words: 120, tone: "x" }; }')
    assert handler.span == Span(1, 1, 1, 69)
    assert handler.pattern.span == Span(1, 4, 1, 22)
    (ret,) = handler.body
    assert isinstance(ret, Return) and isinstance(ret.value, ObjectLit)
    assert [p.key for p in ret.value.properties] == ["words", "tone"]


def test_new_expression() -> None:
    decl = first('var a = new Agent({ name: "ada" });')
    assert isinstance(decl.init, New)
    assert decl.init.type_name == "Agent"
    assert decl.init.type_span == Span(1, 13, 1, 18)
    (arg,) = decl.init.args
    assert isinstance(arg, ObjectLit) and arg.properties[0].key == "name"
    assert expr("new Counter()").args == ()


def test_think_with_parallel_handler_parameters() -> None:
    source = """think {
    prompt: "Analyse the Q3 numbers",
    analytics: analytics.complete,
    reporting: reporting.ready,
    timeout: 5000,
    handlers: [ analysis.done, done { tag: "x" }, audit: audit.log ]
};"""
    stmt = first(source)
    assert isinstance(stmt, ExprStmt)
    call = stmt.expr
    assert isinstance(call, ServiceCall) and call.service == "think"
    obj = call.argument
    assert isinstance(obj, ObjectLit)
    keys = [p.key for p in obj.properties]
    assert keys == ["prompt", "analytics", "reporting", "timeout", "handlers"]
    analytics = obj.properties[1].value
    assert isinstance(analytics, Member)
    assert dotted_path(analytics) == ("analytics", "complete")
    assert analytics.span == Span(3, 16, 3, 34)
    handlers = obj.properties[4].value
    assert isinstance(handlers, ArrayLit)
    plain, with_payload, labeled = handlers.elements
    assert dotted_path(plain) == ("analysis", "done")  # type: ignore[arg-type]
    assert isinstance(with_payload, EventWithPayload)
    assert dotted_path(with_payload.event) == ("done",)
    assert with_payload.payload.properties[0].key == "tag"
    assert isinstance(labeled, LabeledElement)
    assert labeled.label == "audit"
    assert dotted_path(labeled.value) == ("audit", "log")  # type: ignore[arg-type]
    assert labeled.label_span == Span(6, 51, 6, 56)


@pytest.mark.parametrize(
    ("source", "event", "payload"),
    [
        ("emit a.b;", ("a", "b"), None),
        ("emit a.b { x: 1 };", ("a", "b"), ObjectLit),
        ("emit a.b, { x: 1 };", ("a", "b"), ObjectLit),
        ("emit a.b, payload;", ("a", "b"), Name),
        ('emit system.console.write { text: "hi" };', ("system", "console", "write"), ObjectLit),
        ('emit ai.generate { prompt: "x", handlers: [gen.done] };', ("ai", "generate"), ObjectLit),
        ("emit chat.complete;", ("chat", "complete"), None),
    ],
)
def test_emit(source: str, event: tuple[str, ...], payload: type | None) -> None:
    stmt = first(source)
    assert isinstance(stmt, Emit)
    assert stmt.event.segments == event
    assert stmt.event.span.column == 6
    if payload is None:
        assert stmt.payload is None
    else:
        assert isinstance(stmt.payload, payload)


@pytest.mark.parametrize(
    "service", ["think", "learn", "infer", "generate", "chat", "adapt", "is", "not", "await"]
)
def test_services_as_statements_and_expressions(service: str) -> None:
    stmt = first(f"{service} {{ data: 1 }};")
    assert isinstance(stmt, ExprStmt)
    assert isinstance(stmt.expr, ServiceCall) and stmt.expr.service == service
    assert stmt.expr.span == Span(1, 1, 1, len(service) + 13)
    value = expr(f"{service} {{ data: 1 }}")
    assert isinstance(value, ServiceCall) and isinstance(value.argument, ObjectLit)
    ret = first(f"on a.b {{ return {service} {{ x: 1 }}; }}").body[0]
    assert isinstance(ret, Return) and isinstance(ret.value, ServiceCall)


def test_is_and_not_with_handlers() -> None:
    stmt = first(
        'is { context: "x", evaluate: "y", data: { n: 1 }, condition: true, '
        "handlers: [ yes.path ] };"
    )
    assert [p.key for p in stmt.expr.argument.properties] == [
        "context", "evaluate", "data", "condition", "handlers",
    ]
    stmt = first("not { condition: false, handlers: [ no.path ] };")
    assert stmt.expr.service == "not"


def test_await_timer() -> None:
    decl = first("var t = await { durationMs: 10 };")
    assert isinstance(decl.init, ServiceCall) and decl.init.service == "await"


def test_service_with_plain_operand() -> None:
    learn = first("learn self;").expr
    assert isinstance(learn.argument, SelfRef)
    think = first("think prompt;").expr
    assert isinstance(think.argument, Name)


def test_service_word_as_event_root_in_expressions() -> None:
    value = expr("chat.complete")
    assert isinstance(value, Member) and dotted_path(value) == ("chat", "complete")
    array = expr("[ not.handled, is: is.true ]")
    assert dotted_path(array.elements[0]) == ("not", "handled")
    assert array.elements[1].label == "is"
    assert dotted_path(array.elements[1].value) == ("is", "true")


def test_print_and_calls() -> None:
    call = first("print(x);").expr
    assert isinstance(call, Call)
    assert isinstance(call.callee, Name) and call.callee.name == "print"
    assert [type(a) for a in call.args] == [Name]
    method = expr("a.b.c(1, 2,)")
    assert isinstance(method, Call) and isinstance(method.callee, Member)
    assert len(method.args) == 2
    assert isinstance(expr("f()"), Call) and expr("f()").args == ()


def test_var_declarations() -> None:
    bare, init = parse("var x; var y = 1;").body
    assert bare == VarDecl("x", None, Span(1, 5, 1, 6), Span(1, 1, 1, 7))
    assert isinstance(init, VarDecl) and init.init == NumberLit(1, Span(1, 16, 1, 17))


@pytest.mark.parametrize("op", ["=", "+=", "-=", "*=", "/=", "%="])
def test_assignment_operators(op: str) -> None:
    stmt = first(f"x {op} 2;")
    assert isinstance(stmt, Assign) and stmt.op == op
    assert stmt.target == Name("x", Span(1, 1, 1, 2))


def test_assignment_targets() -> None:
    prop, index, self_prop = parse("obj.prop = 1; arr[0] = 2; self.count += 1;").body
    assert isinstance(prop.target, Member) and prop.target.name == "prop"
    assert isinstance(index.target, Index)
    assert isinstance(self_prop.target, Member) and isinstance(self_prop.target.target, SelfRef)


def test_if_else_chain() -> None:
    stmt = first("if (x > 1 && !done || y <= 2) { a(); } else if (x == 3) { } else { b(); }")
    assert isinstance(stmt, If)
    assert isinstance(stmt.condition, Binary) and stmt.condition.op == "||"
    assert len(stmt.body) == 1
    (nested,) = stmt.orelse
    assert isinstance(nested, If)
    assert nested.body == ()
    assert len(nested.orelse) == 1
    assert first("if (a) { }").orelse == ()


def test_while_break_continue() -> None:
    stmt = first("while (i < 10) { i = i + 1; if (i == 5) { break; } continue; }")
    assert isinstance(stmt, While)
    assign, branch, cont = stmt.body
    assert isinstance(assign, Assign)
    assert isinstance(branch.body[0], Break)
    assert isinstance(cont, Continue)


def test_for_in() -> None:
    stmt = first("for (var item in items) { print(item.name); }")
    assert isinstance(stmt, ForIn)
    assert stmt.name == "item" and stmt.name_span == Span(1, 10, 1, 14)
    assert stmt.iterable == Name("items", Span(1, 18, 1, 23))
    assert len(stmt.body) == 1


def test_return_forms() -> None:
    bare, value = parse("return; return x;").body
    assert bare == Return(None, Span(1, 1, 1, 8))
    assert isinstance(value, Return) and isinstance(value.value, Name)


def test_object_and_array_literals() -> None:
    obj = expr('{ a: 1, "b c": 2, nested: { d: [1, 2.5, -3, true, false, null] }, }')
    assert isinstance(obj, ObjectLit)
    assert [p.key for p in obj.properties] == ["a", "b c", "nested"]
    assert obj.properties[1].key_span == Span(1, 17, 1, 22)
    array = obj.properties[2].value.properties[0].value
    assert isinstance(array, ArrayLit)
    kinds = [type(e) for e in array.elements]
    assert kinds == [NumberLit, NumberLit, Unary, BoolLit, BoolLit, NullLit]
    assert expr("{}") == ObjectLit((), Span(1, 9, 1, 11))
    assert expr("[]").elements == ()
    assert len(expr("[1, 2,]").elements) == 2


def test_reserved_words_as_keys_labels_and_members() -> None:
    obj = expr("{ if: 1, not: 2, on: 3 }")
    assert [p.key for p in obj.properties] == ["if", "not", "on"]
    member = expr("e.is.new")
    assert dotted_path(member) == ("e", "is", "new")


def test_string_quotes() -> None:
    assert expr("'single quotes too'").value == "single quotes too"
    assert expr('"double"').value == "double"


def test_index_and_member_chain_spans() -> None:
    value = expr("o.nested.d[1]")
    assert isinstance(value, Index)
    assert value.span == Span(1, 9, 1, 22)
    assert isinstance(value.target, Member)
    assert value.target.name_span == Span(1, 18, 1, 19)


def test_semicolon_optional_after_blocks_and_object_statements() -> None:
    program = parse(
        "on a.b { };\n"
        "if (x) { };\n"
        "think { prompt: 1 }\n"
        "emit a.b { x: 1 }\n"
        "on c.d { emit e.f { y: 2 } }\n"
    )
    kinds = [type(n) for n in program.body]
    assert kinds == [OnHandler, If, ExprStmt, Emit, OnHandler]
    assert isinstance(program.body[4].body[0], Emit)


def test_the_brief_example_parses() -> None:
    source = (Path(__file__).parent / "brief_example.cx").read_text()
    program = parse(source, "brief_example.cx")
    assert len(program.body) == 47
    assert all(isinstance(n, nodes.Node) for n in program.body)


def test_nodes_are_frozen_and_hashable() -> None:
    value = expr("a + 1")
    with pytest.raises(AttributeError):
        value.op = "-"  # type: ignore[misc]
    assert hash(value) == hash(expr("a + 1"))
