"""The CX syntax layer: source text to a typed AST, or diagnostics.

    from cxlang.syntax import parse, nodes
    program = parse(text, "prog.cx")   # raises CxSyntaxError with every error found
"""

from . import nodes
from .diagnostics import CxError, CxSyntaxError, Diagnostic, SourceFile
from .nodes import Program, Span
from .parser import parse

__all__ = [
    "CxError",
    "CxSyntaxError",
    "Diagnostic",
    "Program",
    "SourceFile",
    "Span",
    "nodes",
    "parse",
]
