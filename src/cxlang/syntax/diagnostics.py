"""Errors a CX program can get, rendered the way compilers do: `file:line:col: message`
with the source line and a caret under the spot.

The compiler reuses these for semantic errors (`CxError` with any diagnostics); the parser
raises the `CxSyntaxError` subclass. Neither ever shows a Python traceback to the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .nodes import Span


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A named source text, split into lines the same way the lexer counts them."""

    name: str
    text: str
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only "\n" ends a line (as in the lexer); a "\r" before it is not shown.
        lines = tuple(line.removesuffix("\r") for line in self.text.split("\n"))
        object.__setattr__(self, "lines", lines)

    def line(self, number: int) -> str:
        """Line `number` (1-based), or "" past the end."""
        if 1 <= number <= len(self.lines):
            return self.lines[number - 1]
        return ""

    def diagnostic(self, message: str, span: Span, severity: Severity = "error") -> Diagnostic:
        return Diagnostic(message, span, self.name, self.line(span.line), severity)


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One error, or warning, at one place. A warning does not stop a program from running:
    it points at what is probably a mistake (``cx check --strict`` fails on it)."""

    message: str
    span: Span
    filename: str
    source_line: str
    severity: Severity = "error"

    def render(self) -> str:
        """`file:line:col: message`, then the line indented by 4, then a caret line."""
        line, column, end_line, end_column = self.span
        label = "warning: " if self.severity == "warning" else ""
        head = f"{self.filename}:{line}:{column}: {label}{self.message}"
        if not self.source_line and column <= 1:
            return head
        # Reuse the line's own tabs so the caret lines up however tabs are displayed.
        prefix = "".join(ch if ch == "\t" else " " for ch in self.source_line[: column - 1])
        prefix += " " * max(0, column - 1 - len(self.source_line))
        width = end_column - column if end_line == line else 1
        marker = "^" + "~" * (max(1, width) - 1)
        return f"{head}\n    {self.source_line}\n    {prefix}{marker}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.filename, self.span.line, self.span.column, self.message)


class CxError(Exception):
    """A CX program is wrong; carries every diagnostic found, in source order."""

    diagnostics: tuple[Diagnostic, ...]

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render()


class CxSyntaxError(CxError):
    """The program does not parse (or has a literal the lexer cannot read)."""
