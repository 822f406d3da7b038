"""Running CX source in-process, with its output captured."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

from cxlang.program import RunOptions, run_source

FILENAME = "prog.cx"
POSITION = re.compile(r"^prog\.cx:\d+:\d+: ", re.MULTILINE)
PYTHON_LEAKS = ("<class", "<function", "<built-in", "<bound", "<module", "object at 0x",
                "Traceback", "__builtins__", "cx_on_", "cx_main", "v_self")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()


def run(source: str, *, timeout: float = 5.0, latency: float = 0.0) -> Result:
    """Compile and run *source* as ``prog.cx``; a generous time limit keeps a hang finite."""
    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(out=out, err=err, latency=latency,
                         timeout=math.inf if timeout <= 0 else timeout)
    code = run_source(source, FILENAME, options)
    return Result(int(code), out.getvalue(), err.getvalue())


def leaks(text: str, source: str = "") -> list[str]:
    """The Python-internal markers found in *text* (those that *source* itself spells aside)."""
    return [marker for marker in PYTHON_LEAKS if marker in text and marker not in source]
