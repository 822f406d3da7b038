"""``cx test``: golden-output tests of CX programs, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def cx_test(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cxlang.cli.main", "test", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_examples_pass_their_goldens() -> None:
    done = cx_test(str(EXAMPLES), cwd=EXAMPLES.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("14 passed in ")


def test_a_mismatch_is_a_diff_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "good.cx").write_text('print("same");\n')
    (tmp_path / "good.out").write_text("same\n")
    (tmp_path / "bad.cx").write_text('print("new");\n')
    (tmp_path / "bad.out").write_text("old\n")
    (tmp_path / "untested.cx").write_text('print("no golden");\n')
    done = cx_test(cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "FAILED bad.cx: standard output differs (exit code 0):"
    assert "-old" in lines and "+new" in lines
    assert lines[-1].startswith("1 failed, 1 passed in ")


def test_standard_error_must_match_its_golden_or_be_empty(tmp_path: Path) -> None:
    (tmp_path / "loud.cx").write_text("print(1 / 0);\n")
    (tmp_path / "loud.out").write_text("")
    done = cx_test(cwd=tmp_path)
    assert done.returncode == 1
    assert "standard error differs (exit code 1)" in done.stdout
    assert "+loud.cx:1:7: runtime error at the top level: division by zero" in done.stdout


def test_args_are_the_flags_of_cx_run(tmp_path: Path) -> None:
    (tmp_path / "loop.cx").write_text("on x (e) { emit x; }\nemit x;\n")
    (tmp_path / "loop.args").write_text("--max-events 10\n")
    (tmp_path / "loop.out").write_text("")
    assert cx_test("--update", cwd=tmp_path).returncode == 0
    assert "10 events" in (tmp_path / "loop.err").read_text()
    assert cx_test(cwd=tmp_path).returncode == 0


def test_update_writes_the_goldens_then_they_pass(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text('print("hello"); print(1 / 0);\n')
    (tmp_path / "prog.out").write_text("stale\n")
    done = cx_test("--update", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "prog.out").read_text() == "hello\n"
    assert "division by zero" in (tmp_path / "prog.err").read_text()
    assert cx_test(cwd=tmp_path).returncode == 0


def test_a_program_that_does_not_end_fails(tmp_path: Path) -> None:
    (tmp_path / "forever.cx").write_text("while (true) { }\n")
    (tmp_path / "forever.out").write_text("")
    done = cx_test("--timeout", "2", cwd=tmp_path)
    assert done.returncode == 1
    assert "FAILED forever.cx: did not end within the timeout" in done.stdout


def test_nothing_to_test_says_so(tmp_path: Path) -> None:
    done = cx_test(cwd=tmp_path)
    assert done.returncode == 2
    assert "no program with golden output" in done.stderr
