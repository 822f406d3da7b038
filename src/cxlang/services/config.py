"""Which backend, which model, which server: from the command line, the environment or a file.

Precedence, highest first: ``--backend`` / ``--model``; the environment (``CX_BACKEND``,
``CX_MODEL``, ``CX_EMBEDDING_MODEL``, and the OpenAI ecosystem's ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``); the first ``cx.toml`` (top-level keys) or ``pyproject.toml`` with a
``[tool.cx]`` table found from the working directory upwards; the defaults below. The API key
is read from the environment only, so it never ends up in a committed file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .usage import Price

__all__ = ["BackendSettings", "ConfigError", "RateLimits", "find_config", "load_settings"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Tokens an answer may have when the call sets no maxTokens: a base model never stops on its
# own, and one that runs to the end of its context fails instead of answering.
DEFAULT_MAX_TOKENS = 256
DEFAULT_MAX_RESPONSE_BYTES = 16_000_000  # far above any answer of max_tokens tokens


class ConfigError(ValueError):
    """A setting is wrong; the message names the file or variable and what to write."""


@dataclass(frozen=True)
class RateLimits:
    """What a provider lets one model be asked per minute; ``None``: no limit."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass(frozen=True)
class BackendSettings:
    """Everything a backend needs besides its name. Times in seconds."""

    backend: str = "local"
    model: str | None = None  # a model name (openai) or a .gguf path (llama)
    embedding_model: str | None = None  # for learn; the model itself when unset
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0  # without a byte from the server
    # A whole request, first byte to last: a server that trickles (keep-alives, a byte at a
    # time, a stream without end) resets the read timeout with every byte and would hang on.
    request_timeout: float = 300.0
    # The most one response may bring (a plain body, or a stream's bytes together), so a
    # hostile or broken server cannot fill the memory with an endless answer.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_concurrency: int = 8  # requests in flight per backend; more wait their turn
    max_tokens: int = DEFAULT_MAX_TOKENS  # an answer's length when a call sets no maxTokens
    threads: int | None = None  # llama: the model's CPU threads (None: one per core)
    max_retries: int = 4
    retry_delay: float = 0.5  # the first retry's backoff window; it doubles per retry, to 8 s
    # Per model, as providers set them: the top-level keys for every model without a
    # [limits."name"] table of its own.
    rate_limits: RateLimits = RateLimits()
    model_limits: Mapping[str, RateLimits] = field(default_factory=dict, hash=False)
    # [prices."model"] input/output per million tokens (cx run --stats); keyed by model name,
    # or by "<backend>:<model>"
    prices: Mapping[str, Price] = field(default_factory=dict, hash=False)
    token_budget: int | None = None  # the run stops once its models used this many tokens
    cache: str | None = None  # a directory answering identical model requests across runs
    source: str = "default"  # where ``backend`` came from, for ``cx backends``

    def limits_for(self, model: str) -> RateLimits:
        return self.model_limits.get(model, self.rate_limits)


_FILE_KEYS: dict[str, type] = {
    "backend": str, "model": str, "embedding_model": str, "base_url": str,
    "connect_timeout": float, "read_timeout": float, "request_timeout": float,
    "max_concurrency": int, "max_retries": int, "retry_delay": float, "max_tokens": int,
    "threads": int, "max_response_bytes": int, "token_budget": int, "cache": str,
}
_RATE_KEYS = frozenset({"requests_per_minute", "tokens_per_minute"})
_AT_LEAST_ONE = frozenset({"max_concurrency", "max_tokens", "threads", "max_response_bytes"})
_ENV = {"CX_BACKEND": "backend", "CX_MODEL": "model", "CX_EMBEDDING_MODEL": "embedding_model",
        "OPENAI_BASE_URL": "base_url", "OPENAI_API_KEY": "api_key"}


def find_config(start: Path) -> tuple[Path, Mapping[str, Any]] | None:
    """The nearest ``cx.toml``, or ``pyproject.toml`` with ``[tool.cx]``, and its settings."""
    for directory in (start, *start.parents):
        candidate = directory / "cx.toml"
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("cx")
            if isinstance(table, Mapping):
                return pyproject, table
    return None


def load_settings(
    *,
    backend: str | None = None,
    model: str | None = None,
    threads: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> BackendSettings:
    """Settings for a run: arguments over environment over file over defaults."""
    env = os.environ if env is None else env
    settings = BackendSettings()
    found = find_config((cwd or Path.cwd()).resolve())
    if found is not None:
        path, table = found
        settings = replace(settings, **_from_file(path, table), source=str(path))
    from_env: dict[str, Any] = {key: env[var] for var, key in _ENV.items() if env.get(var)}
    if from_env:
        source = "CX_BACKEND" if "backend" in from_env else settings.source
        settings = replace(settings, **from_env, source=source)
    if backend is not None:
        settings = replace(settings, backend=backend, source="--backend")
    if model is not None:
        settings = replace(settings, model=model)
    if threads is not None:
        settings = replace(settings, threads=threads)
    return replace(settings, base_url=settings.base_url.rstrip("/"))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None


def _from_file(path: Path, table: Mapping[str, Any]) -> dict[str, Any]:
    where = f"{path} [tool.cx]" if path.name == "pyproject.toml" else str(path)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "bus":
            continue  # the NATS server and credentials: cli/bus_config.py reads them
        if key in _RATE_KEYS:
            continue  # read with the [limits] tables below
        if key == "limits":
            values["model_limits"] = _model_limits(where, value)
            continue
        if key == "prices":
            values["prices"] = _prices(where, value)
            continue
        if key == "api_key":
            raise ConfigError(f"{where}: keep the API key out of files; "
                              "set the OPENAI_API_KEY environment variable instead")
        kind = _FILE_KEYS.get(key)
        if kind is None:
            known = ", ".join(sorted({*_FILE_KEYS, *_RATE_KEYS, "limits", "prices"}))
            raise ConfigError(f"{where}: unknown setting {key!r}; known: {known}")
        values[key] = _checked(where, key, kind, value)
    values["rate_limits"] = _rate_limits(where, table)
    return values


def _model_limits(where: str, tables: Any) -> dict[str, RateLimits]:
    """``[limits."model-name"]`` tables: each model's own rates."""
    if not isinstance(tables, Mapping) or not all(
            isinstance(table, Mapping) for table in tables.values()):
        raise ConfigError(f'{where}: limits takes a table per model, e.g. [limits."gpt-4o-mini"] '
                          "requests_per_minute = 500")
    return {model: _rate_limits(f"{where} [limits.{json.dumps(model)}]", table, only=True)
            for model, table in tables.items()}


def _prices(where: str, tables: Any) -> dict[str, Price]:
    """``[prices."model-name"]`` tables: ``input`` and ``output``, per million tokens."""
    example = '[prices."gpt-4o-mini"] input = 0.15, output = 0.6 (per million tokens)'
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}: prices takes a table per model, e.g. {example}")
    prices = {}
    for model, table in tables.items():
        if not isinstance(table, Mapping) or set(table) != {"input", "output"} or not all(
                isinstance(n, int | float) and not isinstance(n, bool) and n >= 0
                for n in table.values()):
            raise ConfigError(f"{where}: [prices.{json.dumps(model)}] needs input and output, "
                              f"numbers >= 0, e.g. {example}")
        prices[model] = Price(float(table["input"]), float(table["output"]))
    return prices


def _rate_limits(where: str, table: Mapping[str, Any], *, only: bool = False) -> RateLimits:
    """``requests_per_minute`` and ``tokens_per_minute`` in *table*; with *only*, nothing
    else may be there."""
    if only and (unknown := sorted(set(table) - _RATE_KEYS)):
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; known: "
                          f"{', '.join(sorted(_RATE_KEYS))}")
    rates: dict[str, float] = {}
    for key in _RATE_KEYS & set(table):
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{where}: {key} must be a positive number, got {value!r}")
        rates[key] = float(value)
    return RateLimits(**rates)


def _checked(where: str, key: str, kind: type, value: Any) -> Any:
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        expected = "a positive number of seconds"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        ok = ok and (value >= 1 or key not in _AT_LEAST_ONE)
        expected = "a whole number" + (" of at least 1" if key in _AT_LEAST_ONE else " >= 0")
    else:
        ok = isinstance(value, str) and bool(value)
        expected = "a non-empty string"
    if not ok:
        raise ConfigError(f"{where}: {key} must be {expected}, got {value!r}")
    return float(value) if kind is float else value
