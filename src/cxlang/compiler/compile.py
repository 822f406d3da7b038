"""From source text to the code objects the program host runs."""

from __future__ import annotations

import ast
import gc
from dataclasses import dataclass
from types import CodeType
from typing import Any

from ..syntax import parse
from ..syntax.diagnostics import CxError, CxSyntaxError, Diagnostic, SourceFile
from ..syntax.nodes import Span
from .codegen import MAIN, EntityInfo, HandlerInfo, generate
from .sites import CallSite

__all__ = ["CompiledProgram", "compile_program"]


@dataclass(frozen=True, slots=True)
class CompiledProgram:
    """A compiled CX program: code objects to run, in order, in one namespace (that defines its
    functions) plus what the host needs to wire it up."""

    source: SourceFile
    codes: tuple[CodeType, ...]
    main: str
    handlers: tuple[HandlerInfo, ...]
    entities: dict[str, EntityInfo]
    constants: dict[str, Any]
    call_sites: tuple[CallSite, ...] = ()


def compile_program(text: str, filename: str = "<input>") -> CompiledProgram:
    """Parse and compile *text*; raises :class:`CxError` carrying every diagnostic."""
    # Everything allocated here lives on (the tree, then the code), so the cyclic GC would
    # only rescan it again and again: pause it, as the parser does.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(text, filename)
    finally:
        if gc_was_enabled:
            gc.enable()


def _compile(text: str, filename: str) -> CompiledProgram:
    try:
        program = parse(text, filename)
    except CxSyntaxError as syntax:
        raise CxError([*syntax.diagnostics, *_also_wrong(syntax, text, filename)]) from None
    source = SourceFile(filename, text)
    codes: list[CodeType] = []
    limit: SyntaxError | RecursionError | None = None

    def compile_module(module: ast.Module) -> None:
        nonlocal limit
        if limit is None:
            try:
                codes.append(compile(module, filename, "exec", dont_inherit=True))
            except (SyntaxError, RecursionError) as exc:
                # Errors of the program's own, which code generation may find further on,
                # come first: this is reported only if there are none.
                limit = exc

    try:
        plan = generate(program, source, compile_module)
        if plan.diagnostics:
            raise CxError(plan.diagnostics)
        if limit is not None:
            raise limit
    except (RecursionError, MemoryError):
        # The parser does not recurse; walking a very deep tree does.
        raise CxError([source.diagnostic(
            "the program nests too deeply to compile (an expression or block thousands of "
            "levels deep); split it up", program.span)]) from None
    except SyntaxError as exc:
        # Python's own compile-time limits. The code generator checks those CX source can
        # reach (loops nested past MAX_LOOP_NESTING); this is the net under that check, so that
        # a limit it misses still ends in a diagnostic, at the construct's line, not a traceback.
        line = exc.lineno or 1
        raise CxError([source.diagnostic(
            "this is past a limit of the compiler (nested or repeated too many times); "
            "split it up", Span(line, 1, line, 2))]) from None
    return CompiledProgram(source, tuple(codes), MAIN, tuple(plan.handlers), plan.entities,
                           plan.constants, tuple(plan.call_sites))


def _also_wrong(syntax: CxSyntaxError, text: str, filename: str) -> list[Diagnostic]:
    """What the compiler finds in the statements the parser kept, so that one run of
    ``cx check`` reports every error it can."""
    if syntax.recovered is None:
        return []
    try:
        plan = generate(syntax.recovered, SourceFile(filename, text), lambda module: None,
                        syntax.skipped_names)
    except (RecursionError, MemoryError):
        return []  # the syntax errors stand alone; the nesting is reported once they are fixed
    return plan.diagnostics
