"""Fixtures: a fresh loopback OpenAI-compatible server per test, and settings that reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cxlang.services import BackendSettings

from .openai_server import OpenAIServer


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

