"""Server-sent events: the framing OpenAI-compatible servers use for streamed completions.

Only what a client needs: ``data:`` lines (several join with a newline), ``event:``, blank
lines that end an event, ``:`` comments (keep-alives) ignored, LF, CRLF or CR endings.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SseEvent", "sse_events", "sse_lines"]

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"


async def sse_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """The lines of a UTF-8 byte stream, without their endings: SSE's CRLF, LF or CR only
    (not every separator ``str.splitlines`` knows: a JSON string may hold U+2028 as is).

    Each chunk is split on its own, so a long line costs time in proportion to its length;
    bounding how much a line may grow is the caller's, by bounding the chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    line: list[str] = []  # the current line's parts, from the chunks it spans so far
    after_cr = False  # the last text ended in CR: a LF opening the next belongs to it
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if after_cr and text.startswith("\n"):
            text = text[1:]
            after_cr = False
        if not text:
            continue
        after_cr = text.endswith("\r")
        *complete, rest = _LINE_END.split(text)
        for part in complete:
            line.append(part)
            yield "".join(line)
            line = []
        line.append(rest)
    line.append(decoder.decode(b"", final=True))
    if last := "".join(line):  # the stream ended without a final line ending
        yield last


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
