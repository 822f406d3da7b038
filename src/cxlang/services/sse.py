"""Server-sent events: the framing OpenAI-compatible servers use for streamed completions.

Only what a client needs: ``data:`` lines (several join with a newline), ``event:``, blank
lines that end an event, ``:`` comments (keep-alives) ignored, LF or CRLF endings.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SseEvent", "sse_events"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"


async def sse_events(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """Events from a stream of lines (line endings already removed or not)."""
    data: list[str] = []
    event = "message"
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent("\n".join(data), event)
            data, event = [], "message"
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # a stream that ends without its final blank line still delivers its last event
        yield SseEvent("\n".join(data), event)
