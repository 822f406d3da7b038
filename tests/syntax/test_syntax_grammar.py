"""The grammar file, its tables, the cache, and the public surface."""

from __future__ import annotations

import tempfile
import threading
from importlib import resources
from pathlib import Path

import pytest

from cxlang import syntax
from cxlang.syntax import grammar
from cxlang.syntax.lexer import END, ERROR


def test_grammar_ships_as_package_data() -> None:
    assert resources.files("cxlang.syntax").joinpath("cx.lark").is_file()


def test_every_rule_has_a_callback_and_no_conflicts() -> None:
    # Built without cache, so the grammar is analysed here (Lark raises on conflicts,
    # Tables.from_lark raises on a rule without a builder callback).
    built = grammar._build(cache=False)
    assert built.tables.rules
    assert "NAME" in built.terminal_words and built.terminal_words["SEMI"] == "';'"


def test_cache_in_an_unwritable_place_still_works(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "cache.pickle"
    first = grammar._build(cache=str(missing))
    assert not missing.exists()
    # State numbers differ from build to build; the table size does not.
    assert len(first.tables.actions) == len(grammar._build(cache=False).tables.actions)


def test_lark_temp_dir_cache_unwritable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    assert grammar._build(cache=True).tables.rules


def test_broken_cache_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "cache.pickle"
    path.write_bytes(b"garbage\nnot a pickle")
    assert grammar._build(cache=str(path)).tables.rules
    assert grammar._build(cache=str(path)).tables.rules  # now a valid cache


def test_cache_location_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CXLANG_CACHE_DIR", str(tmp_path / "c"))
    location = grammar.cache_location()
    assert isinstance(location, str) and location.startswith(str(tmp_path / "c"))
    assert (tmp_path / "c").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("CXLANG_CACHE_DIR", str(blocker / "sub"))
    assert grammar.cache_location() is True


def test_grammar_is_a_singleton() -> None:
    assert grammar.get_grammar() is grammar.get_grammar()


def test_parse_is_thread_safe() -> None:
    results: list[int] = []
    errors: list[int] = []

    def work(n: int) -> None:
        for _ in range(20):
            results.append(len(syntax.parse(f"var x{n} = {n};\nprint(x{n});").body))
            try:
                syntax.parse(f"var y{n} = ;")
            except syntax.CxSyntaxError as e:
                errors.append(len(e.diagnostics))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [2] * 80
    assert errors == [1] * 80


def test_lexer_tokens_and_positions() -> None:
    tokens, errors = grammar.get_grammar().lexer.tokenize("var x = 1;\n  emit a.b;")
    assert [t.type for t in tokens] == [
        "VAR", "NAME", "ASSIGN", "NUMBER", "SEMI", "EMIT", "NAME", "DOT", "NAME", "SEMI", END,
    ]
    assert tokens[5].span == (2, 3, 2, 7)
    assert tokens[-1].span == (2, 12, 2, 13)
    assert errors == []


def test_lexer_operators_take_the_longest_match() -> None:
    tokens, _ = grammar.get_grammar().lexer.tokenize("a+=b==c<=d!=e||f&&g")
    assert [t.value for t in tokens[:-1]] == [
        "a", "+=", "b", "==", "c", "<=", "d", "!=", "e", "||", "f", "&&", "g",
    ]


def test_lexer_error_tokens() -> None:
    tokens, errors = grammar.get_grammar().lexer.tokenize("a @@ b")
    assert [t.type for t in tokens] == ["NAME", ERROR, "NAME", END]
    assert [e.message for e in errors] == ["unknown character '@'"]
    assert errors[0].span == (1, 3, 1, 5)


def test_public_surface() -> None:
    for name in ("parse", "Program", "Diagnostic", "CxSyntaxError", "CxError", "Span", "nodes"):
        assert hasattr(syntax, name)
