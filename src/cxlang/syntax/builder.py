"""Parser callbacks that build the AST while the LALR parser reduces.

Lark calls `AstBuilder.<rule or alias>(children)` at each reduction, with every token
kept, so spans come straight from the first and last child. Unit rules use
`operator.itemgetter(0)`, which costs almost nothing per reduction.

Errors found here (a bad escape, assigning to a call, two `realize`s) do not stop the
parse: they go to the per-parse sink in `REPORTS` and the parser raises them with the
syntax errors at the end.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from operator import itemgetter
from typing import Any, NamedTuple, cast

from .lexer import Tok
from .nodes import (
    ArrayElement,
    ArrayLit,
    Assign,
    AssignOp,
    AssignTarget,
    Binary,
    BinaryOp,
    BoolLit,
    Break,
    Call,
    Conditional,
    Continue,
    Emit,
    EntityDecl,
    EntityKind,
    EventName,
    EventWithPayload,
    Expr,
    ExprStmt,
    For,
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
    OptionalChain,
    Param,
    Property,
    Realize,
    Return,
    SelfRef,
    ServiceCall,
    ServiceName,
    Span,
    Stmt,
    StringLit,
    Unary,
    UnaryOp,
    Update,
    UpdateOp,
    VarDecl,
    While,
    dotted_path,
    is_optional_chain,
)

Children = list[Any]

# (span, message) pairs reported by callbacks during the current parse.
REPORTS: ContextVar[list[tuple[Span, str]]] = ContextVar("cx_syntax_reports")

_PRECEDENCE = {
    "??": 1, "||": 1,
    "&&": 2,
    "==": 3, "!=": 3,
    "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5,
    "*": 6, "/": 6, "%": 6,
}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|u|x[0-9A-Fa-f]{2}|x|.)")
# Python refuses to read (or print) a decimal integer longer than this (its guard against
# quadratic conversions, sys.get_int_max_str_digits(), 4,300 by default): a CX literal that
# long is refused with a diagnostic rather than reaching int() and its ValueError.
MAX_INT_DIGITS = 4300


def report(span: Span, message: str) -> None:
    REPORTS.get().append((span, message))


class Block(NamedTuple):
    """A `{ ... }` body: statements plus the span of the braces (not an AST node)."""

    body: tuple[Stmt, ...]
    span: Span


def fold_binary(items: list[Any]) -> Expr:
    """Turn `[e0, op, e1, op, e2, ...]` into a left-associative tree by precedence.

    `??` next to `||` or `&&` is refused, as JavaScript refuses it: which one applies first
    is anybody's guess, and parentheses say it.
    """
    operands: list[Expr] = [items[0]]
    ops: list[Tok] = []
    logical: Tok | None = None  # the first of ?? || && (precedence 1 and 2), if any
    mixed = False

    def reduce() -> None:
        right = operands.pop()
        left = operands.pop()
        op = ops.pop()
        operands.append(
            Binary(cast(BinaryOp, op.value), left, right, _join(left.span, right.span))
        )

    for k in range(1, len(items), 2):
        op: Tok = items[k]
        prec = _PRECEDENCE[op.value]
        if prec <= 2 and not mixed:
            if logical is None:
                logical = op
            elif (op.value == "??") != (logical.value == "??"):
                first, second = logical.value, op.value
                report(op.span, f"cannot mix '??' with '||' or '&&' without parentheses: "
                                f"write (a {first} b) {second} c or a {first} (b {second} c)")
                mixed = True
        while ops and _PRECEDENCE[ops[-1].value] >= prec:
            reduce()
        ops.append(op)
        operands.append(items[k + 1])
    while ops:
        reduce()
    return operands[0]


def decode_string(tok: Tok) -> str:
    """The value of a string literal token, reporting unknown escapes."""
    raw = tok.value[1:-1]
    if "\\" not in raw:
        return raw
    span = tok.span

    def replace(m: re.Match[str]) -> str:
        esc = m.group(1)
        if len(esc) == 5:
            return chr(int(esc[1:], 16))
        known = _ESCAPES.get(esc)
        if known is not None:
            return known
        if len(esc) == 3 and esc[0] == "x":
            return chr(int(esc[1:], 16))
        column = span.column + 1 + m.start()
        where = Span(span.line, column, span.line, column + 1 + len(esc))
        if esc == "u":
            report(where, "bad escape '\\u' in string: expected 4 hex digits, like \\u00e9")
        elif esc == "x":
            report(where, "bad escape '\\x' in string: expected 2 hex digits, like \\x41")
        else:
            report(where, f"unknown escape '\\{esc}' in string")
        return esc

    return _ESCAPE_RE.sub(replace, raw)


def _number(text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


_new = tuple.__new__


def _join(first: Span, last: Span) -> Span:
    """From the start of `first` to the end of `last` (hot: avoids NamedTuple.__new__)."""
    return _new(Span, (first[0], first[1], last[2], last[3]))


def _stmt_span(first: Tok, last: Any) -> Span:
    return _join(first.span, last.span)


_TARGET_VERBS = {"++": "increment", "--": "decrement"}


def _check_target(target: Expr, op: str) -> None:
    """Report a target `op` cannot store into: not a variable, property or index."""
    verb = _TARGET_VERBS.get(op, "assign to")
    side = "operand" if op in _TARGET_VERBS else "left side"
    if isinstance(target, (Name, Member, Index)) and not is_optional_chain(target):
        return
    if isinstance(target, (Member, Index, OptionalChain)):
        what = "an optional chain (a?.b)"
    else:
        what = "'self'" if isinstance(target, SelfRef) else "this expression"
    report(target.span, f"cannot {verb} {what}: the {side} of '{op}' must be a variable, "
                        "a property (a.b) or an index (a[i])")


def _assignment(c: Children, end: Span) -> Assign:
    """`target op value` (c[0] to c[2]) ending at *end*."""
    target: Expr = c[0]
    op: Tok = c[1]
    _check_target(target, op.value)
    return Assign(cast(AssignTarget, target), cast(AssignOp, op.value), c[2],
                  _join(target.span, end))


class AstBuilder:
    """One method (or itemgetter) per rule/alias of cx.lark; names must match."""

    # ---- unit rules: pass the only child through
    item = entity_member = stmt = unary = binary_first = service = statement_word = postfix = \
        element = kw = (
        type_name
    ) = assign_op = for_init = for_test = itemgetter(0)

    # ---- lists
    @staticmethod
    def items_empty(c: Children) -> list[Any]:
        return []

    @staticmethod
    def items_more(c: Children) -> list[Any]:
        lst: list[Any] = c[0]
        if c[1] is not None:  # empty statements build nothing
            lst.append(c[1])
        return lst

    @staticmethod
    def list_first(c: Children) -> list[Any]:
        return [c[0]]

    @staticmethod
    def list_more(c: Children) -> list[Any]:
        lst: list[Any] = c[0]
        lst.append(c[2])
        return lst

    @staticmethod
    def start(c: Children) -> list[Any]:
        return cast(list[Any], c[0])

    # ---- declarations
    @staticmethod
    def entity_decl(c: Children) -> EntityDecl:
        kind_tok: Tok = c[0]
        name_tok: Tok = c[1]
        fields: list[VarDecl] = []
        handlers: list[OnHandler] = []
        realize: Realize | None = None
        for m in c[3]:
            if isinstance(m, OnHandler):
                handlers.append(m)
            elif isinstance(m, VarDecl):
                fields.append(m)
            elif realize is None:
                realize = m
            else:
                report(
                    Span(m.span.line, m.span.column, m.span.line, m.span.column + 7),
                    f"'{name_tok.value}' already has a realize block "
                    f"(line {realize.span.line}); an entity has at most one",
                )
        return EntityDecl(
            cast(EntityKind, kind_tok.value),
            name_tok.value,
            tuple(fields),
            realize,
            tuple(handlers),
            name_tok.span,
            _join(kind_tok.span, c[4].span),
        )

    @staticmethod
    def realize_decl(c: Children) -> Realize:
        block: Block = c[-1]
        params = tuple(c[2]) if len(c) > 4 else ()
        return Realize(params, block.body, _join(c[0].span, block.span))

    @staticmethod
    def param(c: Children) -> Param:
        first: Tok = c[0]
        if len(c) == 1:
            return Param(first.value, None, first.span)
        return Param(first.value, c[2].value, _join(first.span, c[2].span))

    @staticmethod
    def on_decl(c: Children) -> OnHandler:
        is_async = type(c[1]) is Tok
        k = 2 if is_async else 1
        pattern: EventName = c[k]
        block: Block = c[-1]
        param = None
        if len(c) - k == 5:  # pattern ( NAME ) block
            tok: Tok = c[k + 2]
            param = Param(tok.value, None, tok.span)
        return OnHandler(pattern, param, is_async, block.body, _join(c[0].span, block.span))

    @staticmethod
    def event_first(c: Children) -> EventName:
        tok: Tok = c[0]
        return EventName((tok.value,), tok.span)

    @staticmethod
    def event_more(c: Children) -> EventName:
        prev: EventName = c[0]
        tok: Tok = c[2]
        return EventName((*prev.segments, tok.value), _join(prev.span, tok.span))

    # ---- statements
    @staticmethod
    def block(c: Children) -> Block:
        return Block(tuple(c[1]), _join(c[0].span, c[2].span))

    @staticmethod
    def var_stmt(c: Children) -> VarDecl:
        name: Tok = c[1]
        init = c[3] if len(c) == 5 else None
        return VarDecl(name.value, init, name.span, _stmt_span(c[0], c[-1]))

    @staticmethod
    def assign_stmt(c: Children) -> Assign:
        return _assignment(c, c[3].span)

    @staticmethod
    def assignment(c: Children) -> Assign:
        """An assignment without its `;`: a C-style loop's step."""
        value: Expr = c[2]
        return _assignment(c, value.span)

    @staticmethod
    def expr_stmt(c: Children) -> ExprStmt:
        expr: Expr = c[0]
        return ExprStmt(expr, _join(expr.span, c[1].span))

    @staticmethod
    def if_stmt(c: Children) -> If:
        then: Block = c[4]
        if len(c) == 5:
            return If(c[2], then.body, (), _join(c[0].span, then.span))
        other = c[6]
        if isinstance(other, Block):
            return If(c[2], then.body, other.body, _join(c[0].span, other.span))
        return If(c[2], then.body, (other,), _join(c[0].span, other.span))

    @staticmethod
    def while_stmt(c: Children) -> While:
        block: Block = c[4]
        return While(c[2], block.body, _join(c[0].span, block.span))

    @staticmethod
    def for_in(c: Children) -> ForIn:
        declares = len(c) == 8  # for (var name in ...)
        name: Tok = c[3] if declares else c[2]
        block: Block = c[-1]
        return ForIn(name.value, c[-3], block.body, declares, name.span,
                     _join(c[0].span, block.span))

    @staticmethod
    def for_loop(c: Children) -> For:
        block: Block = c[7]
        return For(c[2], c[3], c[5], block.body, _join(c[0].span, block.span))

    @staticmethod
    def nothing(c: Children) -> None:
        return None

    @staticmethod
    def step_expr(c: Children) -> ExprStmt:
        expr: Expr = c[0]
        return ExprStmt(expr, expr.span)

    @staticmethod
    def return_stmt(c: Children) -> Return:
        return Return(c[1] if len(c) == 3 else None, _stmt_span(c[0], c[-1]))

    @staticmethod
    def break_stmt(c: Children) -> Break:
        return Break(_stmt_span(c[0], c[1]))

    @staticmethod
    def continue_stmt(c: Children) -> Continue:
        return Continue(_stmt_span(c[0], c[1]))

    @staticmethod
    def emit_stmt(c: Children) -> Emit:
        payload = None if len(c) == 3 else c[-2]
        return Emit(c[1], payload, _stmt_span(c[0], c[-1]))

    @staticmethod
    def empty_stmt(c: Children) -> None:
        return None

    # ---- expressions
    @staticmethod
    def expr(c: Children) -> Expr:
        x = c[0]
        if type(x) is list:
            return fold_binary(x)
        return cast(Expr, x)

    @staticmethod
    def conditional(c: Children) -> Conditional:
        test = AstBuilder.expr(c)
        orelse: Expr = c[4]
        return Conditional(test, c[2], orelse, _join(test.span, orelse.span))

    @staticmethod
    def binary_more(c: Children) -> list[Any]:
        left = c[0]
        if type(left) is list:
            left.append(c[1])
            left.append(c[2])
            return left
        return c

    @staticmethod
    def unary_op(c: Children) -> Unary:
        operand: Expr = c[1]
        return Unary(cast(UnaryOp, c[0].value), operand, _join(c[0].span, operand.span))

    @staticmethod
    def prefix_update(c: Children) -> Update:
        op: Tok = c[0]
        target: Expr = c[1]
        _check_target(target, op.value)
        return Update(cast(UpdateOp, op.value), True, cast(AssignTarget, target),
                      _join(op.span, target.span))

    @staticmethod
    def postfix_update(c: Children) -> Update:
        target: Expr = c[0]
        op: Tok = c[1]
        _check_target(target, op.value)
        return Update(cast(UpdateOp, op.value), False, cast(AssignTarget, target),
                      _join(target.span, op.span))

    @staticmethod
    def service_call(c: Children) -> ServiceCall:
        arg: Expr = c[1]
        return ServiceCall(cast(ServiceName, c[0].value), arg, _join(c[0].span, arg.span))

    @staticmethod
    def name(c: Children) -> Name:
        tok: Tok = c[0]
        return Name(tok.value, tok.span)

    @staticmethod
    def number(c: Children) -> NumberLit:
        tok: Tok = c[0]
        text = tok.value
        if len(text) > MAX_INT_DIGITS and text.isdigit():
            report(tok.span, f"integer literal too long: {len(text):,} digits, at most "
                             f"{MAX_INT_DIGITS:,}")
            return NumberLit(0, tok.span)
        return NumberLit(_number(text), tok.span)

    @staticmethod
    def string(c: Children) -> StringLit:
        tok: Tok = c[0]
        return StringLit(decode_string(tok), tok.span)

    @staticmethod
    def true(c: Children) -> BoolLit:
        return BoolLit(True, c[0].span)

    @staticmethod
    def false(c: Children) -> BoolLit:
        return BoolLit(False, c[0].span)

    @staticmethod
    def null(c: Children) -> NullLit:
        return NullLit(c[0].span)

    @staticmethod
    def self_ref(c: Children) -> SelfRef:
        return SelfRef(c[0].span)

    @staticmethod
    def paren(c: Children) -> Expr:
        inner: Expr = c[1]
        if is_optional_chain(inner):
            return OptionalChain(inner, _join(c[0].span, c[2].span))
        return inner

    @staticmethod
    def new(c: Children) -> New:
        name: Tok = c[1]
        args = tuple(c[3]) if len(c) > 4 else ()
        return New(name.value, args, name.span, _join(c[0].span, c[-1].span))

    @staticmethod
    def new_with_object(c: Children) -> New:
        """`new T { name: "x" }`, as C#'s object initialisers read: `new T({ name: "x" })`."""
        name: Tok = c[1]
        properties: ObjectLit = c[2]
        return New(name.value, (properties,), name.span, _join(c[0].span, properties.span))

    @staticmethod
    def service_member(c: Children) -> Member:
        root: Tok = c[0]
        tok: Tok = c[2]
        return Member(Name(root.value, root.span), tok.value, tok.span, False,
                      _join(root.span, tok.span))

    @staticmethod
    def member(c: Children) -> Member:
        target: Expr = c[0]
        tok: Tok = c[2]
        optional = c[1].type == "QDOT"
        return Member(target, tok.value, tok.span, optional, _join(target.span, tok.span))

    @staticmethod
    def index(c: Children) -> Index:
        target: Expr = c[0]
        optional = len(c) == 5  # target ?. [ index ]
        return Index(target, c[-2], optional, _join(target.span, c[-1].span))

    @staticmethod
    def call(c: Children) -> Call:
        callee: Expr = c[0]
        args = tuple(c[2]) if len(c) > 3 else ()
        return Call(callee, args, _join(callee.span, c[-1].span))

    @staticmethod
    def object(c: Children) -> ObjectLit:
        props = tuple(c[1]) if len(c) > 2 else ()
        return ObjectLit(props, _join(c[0].span, c[-1].span))

    @staticmethod
    def prop(c: Children) -> Property:
        key: Tok = c[0]
        value: Expr = c[2]
        text = decode_string(key) if key.type == "STRING" else key.value
        return Property(text, value, key.span, _join(key.span, value.span))

    @staticmethod
    def array(c: Children) -> ArrayLit:
        elements: tuple[ArrayElement, ...] = tuple(c[1]) if len(c) > 2 else ()
        return ArrayLit(elements, _join(c[0].span, c[-1].span))

    @staticmethod
    def labeled(c: Children) -> LabeledElement:
        label: Tok = c[0]
        value: Expr = c[2]
        return LabeledElement(label.value, value, label.span, _join(label.span, value.span))

    @staticmethod
    def event_payload(c: Children) -> EventWithPayload:
        event: Expr = c[0]
        payload: ObjectLit = c[1]
        if dotted_path(event) is None:
            report(
                event.span,
                "expected an event name (like done or analysis.done) before '{'",
            )
        return EventWithPayload(event, payload, _join(event.span, payload.span))
