"""The CX abstract syntax tree.

Nodes are frozen, slotted dataclasses so the compiler can hash them, share them between
passes and never mutate them by accident. Children are tuples, never lists. Every node
carries a `span` (its last field) so the compiler can point semantic errors at source.

Dotted names in expressions (`analytics.complete`, `event.result`) stay ordinary `Name` +
`Member` chains: only the compiler knows from scopes whether the root is a variable or the
whole chain is an event reference. `dotted_path()` reads such a chain back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias


class Span(NamedTuple):
    """A source range, 1-based; `end_column` is the column just past the last character.

    A NamedTuple rather than a dataclass: the parser makes one per token, and tuple
    construction is several times cheaper.
    """

    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        """The span from the start of `self` to the end of `other`."""
        return Span(self[0], self[1], other[2], other[3])


class Node:
    """Base of every AST node (for isinstance checks and typing of `span`)."""

    __slots__ = ()
    span: Span


ServiceName: TypeAlias = Literal[
    "think", "learn", "infer", "generate", "chat", "adapt", "is", "not", "iam", "await",
    "execute",
]
BinaryOp: TypeAlias = Literal[
    "??", "||", "&&", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%"
]
UnaryOp: TypeAlias = Literal["!", "-"]
UpdateOp: TypeAlias = Literal["++", "--"]
AssignOp: TypeAlias = Literal["=", "+=", "-=", "*=", "/=", "%="]
EntityKind: TypeAlias = Literal["conscious", "object"]

SERVICE_NAMES: frozenset[str] = frozenset(
    ("think", "learn", "infer", "generate", "chat", "adapt", "is", "not", "iam", "await",
     "execute")
)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Name(Node):
    """An identifier in expression position (a variable, or the root of a dotted name)."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class SelfRef(Node):
    """`self`: the current entity instance."""

    span: Span


@dataclass(frozen=True, slots=True)
class NumberLit(Node):
    """`123` is an int; `1.5`, `1.` and `1e3` are floats."""

    value: int | float
    span: Span


@dataclass(frozen=True, slots=True)
class StringLit(Node):
    """A string literal with its escapes already processed."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class BoolLit(Node):
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class NullLit(Node):
    span: Span


@dataclass(frozen=True, slots=True)
class Property(Node):
    """`key: value` in an object literal; `key` is unquoted text either way."""

    key: str
    value: Expr
    key_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class ObjectLit(Node):
    """`{ a: 1, "b c": 2 }`; properties in source order (duplicates are kept)."""

    properties: tuple[Property, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class LabeledElement(Node):
    """`label: expr` inside an array; only meaningful in `handlers: [...]`."""

    label: str
    value: Expr
    label_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class EventWithPayload(Node):
    """`done { tag: "x" }` inside an array: a handler event with a custom payload.

    `event` is guaranteed by the parser to be a `Name`/`Member` chain (see `dotted_path`).
    """

    event: Expr
    payload: ObjectLit
    span: Span


@dataclass(frozen=True, slots=True)
class ArrayLit(Node):
    elements: tuple[ArrayElement, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: UnaryOp
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """A binary operation; `&&`, `||` and `??` short-circuit (the compiler's business)."""

    op: BinaryOp
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    """`test ? then : orelse`; only the chosen branch is evaluated."""

    test: Expr
    then: Expr
    orelse: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Update(Node):
    """`++x`, `x--`, ...: `target` is a `Name`, `Member` or `Index` (checked); its value is
    the new number for a prefix operator, the old one for a postfix one."""

    op: UpdateOp
    prefix: bool
    target: AssignTarget
    span: Span


@dataclass(frozen=True, slots=True)
class Member(Node):
    """`target.name`, or `target?.name` when `optional`; `name` may be a reserved word
    (`e.is`, `chat.complete`)."""

    target: Expr
    name: str
    name_span: Span
    optional: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Index(Node):
    """`target[index]`, or `target?.[index]` when `optional`."""

    target: Expr
    index: Expr
    optional: bool
    span: Span


@dataclass(frozen=True, slots=True)
class OptionalChain(Node):
    """A chain with `?.` in it, in parentheses: they end the chain, so the null it may give
    is not skipped past by what follows (`(a?.b).c` reads `c` of that null)."""

    expression: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Call(Node):
    """`callee(args)`; the compiler decides what is callable (`print` is a builtin). A method
    call on a value, `a?.m(x)`, is optional when its callee `Member` is."""

    callee: Expr
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class New(Node):
    """`new T(args)`: instantiate the entity named `type_name`."""

    type_name: str
    args: tuple[Expr, ...]
    type_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class ServiceCall(Node):
    """`think {...}`, `learn self`, `await { durationMs: 5 }`.

    Usable as statement (inside `ExprStmt`: fire and forget) or as expression (wait for
    the result). `argument` is usually an `ObjectLit` but may be any unary-level operand.
    """

    service: ServiceName
    argument: Expr
    span: Span


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class EventName(Node):
    """A literal dotted event name (`emit` target, `on` pattern); segments may be `any`."""

    segments: tuple[str, ...]
    span: Span

    @property
    def dotted(self) -> str:
        return ".".join(self.segments)


@dataclass(frozen=True, slots=True)
class VarDecl(Node):
    """`var name;` or `var name = init;` (also an entity field default)."""

    name: str
    init: Expr | None
    name_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class Assign(Node):
    """`target op value;` where target is a `Name`, `Member` or `Index` (checked)."""

    target: AssignTarget
    op: AssignOp
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class ExprStmt(Node):
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class If(Node):
    """`if (c) {...} else ...`; `else if` is an `If` alone in `orelse` (like Python's ast)."""

    condition: Expr
    body: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class While(Node):
    condition: Expr
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ForIn(Node):
    """`for (var name in iterable) {...}`, or `for (name in iterable)` (no `declares`): the
    loop assigns a variable declared before."""

    name: str
    iterable: Expr
    body: tuple[Stmt, ...]
    declares: bool
    name_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class For(Node):
    """`for (init; condition; step) {...}`; any of the three may be missing (None). The step
    is an assignment or an expression statement (`i++`), run after the body and on
    `continue`."""

    init: VarDecl | Assign | None
    condition: Expr | None
    step: Assign | ExprStmt | None
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Return(Node):
    value: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Break(Node):
    span: Span


@dataclass(frozen=True, slots=True)
class Continue(Node):
    span: Span


@dataclass(frozen=True, slots=True)
class Emit(Node):
    """`emit a.b;`, `emit a.b {...};` or `emit a.b, expr;` (payload None for the first)."""

    event: EventName
    payload: Expr | None
    span: Span


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Param(Node):
    """A parameter: `event`, `self: conscious`, `cfg: object`."""

    name: str
    type_name: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class OnHandler(Node):
    """`on [async] pattern [(param)] {...}`, at top level or inside an entity."""

    pattern: EventName
    param: Param | None
    is_async: bool
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Realize(Node):
    """An entity's `realize(params) {...}` constructor body."""

    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class EntityDecl(Node):
    """`conscious Name {...}` or `object Name {...}`.

    `fields` are `var` defaults (evaluated per instance, before the `new` properties are
    applied); at most one `realize` (a second one is a syntax error).
    """

    kind: EntityKind
    name: str
    fields: tuple[VarDecl, ...]
    realize: Realize | None
    handlers: tuple[OnHandler, ...]
    name_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class Program(Node):
    """A whole file: top-level statements and declarations in source order."""

    body: tuple[TopLevel, ...]
    filename: str
    span: Span


Expr: TypeAlias = (
    Name | SelfRef | NumberLit | StringLit | BoolLit | NullLit | ObjectLit | ArrayLit
    | Unary | Binary | Conditional | Update | Member | Index | OptionalChain | Call | New
    | ServiceCall
)
ArrayElement: TypeAlias = Expr | LabeledElement | EventWithPayload
AssignTarget: TypeAlias = Name | Member | Index
Stmt: TypeAlias = (
    VarDecl | Assign | ExprStmt | If | While | ForIn | For | Return | Break | Continue | Emit
)
Decl: TypeAlias = EntityDecl | OnHandler
TopLevel: TypeAlias = Stmt | Decl

EXPR_TYPES: tuple[type[Node], ...] = (
    Name, SelfRef, NumberLit, StringLit, BoolLit, NullLit, ObjectLit, ArrayLit,
    Unary, Binary, Conditional, Update, Member, Index, OptionalChain, Call, New, ServiceCall,
)
STMT_TYPES: tuple[type[Node], ...] = (
    VarDecl, Assign, ExprStmt, If, While, ForIn, For, Return, Break, Continue, Emit,
)


def dotted_path(expr: Expr) -> tuple[str, ...] | None:
    """`a.b.c` as `("a", "b", "c")`; None if `expr` is not a plain Name/Member chain (`a?.b`
    is none)."""
    parts: list[str] = []
    node: Expr = expr
    while isinstance(node, Member):
        if node.optional:
            return None
        parts.append(node.name)
        node = node.target
    if not isinstance(node, Name):
        return None
    parts.append(node.name)
    parts.reverse()
    return tuple(parts)


def event_path(node: Node) -> tuple[str, ...] | None:
    """An entry of a handlers or tools list as an event name: `a.b.c` (or `self.b.c`, or a
    chain rooted at a statement word) as `("a", "b", "c")`; None for anything else."""
    parts: list[str] = []
    while isinstance(node, Member):
        if node.optional:
            return None
        parts.append(node.name)
        node = node.target
    if isinstance(node, Name):
        parts.append(node.name)
    elif isinstance(node, SelfRef):
        parts.append("self")
    else:
        return None
    parts.reverse()
    return tuple(parts)


EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def listed_event(element: Node) -> tuple[str, Node] | None:
    """An unlabelled entry of a handlers or tools list as the event it names, and the node that
    names it: a dotted name (see :func:`event_path`) or a string that is an event name, with or
    without a payload of its own; None for anything else (a labelled entry included)."""
    if isinstance(element, LabeledElement):
        return None
    target = element.event if isinstance(element, EventWithPayload) else element
    if isinstance(target, StringLit):
        return (target.value, target) if EVENT_NAME.fullmatch(target.value) else None
    path = event_path(target)
    return None if path is None else (".".join(path), target)


def is_optional_chain(expr: Expr) -> bool:
    """Does the chain of reads, indexes and method calls that ends in `expr` have a `?.`?"""
    node: Expr = expr
    while True:
        if isinstance(node, Call) and isinstance(node.callee, Member):
            node = node.callee
        if not isinstance(node, Member | Index):
            return False
        if node.optional:
            return True
        node = node.target
