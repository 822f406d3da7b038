"""Choosing the backend and its settings: flags over environment over cx.toml over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxlang.services import ConfigError, load_settings


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={}, cwd=tmp_path)
    assert (settings.backend, settings.model, settings.source) == ("local", None, "default")
    assert settings.base_url == "https://api.openai.com/v1"
    assert (settings.max_concurrency, settings.max_retries) == (8, 4)
    assert (settings.max_tokens, settings.threads) == (256, None)  # threads: one per core
    assert (settings.request_timeout, settings.max_response_bytes) == (300.0, 16_000_000)


def test_request_timeout_and_max_response_bytes_from_the_file(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text("request_timeout = 30\nmax_response_bytes = 1000\n",
                                      encoding="utf-8")
    settings = load_settings(env={}, cwd=tmp_path)
    assert (settings.request_timeout, settings.max_response_bytes) == (30.0, 1000)


def test_cx_toml_found_upwards(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text(
        'backend = "openai"\nmodel = "llama3.2"\nbase_url = "http://localhost:11434/v1/"\n'
        "read_timeout = 300\nmax_concurrency = 2\n", encoding="utf-8")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    settings = load_settings(env={}, cwd=nested)
    assert (settings.backend, settings.model) == ("openai", "llama3.2")
    assert settings.base_url == "http://localhost:11434/v1"
    assert (settings.read_timeout, settings.max_concurrency) == (300.0, 2)
    assert settings.source == str(tmp_path / "cx.toml")


def test_pyproject_tool_cx(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.cx]\n'
                                             'backend = "llama"\nmodel = "m.gguf"\n')
    settings = load_settings(env={}, cwd=tmp_path)
    assert (settings.backend, settings.model) == ("llama", "m.gguf")


def test_environment_over_file_and_flags_over_both(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text('backend = "llama"\nmodel = "file-model"\n')
    env = {"CX_BACKEND": "openai", "CX_MODEL": "env-model", "OPENAI_API_KEY": "sk-1",
           "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1", "CX_EMBEDDING_MODEL": "embedder"}
    settings = load_settings(env=env, cwd=tmp_path)
    assert (settings.backend, settings.model, settings.source) == \
        ("openai", "env-model", "CX_BACKEND")
    assert (settings.api_key, settings.base_url, settings.embedding_model) == \
        ("sk-1", "http://127.0.0.1:8080/v1", "embedder")
    flagged = load_settings(backend="local", model="flag-model", env=env, cwd=tmp_path)
    assert (flagged.backend, flagged.model, flagged.source) == \
        ("local", "flag-model", "--backend")


def test_threads_and_max_tokens_from_the_file_and_threads_from_the_flag(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text("threads = 2\nmax_tokens = 64\n", encoding="utf-8")
    settings = load_settings(env={}, cwd=tmp_path)
    assert (settings.threads, settings.max_tokens) == (2, 64)
    assert load_settings(threads=1, env={}, cwd=tmp_path).threads == 1


@pytest.mark.parametrize(("text", "message"), [
    ('api_key = "sk-secret"\n', "keep the API key out of files; set the OPENAI_API_KEY"),
    ('modle = "x"\n', r"unknown setting 'modle'; known: backend, base_url"),
    ("read_timeout = -1\n", "read_timeout must be a positive number of seconds, got -1"),
    ("max_concurrency = 0\n", "max_concurrency must be a whole number of at least 1"),
    ("max_retries = true\n", "max_retries must be a whole number >= 0, got True"),
    ("threads = 0\n", "threads must be a whole number of at least 1, got 0"),
    ("max_tokens = 0\n", "max_tokens must be a whole number of at least 1, got 0"),
    ("request_timeout = 0\n", "request_timeout must be a positive number of seconds, got 0"),
    ('request_timeout = "5m"\n', "request_timeout must be a positive number of seconds"),
    ("max_response_bytes = 0\n",
     "max_response_bytes must be a whole number of at least 1, got 0"),
    ('model = ""\n', "model must be a non-empty string"),
    ("backend = \n", "cannot read it"),
])
def test_bad_files_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "cx.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(env={}, cwd=tmp_path)
    assert str(caught.value).startswith(str(tmp_path / "cx.toml"))
