"""A real nats-server for the tests: on a free loopback port, JetStream in a temporary folder.

Tests that need it skip, saying why, when no ``nats-server`` binary is found; with
``CX_REQUIRE_NATS=1`` (set by ``.ci/run``) they fail instead, so CI can never skip them silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["NatsServer", "free_port", "require_binary"]

START_TIMEOUT = 10.0


def find_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")


def require_binary() -> str:
    binary = find_binary()
    if binary is None:
        reason = ("no nats-server binary found (install it: apt-get install nats-server); "
                  "the distributed tests need a real server")
        if os.environ.get("CX_REQUIRE_NATS") == "1":
            pytest.fail(f"CX_REQUIRE_NATS=1 but {reason}")
        pytest.skip(reason)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """``nats-server -a 127.0.0.1 -p PORT -js -sd DIR``; restartable on the same port and store."""

    def __init__(self, binary: str, store: Path, config: Path | None = None) -> None:
        self.binary = binary
        self.store = store
        self.config = config  # a server configuration (users, permissions); flags override it
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                   str(self.store)]
        if self.config is not None:
            command += ["-c", str(self.config)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.port} within {START_TIMEOUT} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
