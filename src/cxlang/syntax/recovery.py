"""Syntax error reporting and recovery for the LALR parser.

On an unexpected token:

1. If a `;` would fix it (the statement is complete and the token can start the next
   one), insert it: silently after an object literal that ends a line (`think {...}`,
   `emit a.b {...}`), otherwise with "missing ';' after statement".
2. Otherwise report "unexpected X, expected Y", pop the parser stack back to the nearest
   state that is between statements (block, entity body or top level), and skip tokens
   to a resynchronisation point: just after a `;`, at the `}` closing the current block,
   after a `{...}` group that ends what was skipped, or at a statement keyword that starts
   a line. Inside a `for (...)` header a `;` separates its parts: the skip goes on to the
   header's `)`, so one mistake there is one error.

Acceptance is checked by simulating the action table over the state stack (no
callbacks run; see `ParseState.accepts`), so a repair is only made if the parser will
take it: every error either consumes a token or shrinks the stack, and recovery always
terminates.

After a lexical error the parser is quiet until the next `;` or `}`: the lexer already
explained the problem and whatever follows from it would only be noise.
"""

from __future__ import annotations

from collections.abc import Sequence

from .grammar import Grammar
from .lalr import ParseState
from .lexer import END, ERROR, Tok
from .nodes import Span

MAX_ERRORS = 50

# Tokens that begin an expression, and those that begin a statement or declaration.
EXPR_START = frozenset((
    "NAME", "NUMBER", "STRING", "TRUE", "FALSE", "NULL", "SELF", "NEW", "LPAR", "LSQB",
    "LBRACE", "BANG", "MINUS", "PLUSPLUS", "MINUSMINUS",
    "THINK", "LEARN", "INFER", "GENERATE", "CHAT", "ADAPT", "IS", "NOT", "IAM", "AWAIT",
    "EXECUTE",
))
STMT_KEYWORDS = frozenset((
    "VAR", "IF", "WHILE", "FOR", "RETURN", "BREAK", "CONTINUE", "EMIT", "ON", "CONSCIOUS",
    "OBJECT", "REALIZE",
))
# What may follow a complete operand; listed in messages only when nothing else fits.
CONTINUATIONS = frozenset((
    "QUESTION", "QQ", "QDOT", "PLUSPLUS", "MINUSMINUS", "OROR", "ANDAND", "EQEQ", "NOTEQ",
    "LT", "LE", "GT", "GE", "PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "DOT", "LPAR", "LSQB",
    "ASSIGN", "PLUS_ASSIGN", "MINUS_ASSIGN", "STAR_ASSIGN", "SLASH_ASSIGN", "PERCENT_ASSIGN",
    "LBRACE",
))
# Order in which expected tokens are listed.
_LIST_ORDER = ("SEMI", "RPAR", "RSQB", "COMMA", "COLON", "LPAR", "LBRACE")
_LIST_LAST = ("RBRACE", END)


class Recovery:
    """Error handling for one parse: it owns the diagnostics and repairs the state."""

    def __init__(self, grammar: Grammar, tokens: Sequence[Tok], state: ParseState) -> None:
        self.grammar = grammar
        self.tokens = tokens
        self.state = state
        self.errors: list[tuple[Span, str]] = []
        self.quiet_until = -1  # token index up to which errors are not reported
        self.skipped_names: set[str] = set()  # names in what was thrown away

    # ------------------------------------------------------------------ entry point

    def recover(self, i: int) -> int | None:
        """Handle the parser's refusal of token `i`; return where to go on, None to stop."""
        tok = self.tokens[i]
        if tok.type == ERROR:
            if i > self.quiet_until:
                self.quiet_until = self._next_boundary(i)
            return i + 1
        if len(self.errors) >= MAX_ERRORS:
            return None
        quiet = i <= self.quiet_until
        state = self.state
        expected = state.expected()

        prev = self._previous(i)
        if (
            prev is not None
            and tok.type != "SEMI"
            and "SEMI" in expected
            and state.accepts(("SEMI", tok.type))
        ):
            where = Span(
                prev.span.end_line, prev.span.end_column, prev.span.end_line,
                prev.span.end_column + 1,
            )
            after_object = prev.type == "RBRACE" and (
                tok.span.line > prev.span.end_line or tok.type in ("RBRACE", END)
            )
            if not after_object and not quiet:
                self.errors.append((where, "missing ';' after statement"))
            state.feed(Tok("SEMI", ";", where))
            return i

        if not quiet:
            self.errors.append((tok.span, self.message(tok, expected)))
        if tok.type == END:
            return None
        depth, in_header = self._pop_to_statement_level()
        return self._skip(i, depth, 1 if in_header else 0)

    # ------------------------------------------------------------------ resynchronisation

    def _pop_to_statement_level(self) -> tuple[int, bool]:
        """Pop to the nearest state between statements; return the '{' left open, and whether
        a `for` header was left open (its '(' popped, its ')' not)."""
        state_stack = self.state.states
        value_stack = self.state.values
        between = self.grammar.statement_states
        depth = 0
        parens = 0  # '(' popped minus ')' popped: above a FOR, its header's is among them
        in_header = False
        while len(state_stack) > 1 and state_stack[-1] not in between:
            state_stack.pop()
            value = value_stack.pop()
            if type(value) is Tok:
                if value.type == "NAME":
                    self.skipped_names.add(value.value)
                elif value.type == "LBRACE":
                    depth += 1
                elif value.type == "RBRACE":
                    depth -= 1
                elif value.type == "LPAR":
                    parens += 1
                elif value.type == "RPAR":
                    parens -= 1
                elif value.type == "FOR":
                    in_header = parens > 0
        return max(depth, 0), in_header

    def _skip(self, i: int, depth: int, parens: int) -> int:
        """Index of the token to go on from; `depth` counts '{' already open, `parens` the
        '(' of a `for` header still open (whose ';' are no statement ends)."""
        tokens = self.tokens
        accepts = self.state.accepts
        j = i
        while True:
            tok = tokens[j]
            kind = tok.type
            if kind == END:
                return j
            if kind == "NAME":
                self.skipped_names.add(tok.value)
            if parens and depth == 0 and kind in ("LPAR", "RPAR"):
                parens += 1 if kind == "LPAR" else -1
            elif kind == "LBRACE":
                depth += 1
            elif kind == "RBRACE":
                if depth == 0:
                    if accepts(("RBRACE",)):
                        return j  # it closes the block we are in
                else:
                    depth -= 1
                    following = tokens[j + 1].type
                    if depth == 0 and following != "SEMI" and accepts((following,)):
                        return j + 1
            elif depth == 0:
                if kind == "SEMI" and not parens:
                    return j + 1
                if (
                    kind in STMT_KEYWORDS
                    and j > 0
                    and tok.span.line > tokens[j - 1].span.end_line
                    and accepts((kind,))
                ):
                    return j
            j += 1

    def _next_boundary(self, i: int) -> int:
        tokens = self.tokens
        j = i
        while tokens[j].type not in ("SEMI", "RBRACE", END):
            j += 1
        return j

    def _previous(self, i: int) -> Tok | None:
        for j in range(i - 1, -1, -1):
            if self.tokens[j].type != ERROR:
                return self.tokens[j]
        return None

    # ------------------------------------------------------------------ messages

    def message(self, tok: Tok, expected: set[str]) -> str:
        words = self.grammar.terminal_words
        if tok.type in self.grammar.keywords and "NAME" in expected and "NUMBER" not in expected:
            return f"'{tok.value}' is a reserved word and cannot be used as a name"
        if tok.type == END and "RBRACE" in expected:
            opened = self._open_brace()
            if opened is not None:
                return (
                    f"unexpected end of file: missing '}}' to close the '{{' at "
                    f"line {opened.line}, column {opened.column}"
                )
        wanted = self.describe_expected(expected)
        found = describe_token(tok, words)
        return f"unexpected {found}, expected {wanted}" if wanted else f"unexpected {found}"

    def describe_expected(self, expected: set[str]) -> str:
        words = self.grammar.terminal_words
        rest = set(expected)
        parts: list[str] = []
        if "IF" in rest and "SEMI" in rest:  # keywords alone may be property names
            parts.append("a statement")
            rest -= EXPR_START | STMT_KEYWORDS | {"SEMI"}
        elif "NUMBER" in rest:
            parts.append("an expression")
            rest -= EXPR_START | self.grammar.keywords  # keywords here are only labels
        if "NAME" in rest:
            parts.append("a name")
            rest -= self.grammar.keywords | {"NAME"}
        if rest & CONTINUATIONS and rest - CONTINUATIONS:
            rest -= CONTINUATIONS
        if "VAR" in rest:  # an entity body: an empty ';' is not worth suggesting
            rest.discard("SEMI")
        ordered = [k for k in _LIST_ORDER if k in rest]
        ordered += sorted(rest - {*_LIST_ORDER, *_LIST_LAST})
        ordered += [k for k in _LIST_LAST if k in rest]
        parts += [words.get(k, k) for k in ordered]
        if len(parts) > 6:
            parts = [*parts[:5], "..."]
        if len(parts) <= 1:
            return "".join(parts)
        return ", ".join(parts[:-1]) + " or " + parts[-1]

    def _open_brace(self) -> Span | None:
        depth = 0
        for value in reversed(self.state.values):
            if type(value) is Tok:
                if value.type == "RBRACE":
                    depth += 1
                elif value.type == "LBRACE":
                    if depth == 0:
                        return value.span
                    depth -= 1
        return None


def describe_token(tok: Tok, words: dict[str, str]) -> str:
    if tok.type == END:
        return "end of file"
    if tok.type == "NUMBER":
        return f"number {tok.value}"
    if tok.type == "STRING":
        text = tok.value
        if len(text) > 24:
            text = text[:20].rstrip() + "..." + text[-1]
        return f"string {text}"
    return f"'{tok.value}'"
