"""The ``cx`` command, run as a subprocess with the environment's own console script."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import pytest

from cxlang import __version__
from cxlang.program import ExitCode, RunOptions, run_source

CX = Path(sys.executable).with_name("cx")

pytestmark = pytest.mark.skipif(not CX.exists(), reason=f"no cx script next to {sys.executable}")


def cx(*args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(CX), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout
    return done


GOOD = ('on analytics.complete (event) { return { tone: "positive" }; }\n'
        'think { prompt: "q3", analytics: analytics.complete, handlers: [ analysis.done ] };\n'
        'on analysis.done (event) { print(event.analytics.tone); print(event.result); }\n'
        'print("top");\n')
GOOD_OUT = "top\npositive\nThought about: q3\n"


def test_version() -> None:
    done = cx("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"cx {__version__}"


def test_run_a_file(tmp_path: Path) -> None:
    program = tmp_path / "good.cx"
    program.write_text(GOOD, encoding="utf-8")
    done = cx("run", program)
    assert (done.returncode, done.stdout, done.stderr) == (0, GOOD_OUT, "")


def test_run_stdin() -> None:
    done = cx("run", "-", stdin=GOOD)
    assert (done.returncode, done.stdout, done.stderr) == (0, GOOD_OUT, "")


def test_run_with_latency_and_backend(tmp_path: Path) -> None:
    program = tmp_path / "good.cx"
    program.write_text(GOOD, encoding="utf-8")
    done = cx("run", program, "--backend", "local", "--latency", "5ms", "--timeout", "30s")
    assert (done.returncode, done.stdout) == (0, GOOD_OUT)


def test_stats_name_the_loop_auto_picks_uvloop_when_installed() -> None:
    asyncio_run = cx("run", "-", "--stats", "--loop", "asyncio", stdin=GOOD)
    assert asyncio_run.returncode == 0
    # The first line; a line per model's usage follows it (the program thinks once).
    assert asyncio_run.stderr.splitlines()[0].endswith("events, asyncio loop)")
    auto = cx("run", "-", "--stats", stdin=GOOD)
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert (auto.returncode, auto.stdout) == (0, GOOD_OUT)
    assert auto.stderr.splitlines()[0].endswith(f"events, {expected} loop)")


def test_loop_uvloop_without_uvloop_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    err = io.StringIO()
    code = run_source(GOOD, "good.cx", RunOptions(out=io.StringIO(), err=err, loop="uvloop"))
    assert code == ExitCode.BAD_PROGRAM
    assert "uvloop is not installed" in err.getvalue()
    auto = run_source(GOOD, "good.cx", RunOptions(out=io.StringIO(), err=err, loop="auto"))
    assert auto == ExitCode.OK, "auto falls back to asyncio's loop"


def test_run_bad_program_exits_2_with_position() -> None:
    done = cx("run", "-", stdin='print("a");\nprint(nope);\n')
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("<stdin>:2:7: unknown variable 'nope'\n")
    assert "    print(nope);\n          ^~~~" in done.stderr


def test_run_syntax_error_exits_2(tmp_path: Path) -> None:
    program = tmp_path / "syntax.cx"
    program.write_text("var = ;\n", encoding="utf-8")
    done = cx("run", program)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{program}:1:")


def test_runtime_error_exits_1_and_shows_only_cx_positions(tmp_path: Path) -> None:
    program = tmp_path / "boom.cx"
    program.write_text('on go (e) { print("one"); }\non go (e) {\n  print(1 / 0);\n}\n'
                       'on go (e) { print("three"); }\nemit go;\n', encoding="utf-8")
    done = cx("run", program)
    assert done.returncode == 1
    assert done.stdout == "one\nthree\n"
    assert done.stderr == (
        f"{program}:3:9: runtime error in a handler of 'go' (handling 'go'): division by zero\n"
        "      print(1 / 0);\n"
        "            ^~~~~\n")


def test_time_limit_exits_3(tmp_path: Path) -> None:
    program = tmp_path / "slow.cx"
    program.write_text('on system.start {\n  await { durationMs: 60000 };\n}\n', encoding="utf-8")
    done = cx("run", program, "--timeout", "200ms")
    assert done.returncode == 3
    assert "time limit" in done.stderr
    assert f"handler at {program}:1 (on system.start)" in done.stderr


def test_check_good_files(tmp_path: Path) -> None:
    one, two = tmp_path / "one.cx", tmp_path / "two.cx"
    one.write_text(GOOD, encoding="utf-8")
    two.write_text("print(1);\n", encoding="utf-8")
    done = cx("check", one, two)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_check_prints_every_diagnostic_of_every_file(tmp_path: Path) -> None:
    good = tmp_path / "good.cx"
    good.write_text(GOOD, encoding="utf-8")
    bad1 = tmp_path / "bad1.cx"
    bad1.write_text("print(a);\nprint(b);\n", encoding="utf-8")
    bad2 = tmp_path / "bad2.cx"
    bad2.write_text('think { prompt: "p", x: x.any };\n', encoding="utf-8")
    bad3 = tmp_path / "bad3.cx"
    bad3.write_text("var = ;\n", encoding="utf-8")
    done = cx("check", bad1, good, bad2, bad3)
    assert done.returncode == 2
    assert done.stdout == ""
    heads = [line for line in done.stderr.splitlines() if not line.startswith("    ")]
    assert heads[0] == f"{bad1}:1:7: unknown variable 'a'"
    assert heads[1] == f"{bad1}:2:7: unknown variable 'b'"
    assert heads[2].startswith(f"{bad2}:1:22: 'x.any' cannot be an event reference")
    assert heads[3].startswith(f"{bad3}:1:")
    assert len(heads) == 4


@pytest.mark.parametrize("command", ["check", "run"])
def test_errors_as_a_parameter_name_exits_2_at_the_property(tmp_path: Path,
                                                             command: str) -> None:
    program = tmp_path / "errors.cx"
    program.write_text('print("not run");\nthink { prompt: "p",\n  _errors: x.failed };\n',
                       encoding="utf-8")
    done = cx(command, program)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"{program}:3:3: handler parameter '_errors' is reserved: the consolidated payload "
        "keeps the failures of the call's parameters under '_errors'; give the parameter "
        "another name\n"
        "      _errors: x.failed };\n"
        "      ^~~~~~~\n")


def test_check_does_not_run_the_program(tmp_path: Path) -> None:
    program = tmp_path / "prints.cx"
    program.write_text('print("should not print");\n', encoding="utf-8")
    done = cx("check", program)
    assert (done.returncode, done.stdout) == (0, "")


def test_unreadable_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "missing.cx"
    done = cx("run", missing)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"cx: cannot read {missing}:")


def test_directory_and_binary_files_are_unreadable(tmp_path: Path) -> None:
    binary = tmp_path / "binary.cx"
    binary.write_bytes(b"\xff\xfe\x00print")
    good = tmp_path / "good.cx"
    good.write_text("print(1);\n", encoding="utf-8")
    done = cx("check", tmp_path, binary, good)
    assert done.returncode == 2
    assert f"cx: cannot read {tmp_path}:" in done.stderr
    assert f"cx: cannot read {binary}:" in done.stderr


@pytest.mark.parametrize("value", ["fast", "-5ms", "10 parsecs", "ms", ""])
def test_bad_latency_exits_2(value: str) -> None:
    done = cx("run", "-", "--latency", value, stdin="print(1);\n")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "--latency" in done.stderr


def test_bad_timeout_and_backend_exit_2() -> None:
    assert cx("run", "-", "--timeout", "soon", stdin="print(1);\n").returncode == 2
    done = cx("run", "-", "--backend", "nonexistent", stdin="print(1);\n")
    assert done.returncode == 2
    assert "nonexistent" in done.stderr


def test_no_command_exits_2() -> None:
    assert cx().returncode == 2
    assert cx("frobnicate").returncode == 2
