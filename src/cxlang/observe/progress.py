"""The live status line of ``cx run`` on a terminal: events handled, handlers running, parallel
calls in flight, failures.

A :class:`~cxlang.runtime.observe.Sink` that only counts, drawn with ``rich`` once the run has
lasted :data:`DELAY` seconds (short runs never flicker), above nothing and erased at the end.
The program's own output goes through :attr:`ProgressDisplay.out`, which prints above the line.
"""

from __future__ import annotations

import asyncio
from typing import TextIO, cast

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..runtime.observe import Span

__all__ = ["DELAY", "ProgressDisplay"]

DELAY = 1.0  # seconds before the line appears


class ProgressDisplay:
    """Counts spans; shows the counts on *file* (a terminal) while the run lasts."""

    def __init__(self, file: TextIO, *, delay: float = DELAY) -> None:
        self.file = file
        self.delay = delay
        self.events = 0
        self.handlers = 0
        self.calls = 0
        self.failures = 0
        self.console = Console(file=file)
        # Only write, flush and isatty are used on a program's output stream.
        self.out = cast(TextIO, _Above(self))
        self.live: Live | None = None
        self._timer: asyncio.TimerHandle | None = None

    # Sink ------------------------------------------------------------------------------------

    def started(self, span: Span) -> None:
        if span.kind == "dispatch":
            self.events += 1
        elif span.kind == "handler":
            self.handlers += 1
        elif span.kind == "call":
            self.calls += 1

    def ended(self, span: Span) -> None:
        if span.kind == "handler":
            self.handlers -= 1
        elif span.kind == "call":
            self.calls -= 1
        if span.failure is not None and _counts_as_failure(span):
            self.failures += 1

    def close(self) -> None:
        self.stop()

    # The line --------------------------------------------------------------------------------

    def start(self) -> None:
        """Show the line once the run has lasted ``delay`` seconds."""
        self._timer = asyncio.get_running_loop().call_later(self.delay, self._show)

    def _show(self) -> None:
        self._timer = None
        self.live = Live(console=self.console, get_renderable=self.render, transient=True,
                         refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
        self.live.start(refresh=True)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.live is not None:
            self.live.stop()
            self.live = None

    def render(self) -> Text:
        line = Text("cx ", style="bold")
        line.append(f"{self.events:,} events handled", style="cyan")
        line.append(f" | {self.handlers:,} handlers running | {self.calls:,} parallel calls "
                    "in flight | ")
        line.append(f"{self.failures:,} failures", style="bold red" if self.failures else "")
        return line


def _counts_as_failure(span: Span) -> bool:
    """One failure per thing that failed: a branch (not also its handler), a handler the bus
    started, a service call; a run's own end is not one."""
    if span.kind == "handler":
        return span.parent is None or span.parent.kind != "branch"
    if span.kind == "service":  # one cancelled with its handler is not a failure of its own
        return span.failure is not None and span.failure.kind != "cancelled"
    return span.kind == "branch"


class _Above:
    """A text stream for the program's output that prints above the live line while it shows."""

    def __init__(self, display: ProgressDisplay) -> None:
        self.display = display
        self._partial = ""

    def write(self, text: str) -> int:
        live = self.display.live
        if live is None:
            return self.display.file.write(text)
        text, self._partial = self._partial + text, ""
        complete, newline, rest = text.rpartition("\n")
        self._partial = rest
        if newline:
            live.console.print(Text(complete), soft_wrap=True, highlight=False, markup=False)
        return len(text)

    def flush(self) -> None:
        if self._partial and self.display.live is None:
            self.display.file.write(self._partial)
            self._partial = ""
        self.display.file.flush()

    def isatty(self) -> bool:
        return self.display.file.isatty()
