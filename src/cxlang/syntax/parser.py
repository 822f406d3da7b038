"""`parse()`: CX source text to a `Program`, or a `CxSyntaxError` listing every error.

Tokens from lexer.py go through the LALR driver in lalr.py; the AST builder runs inside
its reductions. When the driver refuses a token, `Recovery` reports the error and repairs
the parser state, and the driver goes on, so one run finds all the independent errors
of a file.
"""

from __future__ import annotations

import gc
from typing import Any

from .builder import REPORTS
from .diagnostics import CxSyntaxError, SourceFile
from .grammar import get_grammar
from .lalr import ParseState
from .nodes import Program, Span
from .recovery import Recovery

# Past this many, more diagnostics only bury the first ones.
MAX_DIAGNOSTICS = 50


def parse(source: str, filename: str = "<input>") -> Program:
    """Parse a whole CX file.

    Raises `CxSyntaxError` with all diagnostics (lexical, syntactic and the few checks the
    parser does: escapes, assignment targets, duplicate `realize`) in source order.
    """
    grammar = get_grammar()
    # Nearly everything allocated here survives (it is the AST), so the cyclic GC would
    # only rescan it again and again: pausing it saves ~20% on a large first parse.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    reports: list[tuple[Span, str]] = []
    context_token = REPORTS.set(reports)
    try:
        tokens, lex_errors = grammar.lexer.tokenize(source)
        state = ParseState(grammar.tables)
        recovery = Recovery(grammar, tokens, state)
        body: list[Any] | None = None
        i: int | None = 0
        while i is not None:
            i = state.run(tokens, i)
            if i < 0:
                body = state.values[-1]
                break
            i = recovery.recover(i)
    finally:
        REPORTS.reset(context_token)
        if gc_was_enabled:
            gc.enable()

    found = [(e.span, e.message) for e in lex_errors]
    found += recovery.errors
    found += reports
    if body is None and not found:  # cannot happen, but never raise an empty error
        found.append((tokens[-1].span, "unexpected end of file"))
    end = tokens[-1].span
    program = None if body is None else \
        Program(tuple(body), filename, Span(1, 1, end.line, end.column))
    if found or program is None:
        source_file = SourceFile(filename, source)
        unique = sorted(dict.fromkeys(found))  # the same error can be reached twice
        raise CxSyntaxError(
            (source_file.diagnostic(message, span)
             for span, message in unique[:MAX_DIAGNOSTICS]),
            program if len(unique) < MAX_DIAGNOSTICS else None,
            frozenset(recovery.skipped_names))
    return program
