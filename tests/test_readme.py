"""README's library tour promises snippets that run as pasted: each one runs here, alone.

Each ```python block of "A 5-minute tour of the library" (up to the next ``## `` section) runs
in a fresh interpreter of this environment, in an empty directory and with no backend settings
in the environment, as on a newcomer's machine: it must exit 0 and write nothing to stderr (a
warning or a stray traceback breaks the promise as surely as an error). The ```cx blocks of
the tour's "Models that act" run too, as ``cx run`` would run them on the local backend.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cxlang.program import ExitCode, RunOptions, run_source

README = Path(__file__).resolve().parents[1] / "README.md"
TOUR = "## A 5-minute tour of the library"
SETTINGS_ENV = ("CX_BACKEND", "CX_MODEL", "CX_EMBEDDING_MODEL", "OPENAI_BASE_URL",
                "OPENAI_API_KEY")


def tour_snippets() -> list[tuple[str, str]]:
    """(the subsection it is in, its code) for each python block of the tour."""
    text = README.read_text(encoding="utf-8")
    start = text.index(TOUR)
    end = text.find("\n## ", start + len(TOUR))
    snippets: list[tuple[str, str]] = []
    heading = "tour"
    block = re.compile(r"^### (?P<heading>[^\n]+)$|^```python\n(?P<code>.*?)^```$",
                       re.MULTILINE | re.DOTALL)
    for match in block.finditer(text, start, len(text) if end < 0 else end):
        if match["heading"]:
            heading = match["heading"]
        else:
            snippets.append((heading, match["code"]))
    return snippets


SNIPPETS = tour_snippets()


def test_the_tour_has_its_snippets() -> None:
    # Guards the extraction: a renamed heading or fence must not leave nothing to run.
    headings = [heading for heading, _ in SNIPPETS]
    assert headings == ["tour", "Retrying a branch", "Streaming results as they finish",
                        "The event bus",
                        "The AI services from Python", "Models that act: schemas and tools"]


@pytest.mark.parametrize(("heading", "code"), SNIPPETS, ids=[h for h, _ in SNIPPETS])
def test_a_tour_snippet_runs_as_pasted(heading: str, code: str, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_ENV}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, ""), f"{heading}:\n{code}"


def acting_programs() -> list[str]:
    """The ```cx blocks of the tour's "Models that act" subsection."""
    text = README.read_text(encoding="utf-8")
    start = text.index("### Models that act")
    end = text.index("\n## ", start)
    return re.findall(r"^```cx\n(.*?)^```$", text[start:end], re.MULTILINE | re.DOTALL)


def test_the_models_that_act_program_runs_as_pasted() -> None:
    (program,) = acting_programs()
    out, err = io.StringIO(), io.StringIO()
    code = run_source(program, "readme.cx", RunOptions(out=out, err=err))
    assert (code, err.getvalue()) == (ExitCode.OK, "")
    assert out.getvalue().splitlines()[:3] == [
        "example 1", 'weather.lookup gave {"city": "example", "celsius": 21}',
        'clock.now gave "12:00"']
