"""Every example program runs and prints exactly its golden output (examples/expected/)."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cxlang.program import ExitCode, RunOptions, run_source
from cxlang.program.event_loop import LoopChoice

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = EXAMPLES / "expected"


LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"))]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("program", sorted(EXAMPLES.glob("*.cx")), ids=lambda p: p.stem)
def test_example_matches_its_golden_output(program: Path, loop: LoopChoice) -> None:
    """On both loops: ``cx run`` picks uvloop when it is installed."""
    out, err = io.StringIO(), io.StringIO()
    name = f"examples/{program.name}"
    code = run_source(program.read_text(), name, RunOptions(out=out, err=err, loop=loop))
    assert out.getvalue() == (EXPECTED / f"{program.stem}.out").read_text()
    expected_err = EXPECTED / f"{program.stem}.err"
    assert err.getvalue() == (expected_err.read_text() if expected_err.exists() else "")
    assert code == ExitCode.OK  # every failure an example shows, it handles


def test_there_are_the_fourteen_examples_the_readme_promises() -> None:
    assert len(list(EXAMPLES.glob("*.cx"))) == 14


def test_the_python_library_example_runs() -> None:
    script = EXAMPLES / "python" / "parallel_handlers.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert lines[0] == "analysis.done received tone = positive"
    payload = json.loads("\n".join(lines[1:-1]))
    assert payload["reporting"] == "Summary of: Analyse the Q3 numbers"
    assert payload["risk"] is None
    assert payload["_errors"]["risk"]["type"] == "error"
    assert lines[-1].startswith("parallel: ")
