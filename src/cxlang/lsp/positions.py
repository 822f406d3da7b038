"""Where things are, in the compiler's terms and in the editor's.

CX spans are 1-based lines and columns counted in characters (code points), lines ended by
``"\\n"`` alone, a byte-order mark at the start no column (as the lexer counts). LSP positions
are 0-based lines ended by ``"\\n"``, ``"\\r\\n"`` or ``"\\r"``, and characters counted in the
code units the client and server agreed on: UTF-16 unless the client offered another. Both
are turned into offsets in the text, so a line one of them ends and the other does not (a
lone ``"\\r"``) cannot shift what follows.
"""

from __future__ import annotations

import bisect
import re
from typing import Literal

from lsprotocol import types

from ..syntax.diagnostics import BOM
from ..syntax.nodes import Span

__all__ = ["Encoding", "PositionMap", "encoding_of", "units"]

Encoding = Literal["utf-8", "utf-16", "utf-32"]

_LSP_LINE_END = re.compile(r"\r\n|\r|\n")


def encoding_of(kind: str | None) -> Encoding:
    """The encoding an LSP ``positionEncoding`` names (UTF-16 when none or unknown)."""
    if kind in ("utf-8", "utf-32"):
        return kind  # type: ignore[return-value]  # the two literals just tested
    return "utf-16"


def units(ch: str, encoding: Encoding) -> int:
    """How many code units of *encoding* the character *ch* takes."""
    code = ord(ch)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if encoding == "utf-8":
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return 1


class PositionMap:
    """One document's text, to convert CX spans to LSP ranges and LSP positions back."""

    __slots__ = ("_cx_starts", "_encoding", "_extra", "_lsp_ends", "_lsp_starts", "_wide",
                 "text")

    def __init__(self, text: str, encoding: Encoding = "utf-16") -> None:
        self.text = text
        self._encoding: Encoding = encoding
        first = 1 if text.startswith(BOM) else 0
        self._cx_starts = [first, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
        starts, ends = [0], []
        for match in _LSP_LINE_END.finditer(text):
            ends.append(match.start())
            starts.append(match.end())
        ends.append(len(text))
        self._lsp_starts, self._lsp_ends = starts, ends
        # The characters wider than one code unit, and the extra units up to each: a
        # position is then found without counting the line (a minified file is one line).
        self._wide: list[int] = []
        self._extra = [0]
        if encoding != "utf-32" and not text.isascii():
            for i, ch in enumerate(text):
                width = units(ch, encoding)
                if width > 1:
                    self._wide.append(i)
                    self._extra.append(self._extra[-1] + width - 1)

    # ------------------------------------------------------------------ CX -> offset -> LSP

    def offset(self, line: int, column: int) -> int:
        """The offset of CX (*line*, *column*), kept within that line (or the text)."""
        if line < 1:
            return 0
        if line > len(self._cx_starts):
            return len(self.text)
        start = self._cx_starts[line - 1]
        end = self._cx_starts[line] - 1 if line < len(self._cx_starts) else len(self.text)
        if line < len(self._cx_starts) and end > start and self.text[end - 1] == "\r":
            end -= 1  # "\r\n": the "\r" is no place on the line either
        return max(start, min(start + column - 1, end))

    def position(self, offset: int) -> types.Position:
        """The LSP position of *offset*."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._lsp_starts, offset) - 1
        start = self._lsp_starts[line]
        offset = min(offset, self._lsp_ends[line])  # inside a "\r\n": at the line's end
        extra = self._extra[bisect.bisect_left(self._wide, offset)] \
            - self._extra[bisect.bisect_left(self._wide, start)]
        return types.Position(line=line, character=offset - start + extra)

    def range(self, span: Span) -> types.Range:
        """The LSP range of the CX *span* (never ending before it starts)."""
        start = self.offset(span.line, span.column)
        end = max(start, self.offset(span.end_line, span.end_column))
        return types.Range(start=self.position(start), end=self.position(end))

    # ------------------------------------------------------------------ LSP -> offset -> CX

    def offset_at(self, position: types.Position) -> int:
        """The offset of an LSP *position*: a character past the line's end is its end, one
        in the middle of a character (half a surrogate pair) that character."""
        if position.line >= len(self._lsp_starts):
            return len(self.text)
        start, end = self._lsp_starts[position.line], self._lsp_ends[position.line]
        if self._encoding == "utf-32":
            return min(start + position.character, end)
        counted, offset = 0, start
        while offset < end and counted < position.character:
            counted += units(self.text[offset], self._encoding)
            if counted > position.character:
                break
            offset += 1
        return offset

    def cx_position(self, position: types.Position) -> tuple[int, int]:
        """The CX (line, column) of an LSP *position*."""
        offset = self.offset_at(position)
        line = max(1, bisect.bisect_right(self._cx_starts, offset))
        return line, offset - self._cx_starts[line - 1] + 1

    def without_line(self, line: int) -> str:
        """The text with LSP line *line* blanked (its characters spaces, so everything else
        stays where it is): the document as it was before the line being written."""
        if not 0 <= line < len(self._lsp_starts):
            return self.text
        start, end = self._lsp_starts[line], self._lsp_ends[line]
        if end == len(self.text):  # the last line: nothing after it to keep in place
            return self.text[:start]
        return self.text[:start] + " " * (end - start) + self.text[end:]

    def prefix(self, position: types.Position) -> str:
        """The text before *position* (for completion's look at what is being written)."""
        return self.text[:self.offset_at(position)]
