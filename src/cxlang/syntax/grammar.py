"""Loads cx.lark once per process and keeps the LALR tables and the lexer built from it.

Building the LALR tables takes ~0.12 s, so the result is a lazy module-level singleton,
and Lark's on-disk cache cuts a cold start to ~12 ms. The cache is a pickle, so it goes
to a per-user directory (`$CXLANG_CACHE_DIR`, else `$XDG_CACHE_HOME/cxlang`, else
`~/.cache/cxlang`, created 0700) rather than the shared temp dir where another user could
plant one; only if that directory cannot be made does it fall back to Lark's temp-dir
cache. Lark skips saving when the target is unwritable and rebuilds a stale or broken
file, and any other cache failure falls back to an uncached build: loading never fails
for cache reasons.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from importlib import resources

import lark
from lark import Lark

from .builder import AstBuilder
from .lalr import Tables
from .lexer import END, Lexer

GRAMMAR_FILE = "cx.lark"


@dataclass(frozen=True, slots=True)
class Grammar:
    """Everything the parser needs, built once."""

    lexer: Lexer
    tables: Tables
    # How each terminal is named in messages: "';'", "'if'", "a name".
    terminal_words: dict[str, str]
    keywords: frozenset[str]
    # States between two statements (after a statement list): where recovery resumes.
    statement_states: frozenset[int]


_lock = threading.Lock()
_grammar: Grammar | None = None


def grammar_text() -> str:
    return resources.files(__package__).joinpath(GRAMMAR_FILE).read_text(encoding="utf-8")


def get_grammar() -> Grammar:
    """The shared grammar; the first call builds (or loads from cache) the parser."""
    global _grammar
    if _grammar is None:
        with _lock:
            if _grammar is None:
                try:
                    _grammar = _build(cache=cache_location())
                except Exception:  # e.g. no usable temp dir at all: build without cache
                    _grammar = _build(cache=False)
    return _grammar


def cache_location() -> str | bool:
    """A cache file path in a private per-user directory, or True for Lark's temp dir."""
    base = os.environ.get("CXLANG_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "cxlang")
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
    except OSError:
        return True
    version = f"{sys.version_info[0]}{sys.version_info[1]}"
    return os.path.join(base, f"cx-grammar-lark{lark.__version__}-py{version}.pickle")


def _build(cache: bool | str) -> Grammar:
    parser = Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        keep_all_tokens=True,  # callbacks get every token, so spans are exact
        maybe_placeholders=False,
        cache=cache,
    )
    lexer = Lexer(parser.terminals)
    words = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", END: "end of file"}
    for value, term in (*lexer.punct.items(), *lexer.keywords.items()):
        words[term] = f"'{value}'"
    words["QDOT"] = "'?.'"  # an operator declared as a regex (see cx.lark), so not in punct
    tables = Tables.from_lark(parser, AstBuilder())
    lists = ("items", "stmts", "members")  # the statement-list rules of cx.lark
    between = frozenset(row[name] for row in tables.actions for name in lists if name in row)
    return Grammar(lexer, tables, words, frozenset(lexer.keywords.values()), between)
