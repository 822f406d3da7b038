"""Checks of a compiled program against what the services take, before it runs.

The compiler knows the language; the services know their words and control values. This joins
the two: a literal control value a call does not take is an error at its position (``timeout:
"soon"``, a ``maxDurationMs`` below the ``minDurationMs``), and a property spelt almost like a
service word (``promt:``) is a warning, since any other property is data for the handlers and
a typo would otherwise pass without a word.
"""

from __future__ import annotations

from ..compiler import CompiledProgram, compile_program
from ..compiler.sites import NOT_LITERAL
from ..services.controls import control_error, likely_meant, range_error
from ..syntax.diagnostics import CxError, Diagnostic

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
