"""Where the numbers were taken: they mean little without the machine and the loop."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from .._version import __version__
from . import langchain_baseline
from .measure import loop_name

__all__ = ["Environment", "describe"]


@dataclass(frozen=True, slots=True)
class Environment:
    cxlang: str
    python: str
    implementation: str
    platform: str
    cpu_count: int
    event_loop: str
    uvloop: bool
    langchain_core: str | None
    quick: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(*, quick: bool) -> Environment:
    loop = loop_name()
    return Environment(
        cxlang=__version__,
        python=platform.python_version(),
        implementation=sys.implementation.name,
        platform=platform.platform(),
        cpu_count=os.cpu_count() or 1,
        event_loop=loop,
        uvloop=loop.startswith("uvloop"),
        langchain_core=langchain_baseline.installed_version(),
        quick=quick,
    )
