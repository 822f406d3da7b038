"""Fixtures: a fresh loopback OpenAI-compatible server per test, and settings that reach it;
and, for the real-server suite, llama-cpp-python's server, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cxlang.services import BackendSettings

from .openai_server import OpenAIServer
from .real_server import ModelServer, require_model


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    running = OpenAIServer().start()
    yield running
    running.stop()


@pytest.fixture
def settings(server: OpenAIServer) -> BackendSettings:
    """The openai backend against the test server; short retries so tests stay fast."""
    return BackendSettings(backend="openai", model="test-model", base_url=server.url,
                           connect_timeout=2.0, read_timeout=5.0, max_retries=2,
                           retry_delay=0.01)


@pytest.fixture(scope="session")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """llama-cpp-python's server on Gemma 3 270M: loading a model is too slow to do per test."""
    running = ModelServer(require_model(), tmp_path_factory.mktemp("model-server"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def model_settings(model_server: ModelServer) -> BackendSettings:
    """The openai backend against the real server. The model name is any: the server has one
    model and answers to every name. Generous timeouts: two shared cores are slow."""
    model_server.check()
    return BackendSettings(backend="openai", model="gemma", base_url=model_server.url,
                           connect_timeout=5.0, read_timeout=60.0, max_retries=2,
                           retry_delay=0.2)
