"""The CX compiler: scopes, event-reference detection, and code generation to Python code.

``compile_program(source_text, filename)`` parses and compiles a whole program, raising
:class:`cxlang.syntax.CxError` with every diagnostic found.
"""

from .codegen import EntityInfo, HandlerInfo
from .compile import CompiledProgram, compile_program
from .prelude import PRELUDE, CxRuntimeError, Entity, display, truthy

__all__ = [
    "PRELUDE",
    "CompiledProgram",
    "CxRuntimeError",
    "Entity",
    "EntityInfo",
    "HandlerInfo",
    "compile_program",
    "display",
    "truthy",
]
