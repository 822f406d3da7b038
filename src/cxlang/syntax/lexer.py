"""Tokenizer for CX, built from the terminals declared in cx.lark.

Why not Lark's own lexer: it stops at the first bad character, while we want every
lexical error of a file reported, and one `re.finditer` pass (horizontal whitespace is
skipped inside each match, newlines are their own match so no per-token line counting
is needed) is several times faster. The terminal definitions still come from the
grammar file, so the grammar stays the single source of truth.

Lexical errors never stop the scan: unknown characters and unterminated comments become
diagnostics; an unterminated string also becomes a STRING token (up to the end of its
line) so the parser can carry on with the statement around it. Each error also leaves an
ERROR token, which tells the parser to stay quiet until it resynchronises.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

from lark.lexer import PatternStr, TerminalDef

from .diagnostics import BOM
from .nodes import Span

END = "$END"
ERROR = "$ERROR"

# Regex terminals the scanner handles itself rather than by name.
_SKIPPED = frozenset(("WS",))
# Match groups that become a token as they are. QDOT (`?.`) is the one operator declared as a
# regex rather than a string: it must not match before a digit.
_PLAIN = frozenset(("NAME", "PUNCT", "NUMBER", "STRING", "QDOT"))


class Tok(NamedTuple):
    """A token: the parser reads `type`, the AST builder reads `value` and `span`."""

    type: str
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class LexError:
    message: str
    span: Span


_new = tuple.__new__


class Lexer:
    """Scanner compiled once from the grammar's terminal definitions."""

    def __init__(self, terminals: Collection[TerminalDef], name_terminal: str = "NAME") -> None:
        by_name = {t.name: t for t in terminals}
        name_re = re.compile(by_name[name_terminal].pattern.to_regexp())
        self.keywords: dict[str, str] = {}
        self.punct: dict[str, str] = {}
        regexes: list[TerminalDef] = []
        for term in terminals:
            pattern = term.pattern
            if isinstance(pattern, PatternStr):
                if name_re.fullmatch(pattern.value):
                    self.keywords[pattern.value] = term.name
                else:
                    self.punct[pattern.value] = term.name
            elif term.name not in _SKIPPED:
                regexes.append(term)
        # Higher priority first, as Lark orders them (the sort is stable).
        regexes.sort(key=lambda t: -t.priority)
        groups = ["(?P<NL>\n)"]
        groups += [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in regexes]
        # Longest operator first so that `+=` wins over `+`.
        ops = sorted(self.punct, key=len, reverse=True)
        groups.append("(?P<PUNCT>" + "|".join(re.escape(op) for op in ops) + ")")
        groups.append(r"(?P<BAD>\S)")  # anything else: reported, never skipped silently
        # Blanks that end the text: one match. Without it each of them would start a match
        # that takes the rest of the blanks and fails: quadratic in a file's trailing spaces.
        groups.append(r"(?P<EOF>\Z)")
        self._scan = re.compile(r"[^\S\n]*(?:" + "|".join(groups) + ")").finditer

    def tokenize(self, text: str) -> tuple[list[Tok], list[LexError]]:
        """All tokens of `text` (ending with an END token) and the lexical errors."""
        tokens: list[Tok] = []
        errors: list[LexError] = []
        append = tokens.append
        # One lookup types every NAME (keyword or not), operator, number and string.
        type_of = {**self.keywords, **self.punct}.get
        # A byte-order mark (some editors write one) is skipped and is no column: the
        # positions are those of the file without it, as SourceFile shows it.
        start = 1 if text.startswith(BOM) else 0
        line = 1
        base = start - 1  # offset of the line's first character, minus one: column = offset - base
        for m in self._scan(text, start):
            kind: str = m.lastgroup  # type: ignore[assignment]  # every branch is a group
            if kind in _PLAIN:
                value = m.group(kind)
                end = m.end()
                span = _new(Span, (line, end - len(value) - base, line, end - base))
                append(_new(Tok, (type_of(value, kind), value, span)))
            elif kind == "NL":
                line += 1
                base = m.end() - 1
            elif kind == "LINE_COMMENT":
                pass
            elif kind == "EOF":
                break
            else:  # rare kinds: comments spanning lines, and errors
                value = m.group(kind)
                end = m.end()
                start = end - len(value)
                span = _new(Span, (line, start - base, line, end - base))
                newlines = value.count("\n")
                if kind == "BAD":
                    self._bad(value, span, tokens, errors)
                elif kind == "UNTERMINATED_STRING":
                    errors.append(LexError("unterminated string", span))
                    append(Tok(ERROR, value, span))
                    append(Tok("STRING", value + value[0], span))
                elif kind == "UNTERMINATED_COMMENT":
                    errors.append(LexError("unterminated block comment", _first_char(span)))
                    append(Tok(ERROR, value, _first_char(span)))
                if newlines:
                    line += newlines
                    base = start + value.rindex("\n")
        append(Tok(END, "", _end_span(tokens)))
        return tokens, errors

    @staticmethod
    def _bad(value: str, span: Span, tokens: list[Tok], errors: list[LexError]) -> None:
        """An unknown character: one error per run of them, not one per character."""
        last = tokens[-1] if tokens else None
        if (
            last is not None
            and last.type == ERROR
            and last.span.end_line == span.line
            and last.span.end_column == span.column
            and errors
            and errors[-1].span == last.span
        ):
            merged = last.span.to(span)
            tokens[-1] = Tok(ERROR, last.value + value, merged)
            errors[-1] = LexError(errors[-1].message, merged)
            return
        shown = f"'{value}'" if value.isprintable() else f"U+{ord(value):04X}"
        errors.append(LexError(f"unknown character {shown}", span))
        tokens.append(Tok(ERROR, value, span))


def _end_span(tokens: list[Tok]) -> Span:
    """End of file is shown just past the last token, where something is missing."""
    for tok in reversed(tokens):
        if tok.type != ERROR:
            line, column = tok.span.end_line, tok.span.end_column
            return Span(line, column, line, column + 1)
    return Span(1, 1, 1, 2)


def _first_char(span: Span) -> Span:
    return Span(span.line, span.column, span.line, span.column + 1)
