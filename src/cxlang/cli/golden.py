"""``cx test [PATH...]``: run CX programs and compare what they print with golden files.

A test is a program ``NAME.cx`` with its expected standard output in ``NAME.out``, beside it
or in an ``expected/`` directory beside it (as the project's own ``examples/`` keeps them).
``NAME.err`` holds the expected standard error (without one, standard error must be empty),
and ``NAME.args`` the flags of ``cx run`` for it (``--latency 30ms``, say). A
``NAME.cassette`` (a recording, ``cx run --record NAME.cassette``) answers the program's model
calls (``--replay``), so an agent program is tested against real model answers, offline and
the same every time. Each program runs
in its own process, from its own directory, so output that names files reads the same
wherever ``cx test`` is started; several run at once.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_NO_TESTS = 2  # as for a bad command line: nothing was tested


def add_parser(commands: Any) -> None:
    test = commands.add_parser(
        "test", help="run programs that have golden output (NAME.cx + NAME.out) and compare; "
                     "a NAME.cassette answers their model calls (cx run --replay)")
    test.add_argument("paths", nargs="*", default=["."], metavar="PATH",
                      help="programs or directories to search (default: the current directory)")
    test.add_argument("--update", action="store_true",
                      help="write what the programs print into their golden files")
    test.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                      help="programs run at once (default: one per CPU)")
    test.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                      help="a program still running after this long fails (default 60)")


@dataclass(frozen=True, slots=True)
class Golden:
    """One program and the files that say what it must print."""

    program: Path
    out: Path
    err: Path
    args: Path
    cassette: Path

    @property
    def flags(self) -> list[str]:
        flags = shlex.split(self.args.read_text(encoding="utf-8")) if self.args.exists() else []
        if self.cassette.exists():  # named from the program's directory, where it runs
            flags += ["--replay", self.cassette.relative_to(self.program.parent).as_posix()]
        return flags


@dataclass(frozen=True, slots=True)
class Outcome:
    golden: Golden
    out: str
    err: str
    code: int | None  # None: it ran past the timeout

    def problems(self) -> list[str]:
        """What differs from the golden files, each with its diff."""
        if self.code is None:
            return ["did not end within the timeout"]
        found = []
        expected_err = _read(self.golden.err)
        for what, path, expected, actual in (
                ("standard output", self.golden.out, _read(self.golden.out), self.out),
                ("standard error", self.golden.err, expected_err, self.err)):
            if actual != expected:
                diff = difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            str(path), "what it printed")
                found.append(f"{what} differs (exit code {self.code}):\n"
                             + "".join(_ended(line) for line in diff))
        return found


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    goldens = sorted(set(_collect([Path(p) for p in args.paths])), key=lambda g: g.program)
    if not goldens:
        where = ", ".join(args.paths)
        print(f"cx test: no program with golden output (NAME.cx and NAME.out) in {where}",
              file=sys.stderr)
        return _NO_TESTS
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        outcomes = list(pool.map(lambda g: _run_one(g, args.timeout), goldens))
    if args.update:
        for outcome in outcomes:
            _update(outcome)
        print(f"updated {len(outcomes)} golden file set{'s' if len(outcomes) > 1 else ''}")
        return 0
    failed = 0
    for outcome in outcomes:
        problems = outcome.problems()
        if problems:
            failed += 1
            print(f"FAILED {outcome.golden.program}: " + "\n".join(problems))
    elapsed = time.perf_counter() - started
    passed = len(outcomes) - failed
    summary = ", ".join(part for part in (f"{failed} failed" if failed else "",
                                          f"{passed} passed" if passed else "") if part)
    print(f"{summary} in {elapsed:.2f}s")
    return 1 if failed else 0


def _collect(paths: list[Path]) -> Iterator[Golden]:
    for path in paths:
        programs = sorted(path.rglob("*.cx")) if path.is_dir() else [path]
        for program in programs:
            golden = _golden(program)
            if golden is not None:
                yield golden


def _golden(program: Path) -> Golden | None:
    """The golden files of *program*: beside it, else in ``expected/`` beside it."""
    for directory in (program.parent, program.parent / "expected"):
        out = directory / f"{program.stem}.out"
        if out.exists():
            return Golden(program, out, directory / f"{program.stem}.err",
                          directory / f"{program.stem}.args",
                          directory / f"{program.stem}.cassette")
    return None


def _run_one(golden: Golden, timeout: float) -> Outcome:
    command = [sys.executable, "-m", "cxlang.cli.main", "run", *golden.flags,
               golden.program.name]
    try:
        done = subprocess.run(command, cwd=golden.program.parent, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as expired:
        return Outcome(golden, _text(expired.stdout), _text(expired.stderr), None)
    return Outcome(golden, done.stdout, done.stderr, done.returncode)


def _update(outcome: Outcome) -> None:
    golden = outcome.golden
    golden.out.write_text(outcome.out, encoding="utf-8")
    if outcome.err:
        golden.err.write_text(outcome.err, encoding="utf-8")
    elif golden.err.exists():
        golden.err.unlink()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _text(captured: str | bytes | None) -> str:
    if isinstance(captured, bytes):
        return captured.decode("utf-8", "replace")
    return captured or ""


def _ended(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ no newline at end\n"
