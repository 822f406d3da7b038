"""Fixtures of the distributed tests: a real nats-server per test, stopped whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .nats_server import NatsServer, require_binary


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(require_binary(), tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()
