"""The live status line: on a terminal only (a pseudo-terminal here), never when piped or
with --quiet; structured logs with --log-format json."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from cxlang.observe.logs import configure_logging

# Lasts well over the line's one-second delay, however fast the machine.
PROGRAM = 'await { durationMs: 1500 };\nprint("finished");\n'
STATUS = b"events handled"


def _cx(*args: str) -> list[str]:
    return [sys.executable, "-m", "cxlang.cli.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}


def _on_a_terminal(program: Path, *flags: str) -> bytes:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(_cx("run", str(program), *flags), stdin=subprocess.DEVNULL,
                                   stdout=follower, stderr=subprocess.DEVNULL, env=_env())
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the run ended
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    return output


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "slow.cx"
    path.write_text(PROGRAM)
    return path


def test_the_status_line_shows_on_a_terminal(program: Path) -> None:
    output = _on_a_terminal(program)
    assert STATUS in output and b"parallel calls in flight" in output
    assert b"finished" in output


def test_quiet_turns_it_off(program: Path) -> None:
    output = _on_a_terminal(program, "--quiet")
    assert STATUS not in output and b"finished" in output


def test_nothing_shows_when_piped(program: Path) -> None:
    done = subprocess.run(_cx("run", str(program)), capture_output=True, env=_env(),
                          timeout=60, check=True)
    assert done.stdout == b"finished\n"
    assert STATUS not in done.stderr


def test_json_logs_are_one_object_per_line() -> None:
    stream = StringIO()
    configure_logging("info", "json", stream)
    try:
        logging.getLogger("cxlang.services").info("model %s answered", "local")
    finally:
        configure_logging()
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "info" and entry["logger"] == "cxlang.services"
    assert entry["message"] == "model local answered"


def test_opentelemetry_from_the_standard_variables(tmp_path: Path) -> None:
    program = tmp_path / "p.cx"
    program.write_text('on a.x (e) { return 1; }\nthink { prompt: "x", r: a.x };\n')
    env = {**_env(), "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "cx-test"}
    done = subprocess.run(_cx("run", str(program)), capture_output=True, env=env, timeout=60,
                          check=True, text=True)
    assert '"name": "branch r"' in done.stdout and "cx-test" in done.stdout
