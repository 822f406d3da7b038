"""Where the numbers were taken: they mean little without the machine and the loop."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from .._version import __version__
from .baselines import installed_version
from .measure import loop_name
from .peers import PEERS

__all__ = ["Environment", "describe"]

# FastStream is the peer of the nats scenario, which builds its own row.
PEER_DISTRIBUTIONS = (*dict.fromkeys(peer.distribution for peer in PEERS), "faststream")


@dataclass(frozen=True, slots=True)
class Environment:
    cxlang: str
    python: str
    implementation: str
    platform: str
    cpu_count: int
    event_loop: str
    uvloop: bool
    peers: dict[str, str | None]  # version by package, None where not installed
    quick: bool
    scale: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(*, quick: bool, scale: bool = False) -> Environment:
    loop = loop_name()
    return Environment(
        cxlang=__version__,
        python=platform.python_version(),
        implementation=sys.implementation.name,
        platform=platform.platform(),
        cpu_count=os.cpu_count() or 1,
        event_loop=loop,
        uvloop=loop.startswith("uvloop"),
        peers={name: installed_version(name) for name in PEER_DISTRIBUTIONS},
        quick=quick,
        scale=scale,
    )
