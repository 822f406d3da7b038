"""Coverage-guided fuzzing of the whole pipeline with atheris (``make fuzz`` runs it).

Each input is taken as program text; the same check as the Hypothesis fuzzer applies (a run,
a runtime error or a diagnostic with a position, never a Python exception), and anything else
is a crash that atheris reports with the input that caused it. The examples seed the corpus.

    python tests/fuzz/atheris_pipeline.py -runs=20000 examples/
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from tests.fuzz.test_pipeline import check


def one_input(data: bytes) -> None:
    check(data.decode("utf-8", errors="replace"))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
