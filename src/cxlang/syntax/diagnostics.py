"""Errors a CX program can get, rendered the way compilers do: `file:line:col: message`
with the source line and a caret under the spot.

The compiler reuses these for semantic errors (`CxError` with any diagnostics); the parser
raises the `CxSyntaxError` subclass. Neither ever shows a Python traceback to the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .nodes import Program, Span

BOM = "\ufeff"  # a UTF-8 byte-order mark some editors put at the start of a file


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A named source text, split into lines the same way the lexer counts them."""

    name: str
    text: str
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only "\n" ends a line (as in the lexer); a "\r" before it is not shown, nor a
        # byte-order mark at the start (the lexer skips it: it is no column).
        lines = tuple(line.removesuffix("\r")
                      for line in self.text.removeprefix(BOM).split("\n"))
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
        """`file:line:col: message`, then the line indented by 4, then a caret line.

        The line is shown as the terminal should see it: cut to a window around the caret
        when long (a minified or generated file would otherwise echo megabytes), and with
        control characters and line separators escaped (they would move the cursor or break
        the line); the caret stays under the same character either way."""
        line, column, end_line, end_column = self.span
        label = "warning: " if self.severity == "warning" else ""
        head = f"{self.filename}:{line}:{column}: {label}{self.message}"
        source = self.source_line
        if not source and column <= 1:
            return head
        start = column - 1  # 0-based, may be past the end of the line
        stop = end_column - 1 if end_line == line else column
        stop = max(stop, start + 1)
        first = max(0, min(start - WINDOW // 2, len(source) - WINDOW))
        last = min(len(source), first + WINDOW)
        shown = [_visible(ch) for ch in source[first:last]]
        # Reuse the line's own tabs so the caret lines up however tabs are displayed.
        prefix = "".join("\t" if ch == "\t" else " " * len(ch) for ch in shown[: start - first])
        prefix += " " * max(0, start - len(source))
        width = sum(len(ch) for ch in shown[start - first: stop - first]) or 1
        left = _CUT if first > 0 else ""
        right = _CUT if last < len(source) else ""
        if right and stop > last:  # the span runs on past the window: so does its marker
            width += len(right)
        marker = "^" + "~" * (width - 1)
        return f"{head}\n    {left}{''.join(shown)}{right}\n    " \
               f"{' ' * len(left)}{prefix}{marker}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.filename, self.span.line, self.span.column, self.message)


WINDOW = 100  # characters of a long source line shown around the caret
_CUT = "..."  # marks where a long line was cut


def _visible(ch: str) -> str:
    """*ch* as echoed: itself, or an escape if a terminal would act on it (a control
    character, U+2028, a bidirectional override...). A tab stays: it is only blank."""
    if ch.isprintable() or ch == "\t":
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


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
    """The program does not parse (or has a literal the lexer cannot read).

    ``recovered`` is the program without the statements the parser had to skip, when it
    recovered from every error (the compiler checks it too, so one run reports everything);
    ``skipped_names`` are the names in what it skipped, which a skipped ``var`` may declare.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic], recovered: Program | None = None,
                 skipped_names: frozenset[str] = frozenset()) -> None:
        super().__init__(diagnostics)
        self.recovered = recovered
        self.skipped_names = skipped_names
