"""``--cache DIR``: identical model calls answered from a directory, across runs.

A file per call, named by the SHA-256 of the backend, the model and the call
(:mod:`.cassette`), holding the answer (and its pieces, when streamed). An answer from the
cache asks no model, so it counts no tokens. Failures are not kept: the next run asks again.
``cx cache clear`` empties the directory (:func:`clear_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from .backend import Backend, BackendUnavailableError, PieceSink, Reply, ServiceRequest, Turn
from .cassette import Call, call_data, call_key, read_reply, written_reply

__all__ = ["CachedBackend", "clear_cache"]

T = TypeVar("T")
_SUFFIX = ".cx-cache.json"  # only such files are ever removed by clear_cache


class CachedBackend:
    """*inner* (asking *model*), its answers kept in *directory*."""

    def __init__(self, inner: Backend, directory: str | Path, model: str | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = model
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot make the cache directory {directory}: "
                                          f"{exc.strerror or exc}") from None

    async def complete(self, request: ServiceRequest) -> str:
        return await self._cached(call_data("complete", request),
                                  lambda: self.inner.complete(request), str, str)

    async def chat(self, request: ServiceRequest) -> str:
        return await self._cached(call_data("chat", request),
                                  lambda: self.inner.chat(request), str, str)

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        path = self._path(call_data("stream", request))
        kept = _read(path)
        if kept is not None:
            for piece in kept["pieces"]:
                yield piece
            return
        pieces: list[str] = []
        async for piece in self.inner.stream(request):
            pieces.append(piece)
            yield piece
        _write(path, {"answer": "".join(pieces), "pieces": pieces})

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        path = self._path(call_data("act", request, turn))
        kept = _read(path)
        if kept is not None:
            if pieces is not None:
                for piece in kept.get("pieces", []):
                    await pieces(piece)
            return read_reply(kept["answer"])
        streamed: list[str] = []

        async def sink(piece: str) -> None:
            streamed.append(piece)
            assert pieces is not None
            await pieces(piece)

        reply = await self.inner.act(request, turn, None if pieces is None else sink)
        _write(path, {"answer": written_reply(reply), "pieces": streamed})
        return reply

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._cached(call_data("embed", texts=texts),
                                  lambda: self.inner.embed(texts), list, list)

    async def classify(self, request: ServiceRequest) -> bool:
        return await self._cached(call_data("classify", request),
                                  lambda: self.inner.classify(request), bool, bool)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _cached(self, call: Call, ask: Callable[[], Awaitable[T]],
                      written: Callable[[T], Any], read: Callable[[Any], T]) -> T:
        path = self._path(call)
        kept = _read(path)
        if kept is not None:
            return read(kept["answer"])
        answer = await ask()
        _write(path, {"answer": written(answer)})
        return answer

    def _path(self, call: Call) -> Path:
        key = call_key({"backend": self.name, "model": self.model, **call})
        return self.directory / (hashlib.sha256(key.encode()).hexdigest() + _SUFFIX)


def _read(path: Path) -> dict[str, Any] | None:
    """What the cache holds at *path*; None when nothing (or a file cut short: asked again)."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and "answer" in kept else None


def _write(path: Path, kept: dict[str, Any]) -> None:
    # Written aside and renamed: a parallel branch, or another run, never reads half a file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(kept, file, ensure_ascii=False)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)  # a full disk: the answer is still given


def clear_cache(directory: str | Path) -> int:
    """Remove the cached answers in *directory*; how many there were."""
    removed = 0
    for path in Path(directory).glob("*" + _SUFFIX):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
