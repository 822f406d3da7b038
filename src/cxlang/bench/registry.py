"""The scenarios, by name: what ``--only`` selects from and the order of the table.

A scenario is a function from a :class:`~.measure.Budget` to result rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .cpu import cpu
from .fanout import no_op, suspending
from .io_wait import io_wait
from .language import compile_time, hot_loop
from .measure import Budget
from .memory import memory
from .model import ScenarioResult
from .nats_bus import nats_bus
from .throughput import throughput
from .tools import tool_turn

__all__ = ["SCENARIOS", "Scenario", "names", "select"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[Budget], list[ScenarioResult]]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("fanout", "K=10/100 no-op handlers vs gather, TaskGroup, LangChain, LangGraph, "
             "LlamaIndex", no_op),
    Scenario("fanout-suspend", "the same, handlers suspend once", suspending),
    Scenario("io", "10 handlers of 30 ms I/O vs sequential, the peers and the 30 ms limit",
             io_wait),
    Scenario("bus", "events/s through the bus vs an asyncio.Queue loop", throughput),
    Scenario("memory", "bytes per in-flight branch, process peak vs sequential", memory),
    Scenario("cpu", "cpu_bound handlers in the process pool vs in process", cpu),
    Scenario("compile", "parse and compile a generated 2,000-line CX program", compile_time),
    Scenario("hotloop", "a CX loop vs the same loop in plain Python", hot_loop),
    Scenario("tools", "a model turn calling 10 tools vs the 10 handlers called directly",
             tool_turn),
    Scenario("nats", "the bus and parallel calls over a NATS server on loopback", nats_bus),
)


def names() -> list[str]:
    return [scenario.name for scenario in SCENARIOS]


def select(only: Sequence[str] | None) -> list[Scenario]:
    """The scenarios named in *only* (all when it is empty), in registry order."""
    return [s for s in SCENARIOS if not only or s.name in only]
