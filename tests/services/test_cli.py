"""``cx backends`` and ``cx run --backend openai``, as a user types them, against loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .openai_server import OpenAIServer

CX = Path(sys.executable).with_name("cx")

pytestmark = pytest.mark.skipif(not CX.exists(), reason=f"no cx script next to {sys.executable}")


def cx(*args: str, cwd: Path, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run cx with none of the caller's own backend settings, plus *env*."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CX_", "OPENAI_"))}
    done = subprocess.run([str(CX), *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, cwd=cwd, env={**clean, **env})
    assert "Traceback" not in done.stderr, done.stderr
    return done


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_session(server: OpenAIServer, tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(
        'on a.run (e) { return think { prompt: "alpha" }; }\n'
        'on b.run (e) { return think { prompt: "beta" }; }\n'
        'think { prompt: "Q3", a: a.run, b: b.run, handlers: [ done ] };\n'
        'on done (event) { print(event.result); print(event.a); print(event.b); }\n')
    done = cx("run", "prog.cx", "--backend", "openai", "--model", "test-model",
              cwd=tmp_path, OPENAI_BASE_URL=server.url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["echo: Q3", "echo: alpha", "echo: beta"]
    assert {e.body["model"] for e in server.exchanges} == {"test-model"}


def test_backend_and_model_from_the_environment_and_cx_toml(
    server: OpenAIServer, tmp_path: Path
) -> None:
    (tmp_path / "cx.toml").write_text(f'backend = "openai"\nbase_url = "{server.url}"\n')
    done = cx("run", "-", cwd=tmp_path, stdin='print(think { prompt: "hi" });',
              CX_MODEL="test-model")
    assert (done.returncode, done.stdout, done.stderr) == (0, "echo: hi\n", "")


def test_cx_backends_lists_what_runs_and_why_not(server: OpenAIServer, tmp_path: Path) -> None:
    done = cx("backends", cwd=tmp_path, OPENAI_BASE_URL=server.url, CX_MODEL="test-model",
              CX_BACKEND="openai")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("  local   available")
    assert lines[1] == f"* openai  available    {server.url}, model test-model"
    assert lines[2].startswith("  llama   ")
    assert lines[3].startswith("(* selected, from CX_BACKEND;")


def test_cx_backends_without_a_server_or_model(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    done = cx("backends", cwd=tmp_path, OPENAI_BASE_URL=url)
    assert done.returncode == 0
    openai_line = done.stdout.splitlines()[1]
    assert openai_line.startswith(f"  openai  unavailable  no server at {url} (cannot connect")
    assert openai_line.endswith("start one, or set OPENAI_BASE_URL")
    assert done.stdout.splitlines()[0].startswith("* local   available")


def test_cx_backends_names_the_models_a_server_lists(
    server: OpenAIServer, tmp_path: Path
) -> None:
    # A model the server does not list may still be served (llama-cpp-python's server takes
    # any name for its one model): usable, with the list shown.
    done = cx("backends", "--model", "gpt-9", cwd=tmp_path, OPENAI_BASE_URL=server.url)
    assert done.stdout.splitlines()[1] == (
        f"  openai  available    {server.url}, model gpt-9: not listed by the server (it lists: "
        "test-embed, test-model); a server with one model may take any name, others answer 404")
    done = cx("backends", cwd=tmp_path, OPENAI_BASE_URL=server.url)
    assert done.stdout.splitlines()[1] == (
        f"  openai  unavailable  {server.url} answers, but no model is chosen: set --model or "
        "CX_MODEL (it lists: test-embed, test-model)")


def test_the_llama_backend_without_a_model_is_a_bad_command_line(tmp_path: Path) -> None:
    done = cx("run", "-", "--backend", "llama", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("cx: the llama backend needs ")


def test_a_bad_cx_toml_is_a_bad_command_line(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text("max_retries = -2\n")
    done = cx("run", "-", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"cx: {tmp_path / 'cx.toml'}: max_retries must be a whole number " \
                          ">= 0, got -2\n"
