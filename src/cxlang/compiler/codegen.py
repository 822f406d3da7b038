"""Code generation: the CX AST to Python modules (``ast.Module``), one function per CX body.

The modules are handed on to be compiled one by one as they are done, and all run in one
namespace; see :data:`MODULE_GLOBAL_COPIES` for why there are several.

Every CX body becomes an ``async def`` (a service call may wait anywhere), every CX operation a
call into :mod:`.prelude` or the program host (``__cx__``), and every node keeps its CX line and
column, so a run-time error points at the CX source. CX variables become ``v_<name>`` and the
code runs with empty ``__builtins__``: a program can only reach what is named here.

Service calls are split at compile time (``HandlerParameterResolver`` never guesses at run
time): properties whose value is an event reference, and labelled ``handlers`` entries, become
the call's handler parameters, fixed when the program is compiled.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..runtime.mapper import ERRORS_KEY
from ..runtime.resolver import HandlerParameters
from ..syntax import nodes as n
from ..syntax.diagnostics import Diagnostic, SourceFile
from .inference import is_whole_number, whole_number_locals
from .prelude import LIBRARY
from .scopes import FunctionScope, GlobalScope, declared_names
from .sites import NOT_LITERAL, CallSite, PropertyFact

__all__ = ["EntityInfo", "HandlerInfo", "ModulePlan", "generate"]

HOST = "__cx__"
EVENT_ARG = "_event"
CONFIG_ARG = "_config"
MAIN = "cx_main"
AI_SERVICES = frozenset({"think", "learn", "infer", "generate", "chat", "adapt"})
# CPython compiles at most 20 blocks nested in one function (CO_MAXBLOCKS) and refuses more
# with a SyntaxError; a CX loop is one such block (nothing else the code generator emits is).
MAX_LOOP_NESTING = 20
# CPython's symbol table gives every function defined in a module its own copy of the set of
# names declared ``global`` anywhere in that module. The top level declares every top-level
# variable global, and a handler those it assigns, so a program in one module would cost
# functions x top-level variables: a quadratic compile(), 43 s for a 5 MB program. The
# functions are spread over modules instead (compiled apart, run in order in one namespace),
# each module kept under this many copied names unless one function alone declares more.
MODULE_GLOBAL_COPIES = 1 << 16
# A module's Python tree takes many times the memory of its source, and is freed once the module
# is compiled: modules of at most this many functions keep the peak to a part of the program.
MODULE_FUNCTIONS = 1000


# Functions a program may call by name besides print, with the number of arguments each takes.
_FUNCTIONS = {"now": 0, "typeof": 1}
_NOW = ("system", "time", "now")  # now(), as the original project's programs also say it


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """An ``on`` handler: its pattern and the generated function that implements it."""

    pattern: str
    function: str
    line: int
    reads_errors: bool = False  # it reads ``_errors``: it handles the failures it is given


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """An entity type: where its field defaults, ``realize`` and handlers were generated."""

    name: str
    kind: str
    fields: str | None
    realize: str | None
    handlers: tuple[HandlerInfo, ...]


@dataclass
class ModulePlan:
    """What :func:`generate` finds besides the modules: what the host needs to run them."""

    handlers: list[HandlerInfo] = field(default_factory=list)
    entities: dict[str, EntityInfo] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    call_sites: list[CallSite] = field(default_factory=list)


def generate(program: n.Program, source: SourceFile,
             compile_module: Callable[[ast.Module], object],
             uncertain: frozenset[str] = frozenset()) -> ModulePlan:
    """Generate *program*, passing each module to *compile_module* as soon as it is done, in
    order, until an error of the program is found (a program with errors is not run).

    Together the modules define the program's functions and set its top-level variables to
    null. No more than one module's Python tree is kept at a time (see
    :data:`MODULE_FUNCTIONS`). *uncertain* names may have been declared by source the parser
    skipped: no diagnostic says they are unknown.
    """
    return _Generator(source, compile_module, uncertain).program(program)


def _var(name: str) -> str:
    return "v_" + name


_Node = TypeVar("_Node", bound=ast.AST)


def _literal(value: n.Node) -> Any:
    """The value of a literal property (``-1`` included), else :data:`NOT_LITERAL`."""
    if isinstance(value, n.NumberLit | n.StringLit | n.BoolLit):
        return value.value
    if isinstance(value, n.NullLit):
        return None
    if isinstance(value, n.Unary) and value.op == "-" and isinstance(value.operand, n.NumberLit):
        return -value.operand.value
    return NOT_LITERAL


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _store(name: str) -> ast.Name:
    return ast.Name(name, ast.Store())


def _call(function: str, *args: ast.expr) -> ast.Call:
    return ast.Call(_load(function), list(args), [])


def _host(method: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Attribute(_load(HOST), method, ast.Load()), list(args), [])


def _const(value: Any) -> ast.Constant:
    return ast.Constant(value)


def _at(node: _Node, span: n.Span) -> _Node:
    """Give *node*, and the helper nodes under it that have no place yet, the CX span.

    Nodes made from CX nodes already have their own place, so the walk stops there and every
    node is placed once; ``ast.fix_missing_locations`` would walk the whole tree each time.
    """
    start = span.column - 1
    end = max(span.end_column - 1, 0)
    if span.end_line == span.line:
        end = max(end, start)
    place = {"lineno": span.line, "col_offset": start, "end_lineno": span.end_line,
             "end_col_offset": end}
    pending: list[ast.AST] = [node]
    while pending:
        current = pending.pop()
        if current._attributes:
            current.__dict__.update(place)
        for field_name in current._fields:
            value = getattr(current, field_name, None)
            children = value if isinstance(value, list) else (value,)
            pending.extend(c for c in children
                           if isinstance(c, ast.AST) and "lineno" not in c.__dict__)
    return node


def _first(*values: ast.expr) -> ast.expr:
    """Evaluate *values* in order; the first one's value."""
    return ast.Subscript(ast.Tuple(list(values), ast.Load()), _const(0), ast.Load())


def _second(*values: ast.expr) -> ast.expr:
    """Evaluate *values* in order; the second one's value."""
    return ast.Subscript(ast.Tuple(list(values), ast.Load()), _const(1), ast.Load())


def _async_def(name: str, args: Sequence[str], body: list[ast.stmt]) -> ast.AsyncFunctionDef:
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg(a) for a in args], kwonlyargs=[], kw_defaults=[],
        defaults=[],
    )
    return ast.AsyncFunctionDef(name, arguments, body or [ast.Pass()], [], None)


_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_FAST_OPERATORS: dict[str, ast.operator | ast.cmpop] = {
    "+": ast.Add(), "-": ast.Sub(), "*": ast.Mult(), "%": ast.Mod(),
    "<": ast.Lt(), "<=": ast.LtE(), ">": ast.Gt(), ">=": ast.GtE(), "==": ast.Eq(),
    "!=": ast.NotEq(),
}


def _is_int(node: ast.expr) -> ast.expr:
    return ast.Compare(_call("cx_type", node), [ast.Is()], [_load("cx_int")])


_STEP_OPERATORS: dict[str, ast.operator] = {"++": ast.Add(), "--": ast.Sub()}
_BINARY = {"+": "cx_add", "-": "cx_sub", "*": "cx_mul", "/": "cx_div", "%": "cx_mod",
           "==": "cx_eq", "<": "cx_lt", "<=": "cx_le", ">": "cx_gt", ">=": "cx_ge"}
_COMPOUND = {"+=": "+", "-=": "-", "*=": "*", "/=": "/", "%=": "%"}


class _Generator:
    def __init__(self, source: SourceFile, compile_module: Callable[[ast.Module], object],
                 uncertain: frozenset[str]) -> None:
        self.source = source
        self.uncertain = uncertain
        self.compile_module = compile_module
        self.plan = ModulePlan()
        self.globals = GlobalScope()
        self.call_sites = 0
        self.module = ast.Module([], [])
        self.module_functions = 0  # functions defined in self.module
        self.module_globals: set[str] = set()  # names they declare global

    def define(self, statement: ast.stmt) -> None:
        """Add *statement* to the module, after handing that on if the statement is a function
        past :data:`MODULE_FUNCTIONS` or would make the symbol table copy more than
        :data:`MODULE_GLOBAL_COPIES` names."""
        if isinstance(statement, ast.AsyncFunctionDef):
            first = statement.body[0]
            declared = first.names if isinstance(first, ast.Global) else []
            known = self.module_globals
            names = len(known) + sum(1 for name in declared if name not in known)
            functions = self.module_functions + 1
            if functions > MODULE_FUNCTIONS or (
                    self.module_functions and functions * names > MODULE_GLOBAL_COPIES):
                self.hand_on()
            self.module_functions += 1
            known.update(declared)
        self.module.body.append(statement)

    def hand_on(self) -> None:
        """Pass the module on to be compiled, unless the program has errors, and start anew."""
        if not self.plan.diagnostics:
            self.compile_module(self.module)
        self.module = ast.Module([], [])
        self.module_functions = 0
        self.module_globals.clear()

    def error(self, message: str, span: n.Span) -> None:
        self.plan.diagnostics.append(self.source.diagnostic(message, span))

    # The program -----------------------------------------------------------------------------

    def program(self, program: n.Program) -> ModulePlan:
        top: list[n.Stmt] = []
        for item in program.body:
            if isinstance(item, n.EntityDecl):
                if item.name in self.globals.entities:
                    self.error(f"entity {item.name!r} is declared twice", item.name_span)
                self.globals.entities.add(item.name)
            elif not isinstance(item, n.OnHandler):
                top.append(item)
        self.globals.variables = set(declared_names(top))
        for v in sorted(self.globals.variables):
            self.define(_at(ast.Assign([_store(_var(v))], _const(None)), program.span))

        main_scope = FunctionScope(self.globals, is_top_level=True, in_entity=False)
        # Top-level names are known before their 'var' too: using one early is an error, and
        # its dotted name is never taken for an event reference.
        main_scope.hoisted = set(self.globals.variables)
        main_body: list[ast.stmt] = []
        if self.globals.variables:
            main_body.append(ast.Global([_var(v) for v in sorted(self.globals.variables)]))
        main_body.extend(self.block(top, main_scope))
        self.close_call_sites(main_scope)
        self.define(_at(_async_def(MAIN, [], main_body), program.span))

        handler_count = 0
        for item in program.body:
            if isinstance(item, n.OnHandler):
                name = f"cx_on_{handler_count}"
                handler_count += 1
                function, reads_errors = self.handler(item, name, entity=False)
                self.define(function)
                self.plan.handlers.append(
                    HandlerInfo(item.pattern.dotted, name, item.span.line, reads_errors))
            elif isinstance(item, n.EntityDecl):
                self.entity(item)
        self.hand_on()
        return self.plan

    def entity(self, decl: n.EntityDecl) -> None:
        prefix = f"cx_{decl.name}"
        fields = None
        if decl.fields:
            scope = self.function_scope(decl.fields, in_entity=True)
            statements: list[ast.stmt] = [
                _at(ast.Expr(_call("cx_set", _load("v_self"), _const(f.name),
                                   self.expr(f.init, scope) if f.init else _const(None))),
                    f.span)
                for f in decl.fields
            ]
            fields = f"{prefix}_fields"
            self.define(_at(self.finish(_async_def(fields, ["v_self"], statements), scope),
                            decl.span))
        realize = None
        if decl.realize is not None:
            realize = f"{prefix}_realize"
            self.define(self.realize(decl.realize, realize))
        handlers = []
        for i, handler in enumerate(decl.handlers):
            name = f"{prefix}_on_{i}"
            function, reads_errors = self.handler(handler, name, entity=True)
            self.define(function)
            handlers.append(HandlerInfo(handler.pattern.dotted, name, handler.span.line,
                                        reads_errors))
        self.plan.entities[decl.name] = EntityInfo(decl.name, decl.kind, fields, realize,
                                                   tuple(handlers))

    def function_scope(self, body: Sequence[n.Node], *, in_entity: bool,
                       params: Sequence[str] = ()) -> FunctionScope:
        scope = FunctionScope(self.globals, is_top_level=False, in_entity=in_entity)
        scope.hoisted = set(declared_names(body)) | set(params)
        scope.declared = set(params)
        scope.whole_numbers = whole_number_locals(body, scope.hoisted - set(params))
        return scope

    def finish(self, function: ast.AsyncFunctionDef, scope: FunctionScope,
               bound: Sequence[str] = ()) -> ast.AsyncFunctionDef:
        """Declare the function's globals and set its locals to null.

        Every local is null until its var runs (a var in a branch not taken leaves it so),
        except the Python arguments and the CX parameters in *bound*, which the body's first
        statements set.
        """
        self.close_call_sites(scope)
        params = {a.arg for a in function.args.args} | set(map(_var, bound))
        unset = [v for v in sorted(map(_var, scope.hoisted)) if v not in params]
        if unset:
            function.body.insert(0, ast.Assign([_store(v) for v in unset], _const(None)))
        if scope.assigned_globals:
            function.body.insert(0, ast.Global([_var(v) for v in sorted(scope.assigned_globals)]))
        return function

    def handler(self, handler: n.OnHandler, name: str, *,
                entity: bool) -> tuple[ast.AsyncFunctionDef, bool]:
        """The handler's function, and whether it reads ``_errors``."""
        for segment in handler.pattern.segments:
            if segment.startswith("__"):
                self.error(f"event name segment {segment!r} is not allowed", handler.pattern.span)
        params = [handler.param.name] if handler.param else []
        scope = self.function_scope(handler.body, in_entity=entity, params=params)
        scope.event_param = handler.param.name if handler.param else None
        statements: list[ast.stmt] = []
        if handler.param is not None:
            statements.append(_at(ast.Assign([_store(_var(handler.param.name))],
                                             _host("payload", _load(EVENT_ARG))),
                                  handler.param.span))
        statements.extend(self.block(handler.body, scope))
        args = ["v_self", EVENT_ARG] if entity else [EVENT_ARG]
        function = self.finish(_async_def(name, args, statements), scope, params)
        return _at(function, handler.span), scope.reads_errors

    def realize(self, realize: n.Realize, name: str) -> ast.AsyncFunctionDef:
        params = [p.name for p in realize.params if p.name != "self"]
        scope = self.function_scope(realize.body, in_entity=True, params=params)
        statements: list[ast.stmt] = []
        for param in realize.params:
            if param.name == "self":
                continue
            value = _load("v_self") if param.type_name == "conscious" else _load(CONFIG_ARG)
            statements.append(_at(ast.Assign([_store(_var(param.name))], value), param.span))
        statements.extend(self.block(realize.body, scope))
        return _at(self.finish(_async_def(name, ["v_self", CONFIG_ARG], statements), scope,
                               params), realize.span)

    # Statements ------------------------------------------------------------------------------

    def block(self, statements: Sequence[n.Node], scope: FunctionScope) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for statement in statements:
            out.extend(self.statement(statement, scope))
        return out

    def statement(self, s: n.Node, scope: FunctionScope) -> list[ast.stmt]:
        # A statement made from a nested CX statement (a for loop's init) keeps its own place.
        return [node if "lineno" in node.__dict__ else _at(node, s.span)
                for node in self._statement(s, scope)]

    def _statement(self, s: n.Node, scope: FunctionScope) -> Iterator[ast.stmt]:
        if isinstance(s, n.VarDecl):
            value = self.expr(s.init, scope) if s.init is not None else _const(None)
            scope.declared.add(s.name)
            yield ast.Assign([_store(_var(s.name))], value)
        elif isinstance(s, n.Assign):
            yield from self.assign(s, scope)
        elif isinstance(s, n.ExprStmt):
            if isinstance(s.expr, n.ServiceCall) and s.expr.service != "await":
                yield ast.Expr(_host("spawn", self.service_call(s.expr, scope)))
            elif isinstance(s.expr, n.Update):
                yield from self.update_statement(s.expr, scope)
            else:
                yield ast.Expr(self.expr(s.expr, scope))
        elif isinstance(s, n.If):
            test = self.condition(s.condition, scope)
            yield ast.If(test, self.block(s.body, scope) or [ast.Pass()],
                         self.block(s.orelse, scope))
        elif isinstance(s, n.While):
            test = self.condition(s.condition, scope)
            body = self.loop_body(s, scope)
            yield ast.While(test, body, [])
        elif isinstance(s, n.ForIn):
            iterable = _call("cx_iter", self.expr(s.iterable, scope))
            if s.declares:
                scope.declared.add(s.name)
            elif not scope.is_variable(s.name):
                self.name_error(n.Name(s.name, s.name_span), scope, assigning=True)
            body = self.loop_body(s, scope)
            yield ast.For(self.target(s.name, scope), iterable, body, [])
        elif isinstance(s, n.For):
            yield from self.for_loop(s, scope)
        elif isinstance(s, n.Return):
            if scope.is_top_level:
                self.error("'return' is only allowed inside a handler or realize", s.span)
            yield ast.Return(self.expr(s.value, scope) if s.value is not None else None)
        elif isinstance(s, n.Break | n.Continue):
            word = "break" if isinstance(s, n.Break) else "continue"
            if not scope.loop_steps:
                self.error(f"'{word}' is only allowed inside a loop", s.span)
                return
            if isinstance(s, n.Break):
                yield ast.Break()
                return
            # A for loop's step runs before its next test, on `continue` too.
            yield from copy.deepcopy(scope.loop_steps[-1])
            yield ast.Continue()
        elif isinstance(s, n.Emit):
            yield from self.emit(s, scope)
        else:
            self.error(f"{type(s).__name__} is not allowed here", s.span)

    def loop_body(self, loop: n.While | n.ForIn | n.For, scope: FunctionScope,
                  step: list[ast.stmt] | None = None) -> list[ast.stmt]:
        """The body of *loop*, then its *step* (of a for loop). The first loop nested past
        what Python can compile is reported (once, however deep the nest goes)."""
        scope.loop_steps.append(step or [])
        if len(scope.loop_steps) == MAX_LOOP_NESTING + 1:
            self.error(f"loops nested too deeply: at most {MAX_LOOP_NESTING} inside one "
                       "another in a handler or the top level; move the inner ones into a "
                       "handler of their own", loop.span)
        body = self.block(loop.body, scope)
        scope.loop_steps.pop()
        return body + (step or []) or [ast.Pass()]

    def for_loop(self, s: n.For, scope: FunctionScope) -> Iterator[ast.stmt]:
        """``for (init; test; step)`` as its init, then a ``while`` (so the time limit stops
        it at its back edge, as any loop) whose body ends with the step."""
        if s.init is not None:
            yield from self.statement(s.init, scope)
        test = self.condition(s.condition, scope) if s.condition is not None \
            else _const(True)
        step = self.statement(s.step, scope) if s.step is not None else []
        yield ast.While(test, self.loop_body(s, scope, step), [])

    def target(self, name: str, scope: FunctionScope) -> ast.Name:
        if scope.is_global(name) and not scope.is_top_level:
            scope.assigned_globals.add(name)
        return _store(_var(name))

    def assign(self, s: n.Assign, scope: FunctionScope) -> Iterator[ast.stmt]:
        value = self.expr(s.value, scope)
        combine = _COMPOUND.get(s.op)
        target = s.target
        if isinstance(target, n.Name):
            if not scope.is_variable(target.name):
                self.name_error(target, scope, assigning=True)
                return
            if combine:
                whole = scope.whole_numbers
                value = self.operation(combine, _load(_var(target.name)), value, scope,
                                       (target.name in whole, is_whole_number(s.value, whole)))
            yield ast.Assign([self.target(target.name, scope)], value)
        elif isinstance(target, n.Member):
            self.check_property(target.name, target.name_span)
            obj = self.expr(target.target, scope)
            key: ast.expr = _const(target.name)
            if combine:
                temp = scope.temporary()
                yield ast.Assign([_store(temp)], obj)
                obj = _load(temp)
                value = self.operation(combine, _call("cx_get", _load(temp), key), value, scope,
                                       (False, is_whole_number(s.value, scope.whole_numbers)))
            yield ast.Expr(_call("cx_set", obj, key, value))
        elif isinstance(target, n.Index):
            obj = self.expr(target.target, scope)
            key = self.expr(target.index, scope)
            if combine:
                obj_t, key_t = scope.temporary(), scope.temporary()
                yield ast.Assign([_store(obj_t)], obj)
                yield ast.Assign([_store(key_t)], key)
                obj, key = _load(obj_t), _load(key_t)
                value = self.operation(combine, _call("cx_index", _load(obj_t), _load(key_t)),
                                       value, scope,
                                       (False, is_whole_number(s.value, scope.whole_numbers)))
            yield ast.Expr(_call("cx_set_index", obj, key, value))
        # Any other target (`self = 0`) the parser refused: this tree is what it recovered.

    def emit(self, s: n.Emit, scope: FunctionScope) -> Iterator[ast.stmt]:
        name = s.event.dotted
        for segment in s.event.segments:
            if segment == "any" or segment.startswith("__"):
                self.error(f"cannot emit {name!r}: an emitted event names one event "
                           "('any' belongs in 'on' patterns)", s.event.span)
                return
        service = s.event.segments[1] if len(s.event.segments) == 2 else None
        if s.event.segments[0] == "ai" and service in AI_SERVICES:
            argument = s.payload if s.payload is not None else n.ObjectLit((), s.span)
            call = n.ServiceCall(service, argument, s.span)  # type: ignore[arg-type]
            yield ast.Expr(_host("spawn", self.service_call(call, scope)))
            return
        payload = self.expr(s.payload, scope) if s.payload is not None else _const(None)
        yield ast.Expr(ast.Await(_host("emit", _const(name), payload)))

    # Expressions -----------------------------------------------------------------------------

    def expr(self, e: n.Node, scope: FunctionScope) -> ast.expr:
        node: ast.expr = _at(self._expr(e, scope), e.span)
        return node

    def _expr(self, e: n.Node, scope: FunctionScope) -> ast.expr:
        if isinstance(e, n.NumberLit | n.StringLit | n.BoolLit):
            return _const(e.value)
        if isinstance(e, n.NullLit):
            return _const(None)
        if isinstance(e, n.Name):
            if scope.is_variable(e.name):
                return _load(_var(e.name))
            if e.name == "this":
                return self.self_ref("this", e.span, scope)
            self.name_error(e, scope)
            return _const(None)
        if isinstance(e, n.SelfRef):
            return self.self_ref("self", e.span, scope)
        if isinstance(e, n.ObjectLit):
            return ast.Dict([_const(p.key) for p in e.properties],
                            [self.handler_names(p.value, scope) if p.key == "handlers"
                             and isinstance(p.value, n.ArrayLit) else self.expr(p.value, scope)
                             for p in e.properties])
        if isinstance(e, n.ArrayLit):
            return ast.List([self.element(x, scope) for x in e.elements], ast.Load())
        if isinstance(e, n.Unary):
            if e.op == "!":
                return ast.UnaryOp(ast.Not(), _call("cx_truthy", self.expr(e.operand, scope)))
            if isinstance(e.operand, n.NumberLit):
                return _const(-e.operand.value)
            return _call("cx_neg", self.expr(e.operand, scope))
        if isinstance(e, n.Binary):
            return self.binary(e, scope)
        if isinstance(e, n.Conditional):
            return ast.IfExp(self.condition(e.test, scope), self.expr(e.then, scope),
                             self.expr(e.orelse, scope))
        if isinstance(e, n.Update):
            return self.update(e, scope)
        if isinstance(e, n.Member) and n.dotted_path(e) == _NOW \
                and not scope.is_variable("system"):
            return _call("cx_now")
        if isinstance(e, n.Call) and isinstance(e.callee, n.Member):
            library = self.library_function(e.callee, len(e.args), scope)
            if library is not None:
                return _call(library, *(self.expr(a, scope) for a in e.args))
        if isinstance(e, n.Member | n.Index) or (
                isinstance(e, n.Call) and isinstance(e.callee, n.Member)):
            return self.chain(e, scope)
        if isinstance(e, n.OptionalChain):
            return self.expr(e.expression, scope)
        if isinstance(e, n.Call):
            return self.call(e, scope)
        if isinstance(e, n.New):
            if e.type_name == "Date" and e.type_name not in self.globals.entities:
                return _call("cx_new_Date", *(self.expr(a, scope) for a in e.args))
            if e.type_name not in self.globals.entities and e.type_name not in self.uncertain:
                self.error(f"unknown entity type {e.type_name!r}", e.type_span)
            args = ast.List([self.expr(a, scope) for a in e.args], ast.Load())
            return ast.Await(_host("new", _const(e.type_name), args))
        if isinstance(e, n.ServiceCall):
            return ast.Await(self.service_call(e, scope))
        self.error(f"{type(e).__name__} is not an expression", e.span)
        return _const(None)

    def self_ref(self, word: str, span: n.Span, scope: FunctionScope) -> ast.expr:
        """``self``, or ``this`` as programs written like JavaScript say it: the entity."""
        if not scope.in_entity:
            self.error(f"'{word}' is only available inside an entity", span)
            return _const(None)
        return _load("v_self")

    def element(self, e: n.Node, scope: FunctionScope) -> ast.expr:
        if isinstance(e, n.LabeledElement | n.EventWithPayload):
            self.error("this form is only allowed in a service call's 'handlers' list", e.span)
            return _const(None)
        return self.expr(e, scope)

    def binary(self, e: n.Binary, scope: FunctionScope) -> ast.expr:
        left = self.expr(e.left, scope)
        right = self.expr(e.right, scope)
        if e.op == "??":
            temp = scope.temporary()
            present = ast.Compare(ast.NamedExpr(_store(temp), left), [ast.IsNot()],
                                  [_const(None)])
            return ast.IfExp(present, _load(temp), right)
        if e.op in ("&&", "||"):
            # Short-circuit and give back an operand, as JavaScript does: x || "default".
            temp = scope.temporary()
            test = _call("cx_truthy", ast.NamedExpr(_store(temp), left))
            if e.op == "&&":
                return ast.IfExp(test, right, _load(temp))
            return ast.IfExp(test, _load(temp), right)
        whole = scope.whole_numbers
        return self.operation(e.op, left, right, scope,
                              (is_whole_number(e.left, whole), is_whole_number(e.right, whole)))

    def operation(self, op: str, left: ast.expr, right: ast.expr, scope: FunctionScope,
                  known: tuple[bool, bool] = (False, False)) -> ast.expr:
        """An arithmetic or comparison operator, with Python's own operator inlined for ints.

        Most hot loops count with whole numbers; for them ``i + 1`` runs as Python's ``+``
        behind a type check instead of as a call, and with no check at all where the compiler
        knows the operands are whole numbers (*known*, see :mod:`.inference`). Anything else
        takes the prelude function, which has the full CX semantics.

        Each operand is evaluated once. An operand that is more than a local name or a constant
        is bound to a temporary by the first checks, in CX order; reading a local or a constant,
        or computing a known whole number, has no effect, so those may come later.
        """
        slow = self.slow_operation(op, left, right)
        fast_op = _FAST_OPERATORS.get(op)
        if fast_op is None:
            return slow
        operands: list[ast.expr] = []
        binding: list[ast.expr] = []  # checks that bind a temporary: these run first
        later: list[ast.expr] = []
        dividend_checked = False
        for operand, sure in zip((left, right), known, strict=True):
            plain = isinstance(operand, ast.Constant) or (
                isinstance(operand, ast.Name) and not scope.is_global(operand.id[2:]))
            if isinstance(operand, ast.Constant) and not sure and type(operand.value) is not int:
                return slow  # "a" + x, 1.5 * x: the prelude's business
            if sure and (plain or not (op == "%" and not operands)):
                operands.append(operand)
            elif plain:
                operands.append(operand)
                later.append(_is_int(operand))
            elif binding:
                return slow  # two operands to bind: keep the order of their effects
            else:
                temp = scope.temporary()
                bound = ast.NamedExpr(_store(temp), operand)
                operands.append(_load(temp))
                if sure:  # only a % gets here: its dividend is checked for sign as it is bound
                    binding.append(ast.Compare(bound, [ast.GtE()], [_const(0)]))
                    dividend_checked = True
                else:
                    binding.append(_is_int(bound))
        if op == "%":
            # Python's % follows the divisor's sign, CX's the dividend's: same when both >= 0.
            divisor = operands[1]
            if not (isinstance(divisor, ast.Constant) and type(divisor.value) is int
                    and divisor.value > 0):
                return slow
            if not dividend_checked:
                later.append(ast.Compare(operands[0], [ast.GtE()], [_const(0)]))
        fast: ast.expr
        if isinstance(fast_op, ast.cmpop):
            fast = ast.Compare(operands[0], [fast_op], [operands[1]])
        else:
            fast = ast.BinOp(operands[0], fast_op, operands[1])
        checks = binding + later
        if not checks:
            return fast
        test = checks[0] if len(checks) == 1 else ast.BoolOp(ast.And(), checks)
        return ast.IfExp(test, fast, self.slow_operation(op, *operands))

    def slow_operation(self, op: str, left: ast.expr, right: ast.expr) -> ast.expr:
        if op == "!=":
            return ast.UnaryOp(ast.Not(), _call("cx_eq", left, right))
        return _call(_BINARY[op], left, right)

    def condition(self, e: n.Node, scope: FunctionScope) -> ast.expr:
        """A test for ``if``/``while``: comparisons and ``!`` are booleans already."""
        test = self.expr(e, scope)
        if isinstance(e, n.BoolLit) or (isinstance(e, n.Unary) and e.op == "!") or (
                isinstance(e, n.Binary) and e.op in _COMPARISONS):
            return test
        return _call("cx_truthy", test)

    def call(self, e: n.Call, scope: FunctionScope) -> ast.expr:
        """A call of anything but a method (see :meth:`chain`): ``print``, or an error."""
        args = [self.expr(a, scope) for a in e.args]
        if isinstance(e.callee, n.Name) and not scope.is_variable(e.callee.name):
            if e.callee.name == "print":
                return _host("print", *args)
            arity = _FUNCTIONS.get(e.callee.name)
            if arity is not None:
                if len(args) != arity:
                    self.error(f"{e.callee.name}() takes {_count(arity, 'argument')}, "
                               f"{len(args)} given", e.span)
                return _call(f"cx_{e.callee.name}", *args)
        self.error("only print(...), now(), typeof(x) and methods of values (such as "
                   "list.push(x)) can be called", e.callee.span)
        return _const(None)

    def names_library(self, callee: n.Member, scope: FunctionScope) -> bool:
        target = callee.target
        return isinstance(target, n.Name) and target.name in LIBRARY \
            and not scope.is_variable(target.name)

    def library_function(self, callee: n.Member, given: int, scope: FunctionScope) -> str | None:
        """``Math.floor`` and the like: the prelude name of a standard object's function, or
        None when *callee* is a method of a value (``Math`` being a variable here, say)."""
        target = callee.target
        if not isinstance(target, n.Name) or not self.names_library(callee, scope):
            return None
        functions = LIBRARY[target.name]
        entry = functions.get(callee.name)
        if entry is None:
            known = ", ".join(sorted(functions))
            self.error(f"{target.name} has no function {callee.name!r} (it has: {known})",
                       callee.name_span)
        elif entry[0] != given:
            self.error(f"{target.name}.{callee.name}() takes {_count(entry[0], 'argument')}, "
                       f"{given} given", callee.span)
        return f"cx_{target.name}_{callee.name}"

    def chain(self, e: n.Member | n.Index | n.Call, scope: FunctionScope) -> ast.expr:
        """A chain of property reads, indexes and method calls, ``a.b[i].m(x)``, walked once
        from its root (a long chain costs no more than its links)."""
        links: list[n.Member | n.Index | n.Call] = []
        node: n.Expr = e
        while True:
            if isinstance(node, n.Member | n.Index):
                links.append(node)
                node = node.target
            elif isinstance(node, n.Call) and isinstance(node.callee, n.Member) \
                    and not self.names_library(node.callee, scope):
                links.append(node)
                node = node.callee.target
            else:
                break
        links.reverse()
        root = self.expr(node, scope)
        first = links[0]
        if isinstance(node, n.Name) and node.name == scope.event_param \
                and isinstance(first, n.Member) and first.name == "payload" \
                and not first.optional:
            return self.links(_at(_call("cx_payload", root), first.span), links[1:], scope)
        return self.links(root, links, scope)

    def links(self, value: ast.expr, links: Sequence[n.Member | n.Index | n.Call],
              scope: FunctionScope) -> ast.expr:
        """*value* read through *links*. At a ``?.`` link a null value ends the whole chain
        with null, and the rest of it (an index, a method's arguments) is not evaluated."""
        for k, link in enumerate(links):
            member = link.callee if isinstance(link, n.Call) else link
            if isinstance(member, n.Member | n.Index) and member.optional:
                temp = scope.temporary()
                test = ast.Compare(ast.NamedExpr(_store(temp), value), [ast.Is()],
                                   [_const(None)])
                rest = self.links(self.link(_load(temp), link, scope), links[k + 1:], scope)
                return ast.IfExp(test, _const(None), rest)
            value = self.link(value, link, scope)
        return value

    def link(self, target: ast.expr, link: n.Member | n.Index | n.Call,
             scope: FunctionScope) -> ast.expr:
        """One link of a chain, applied to *target*: ``.name``, ``[index]`` or ``.m(args)``."""
        if isinstance(link, n.Member):
            self.check_property(link.name, link.name_span)
            scope.reads_errors |= link.name == ERRORS_KEY
            return _at(_call("cx_get", target, _const(link.name)), link.span)
        if isinstance(link, n.Index):
            scope.reads_errors |= isinstance(link.index, n.StringLit) \
                and link.index.value == ERRORS_KEY
            return _at(_call("cx_index", target, self.expr(link.index, scope)), link.span)
        method = link.callee
        assert isinstance(method, n.Member)  # as chain() collects calls
        self.check_property(method.name, method.name_span)
        args = [self.expr(a, scope) for a in link.args]
        return _at(_call("cx_method", target, _const(method.name), ast.List(args, ast.Load())),
                   link.span)

    # Increments and decrements ---------------------------------------------------------------

    def update(self, e: n.Update, scope: FunctionScope) -> ast.expr:
        """``++``/``--`` as an expression: the new value (prefix) or the old one (postfix)."""
        target = e.target
        if isinstance(target, n.Name):
            if not scope.is_variable(target.name):
                self.name_error(target, scope, assigning=True)
                return _const(None)
            whole = target.name in scope.whole_numbers
            current = _load(_var(target.name))
            if e.prefix:
                return ast.NamedExpr(self.target(target.name, scope),
                                     self.stepped(current, e.op, whole))
            old = scope.temporary()
            return _first(ast.NamedExpr(_store(old), current),
                          ast.NamedExpr(self.target(target.name, scope),
                                        self.stepped(_load(old), e.op, whole)))
        if not isinstance(target, n.Member | n.Index):
            return _const(None)  # `self++`: refused by the parser, this tree is what it recovered
        if e.prefix:
            return self.store_stepped(target, e.op, None, scope)
        old = scope.temporary()
        return _second(self.store_stepped(target, e.op, old, scope), _load(old))

    def update_statement(self, e: n.Update, scope: FunctionScope) -> Iterator[ast.stmt]:
        """``x++;`` (or a for loop's step): only the variable changes, no value is kept."""
        target = e.target
        if isinstance(target, n.Name):
            if not scope.is_variable(target.name):
                self.name_error(target, scope, assigning=True)
                return
            stepped = self.stepped(_load(_var(target.name)), e.op,
                                   target.name in scope.whole_numbers)
            yield ast.Assign([self.target(target.name, scope)], stepped)
        elif isinstance(target, n.Member | n.Index):  # any other, the parser refused
            yield ast.Expr(self.store_stepped(target, e.op, None, scope))

    def stepped(self, current: ast.Name, op: str, whole: bool) -> ast.expr:
        """*current* (a name: read more than once) plus or minus one; Python's own operator
        for a whole number, the prelude's check that it is a number otherwise."""
        fast = ast.BinOp(current, _STEP_OPERATORS[op], _const(1))
        if whole:
            return fast
        return ast.IfExp(_is_int(current), fast,
                         _call("cx_increment", current, _const(1 if op == "++" else -1)))

    def store_stepped(self, target: n.Member | n.Index, op: str, old: str | None,
                      scope: FunctionScope) -> ast.expr:
        """Set a property or an element to itself plus or minus one; the value stored. The
        old value is kept in the temporary *old*, if given."""
        obj = scope.temporary()
        if isinstance(target, n.Member):
            self.check_property(target.name, target.name_span)
            key: ast.expr = _const(target.name)
            read: ast.expr = _call("cx_get", _load(obj), key)
            store, store_key = "cx_set", key
        else:
            key_temp = scope.temporary()
            key = _load(key_temp)
            read = _call("cx_index", _load(obj), key)
            store = "cx_set_index"
            store_key = ast.NamedExpr(_store(key_temp), self.expr(target.index, scope))
        if old is not None:
            read = ast.NamedExpr(_store(old), read)
        delta = _const(1 if op == "++" else -1)
        return _call(store, ast.NamedExpr(_store(obj), self.expr(target.target, scope)),
                     store_key, _call("cx_increment", read, delta))

    def check_property(self, name: str, span: n.Span) -> None:
        if name.startswith("__"):
            self.error(f"property {name!r} is not allowed: names starting with '__' are "
                       "reserved", span)

    def name_error(self, e: n.Name, scope: FunctionScope, *, assigning: bool = False) -> None:
        name = e.name
        if name in self.uncertain:
            return
        if scope.declared_later(name):
            self.error(f"{name!r} is used before its 'var' declaration", e.span)
        elif name in self.globals.entities:
            self.error(f"{name!r} is an entity type; create one with new {name}({{...}})",
                       e.span)
        elif assigning:
            self.error(f"assignment to undeclared variable {name!r}; declare it with "
                       f"'var {name} = ...'", e.span)
        else:
            self.error(f"unknown variable {name!r}", e.span)

    # Service calls ---------------------------------------------------------------------------

    def service_call(self, call: n.ServiceCall, scope: FunctionScope) -> ast.expr:
        """``__cx__.service(name, properties, parameters, completions)``, not yet awaited."""
        argument = call.argument
        pairs: list[tuple[str, str, n.Span]] = []
        completions: list[ast.expr] = []
        facts: list[PropertyFact] = []
        if isinstance(argument, n.ObjectLit):
            keys: list[ast.expr | None] = []
            values: list[ast.expr] = []
            for prop in argument.properties:
                if prop.key == "handlers":
                    self.handlers_list(prop, scope, pairs, completions)
                    continue
                if prop.key == "tools" and isinstance(prop.value, n.ArrayLit):
                    keys.append(_const(prop.key))
                    values.append(self.tool_list(prop.value, scope))
                    facts.append(PropertyFact(prop.key, prop.key_span, NOT_LITERAL,
                                              prop.value.span))
                    continue
                event = self.event_reference(prop.value, scope)
                if event is not None:
                    self.add_parameter(pairs, prop.key, event, prop.key_span)
                else:
                    keys.append(_const(prop.key))
                    values.append(self.expr(prop.value, scope))
                    facts.append(PropertyFact(prop.key, prop.key_span, _literal(prop.value),
                                              prop.value.span))
            properties: ast.expr = _at(ast.Dict(keys, values), argument.span)
        else:
            properties = ast.Dict([_const("data")], [self.expr(argument, scope)])
        self.call_sites += 1
        site = f"cx_site_{self.call_sites}"
        # Made whole when the function around it ends: only then is it known whether that
        # function reads _errors.
        parameters = HandlerParameters({name: event for name, event, _ in pairs})
        keyword = n.Span(call.span.line, call.span.column, call.span.line,
                         call.span.column + len(call.service))
        self.plan.constants[site] = (call.service, keyword, parameters,
                                     {name: span for name, _, span in pairs}, tuple(facts))
        scope.call_sites.append(site)
        return _at(_host("service", _const(call.service), properties, _load(site),
                         ast.List(completions, ast.Load())), call.span)

    def close_call_sites(self, scope: FunctionScope) -> None:
        """Make the call sites of a function that has been compiled whole."""
        for name in scope.call_sites:
            service, span, parameters, spans, facts = self.plan.constants[name]
            site = CallSite(service, span, parameters, spans, facts, scope.reads_errors)
            self.plan.constants[name] = site
            self.plan.call_sites.append(site)
        scope.call_sites.clear()

    def event_reference(self, value: n.Node, scope: FunctionScope) -> str | None:
        """The event a property value names, if it is a dotted name whose root is no variable."""
        path = n.dotted_path(value) if isinstance(value, n.Name | n.Member) else None
        if path is None or len(path) < 2 or path == _NOW:
            return None
        root = path[0]
        if scope.is_variable(root) or scope.declared_later(root):
            return None
        return ".".join(path)

    def handler_names(self, value: n.ArrayLit, scope: FunctionScope) -> ast.expr:
        """``handlers: [...]`` in an object that is no service call's, as in an ``emit``
        payload: the events for whoever serves the payload to emit when it is done, as data,
        each a name (``"a.b"``) or, with a payload of its own, ``{"a.b": {...}}``."""
        names: list[ast.expr] = []
        for element in value.elements:
            if isinstance(element, n.LabeledElement):
                self.error("a labelled entry names a handler parameter, which only a service "
                           "call has", element.span)
                continue
            event = self.handler_entry(element, scope)
            if event is None:
                continue
            if isinstance(element, n.EventWithPayload):
                names.append(ast.Dict([_const(event)], [self.expr(element.payload, scope)]))
            else:
                names.append(_const(event))
        return ast.List(names, ast.Load())

    def handler_entry(self, element: n.Node, scope: FunctionScope) -> str | None:
        """The event an entry of a handlers list names. Every entry is an event name, so its
        first segment is read as a name even where it is also a variable (``position.top``),
        ``self`` or a reserved word; a string that is an event name counts too."""
        target = element.event if isinstance(element, n.EventWithPayload) else element
        found = n.listed_event(element)
        if found is not None and isinstance(found[1], n.Name) and scope.is_variable(found[0]):
            found = None  # a variable alone is a value, not an event
        if found is None:
            self.error("a 'handlers' entry must be an event name, like analysis.done",
                       target.span)
            return None
        return found[0] if self.valid_event(found[0], target.span) else None

    def tool_list(self, value: n.ArrayLit, scope: FunctionScope) -> ast.expr:
        """``tools: [ weather.lookup { description: "..." }, clock.now ]``: the events whose
        handlers a model may call, as data for the service, each ``{ event: "weather.lookup",
        description, parameters }`` (what the entry's object says). Entries are event names
        as in a handlers list."""
        tools: list[ast.expr] = []
        for element in value.elements:
            if isinstance(element, n.LabeledElement):
                self.error("a tool is an event, like weather.lookup { description: \"...\" }",
                           element.span)
                continue
            event = self.handler_entry(element, scope)
            if event is None:
                continue
            properties = element.payload.properties \
                if isinstance(element, n.EventWithPayload) else ()
            tools.append(_at(ast.Dict(
                [_const("event"), *(_const(p.key) for p in properties)],
                [_const(event), *(self.expr(p.value, scope) for p in properties)]), element.span))
        return ast.List(tools, ast.Load())

    def handlers_list(self, prop: n.Property, scope: FunctionScope,
                      pairs: list[tuple[str, str, n.Span]],
                      completions: list[ast.expr]) -> None:
        if not isinstance(prop.value, n.ArrayLit):
            self.error("'handlers' must be a list of events, like handlers: [ analysis.done ]",
                       prop.value.span)
            return
        for element in prop.value.elements:
            if isinstance(element, n.LabeledElement):
                event = self.event_reference(element.value, scope)
                if event is None:
                    self.error(f"{element.label!r} must name an event, like "
                               f"{element.label}: {element.label}.done", element.value.span)
                else:
                    self.add_parameter(pairs, element.label, event, element.label_span)
                continue
            event = self.handler_entry(element, scope)
            if event is None:
                continue
            payload = self.expr(element.payload, scope) \
                if isinstance(element, n.EventWithPayload) else _const(None)
            completions.append(ast.Tuple([_const(event), payload], ast.Load()))

    def add_parameter(self, pairs: list[tuple[str, str, n.Span]], name: str, event: str,
                      span: n.Span) -> None:
        if name == ERRORS_KEY:
            self.error(f"handler parameter {name!r} is reserved: the consolidated payload "
                       f"keeps the failures of the call's parameters under {ERRORS_KEY!r}; give "
                       "the parameter another name", span)
        elif any(existing == name for existing, _, _ in pairs):
            self.error(f"handler parameter {name!r} is named twice; each result lands under "
                       "its name, so names must be unique", span)
        elif self.valid_event(event, span):
            pairs.append((name, event, span))

    def valid_event(self, event: str, span: n.Span) -> bool:
        segments = event.split(".")
        if "any" in segments or any(s.startswith("__") for s in segments):
            self.error(f"{event!r} cannot be an event reference: it names one event, and "
                       "'any' belongs in 'on' patterns", span)
            return False
        return True
