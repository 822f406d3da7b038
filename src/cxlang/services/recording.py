"""``--record FILE`` and ``--replay FILE``: a run's model calls written down, and answered
from what was written down, for tests that are deterministic and offline.

A recording is JSON lines, one per model call, in the order the calls ended: the backend and
model, the call (:mod:`.cassette`), and its ``answer`` (with its ``pieces`` when streamed) or
the ``error`` it failed with, and the tokens it used. Replaying never touches a backend: each
call is looked up by its content, so parallel branches find their answers whatever order they
arrive in; identical calls take the answers recorded for them in order. A call that is not in
the recording fails, as a failed model call does, naming the closest recorded one.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, TypeVar

from .backend import (
    Backend,
    BackendError,
    BackendUnavailableError,
    PieceSink,
    Reply,
    ServiceRequest,
    Turn,
)
from .cassette import Call, call_data, call_key, describe_call, read_reply, written_reply
from .usage import Usage, report_usage, tallied, tallying

__all__ = ["Recorder", "Replayer"]

T = TypeVar("T")


class Recorder:
    """*inner*, writing each call it answers to *path* (*model*: the model it asks)."""

    def __init__(self, inner: Backend, path: str | Path, model: str | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = model
        try:
            self._file = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 - open until aclose
        except OSError as exc:
            raise BackendUnavailableError(f"cannot write the recording {path}: "
                                          f"{exc.strerror or exc}") from None

    async def complete(self, request: ServiceRequest) -> str:
        return await self._recorded(call_data("complete", request),
                                    lambda: self.inner.complete(request), str)

    async def chat(self, request: ServiceRequest) -> str:
        return await self._recorded(call_data("chat", request),
                                    lambda: self.inner.chat(request), str)

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        call = call_data("stream", request)
        pieces: list[str] = []
        tally: list[Usage] = []
        try:
            async with aclosing(tallied(self.inner.stream(request), tally)) as streamed:
                async for piece in streamed:
                    pieces.append(piece)
                    yield piece
        except BackendError as exc:
            self._write(call, tally, error=str(exc))
            raise
        finally:
            _report(tally)
        self._write(call, tally, answer="".join(pieces), pieces=pieces)

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        streamed: list[str] = []

        async def sink(piece: str) -> None:
            streamed.append(piece)
            assert pieces is not None
            await pieces(piece)

        return await self._recorded(
            call_data("act", request, turn),
            lambda: self.inner.act(request, turn, None if pieces is None else sink),
            written_reply, streamed if pieces is not None else None)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._recorded(call_data("embed", texts=texts),
                                    lambda: self.inner.embed(texts), list)

    async def classify(self, request: ServiceRequest) -> bool:
        return await self._recorded(call_data("classify", request),
                                    lambda: self.inner.classify(request), bool)

    async def aclose(self) -> None:
        self._file.close()
        await self.inner.aclose()

    async def _recorded(self, call: Call, ask: Callable[[], Awaitable[T]],
                        written: Callable[[T], Any], pieces: list[str] | None = None) -> T:
        try:
            with tallying() as tally:
                try:
                    answer = await ask()
                except BackendError as exc:
                    self._write(call, tally, error=str(exc))
                    raise
        finally:
            _report(tally)
        self._write(call, tally, answer=written(answer), pieces=pieces)
        return answer

    def _write(self, call: Call, tally: list[Usage], *, answer: Any = None,
               pieces: list[str] | None = None, error: str | None = None) -> None:
        line: dict[str, Any] = {"backend": self.name, "model": self.model, **call}
        if error is not None:
            line["error"] = error
        else:
            line["answer"] = answer
        if pieces is not None:
            line["pieces"] = pieces
        line["usage"] = [{"model": u.model, "input_tokens": u.input_tokens,
                          "output_tokens": u.output_tokens, "counted": u.counted}
                         for u in tally]
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()  # a run that a limit ends leaves at once: keep what it recorded


def _report(tally: list[Usage]) -> None:
    """The tokens of a recorded call, on to whoever tallies around the recorder."""
    for usage in tally:
        report_usage(usage)


_CALL_KEYS = ("method", "request", "turn", "texts")


class Replayer:
    """A backend called *name* answering from the recording at *path*, and from nowhere
    else."""

    def __init__(self, path: str | Path, name: str) -> None:
        self.name = name
        self.path = str(path)
        self._answers: defaultdict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self._recorded: dict[str, Call] = {}
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendUnavailableError(f"cannot read the recording {path}: {exc}") from None
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
                call = {key: entry[key] for key in _CALL_KEYS if key in entry}
                if "answer" not in entry and "error" not in entry:
                    raise ValueError("no answer")
            except (ValueError, TypeError):
                raise BackendUnavailableError(
                    f"{path}:{number}: not a line of a recording (cx run --record writes "
                    "them)") from None
            key = call_key(call)
            self._answers[key].append(entry)
            self._recorded.setdefault(key, call)

    async def complete(self, request: ServiceRequest) -> str:
        return str(self._answer(call_data("complete", request))["answer"])

    async def chat(self, request: ServiceRequest) -> str:
        return str(self._answer(call_data("chat", request))["answer"])

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        for piece in self._answer(call_data("stream", request)).get("pieces", []):
            yield piece

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        entry = self._answer(call_data("act", request, turn))
        if pieces is not None:
            for piece in entry.get("pieces", []):
                await pieces(piece)
        return read_reply(entry["answer"])

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._answer(call_data("embed", texts=texts))["answer"]
        return vectors

    async def classify(self, request: ServiceRequest) -> bool:
        return self._answer(call_data("classify", request))["answer"] is True

    async def aclose(self) -> None:
        return None

    def _answer(self, call: Call) -> dict[str, Any]:
        """The next recorded answer to *call*, its tokens reported; its error raised."""
        key = call_key(call)
        answers = self._answers.get(key)
        if not answers:
            raise BackendError(self._missing(key, call, answers is not None))
        entry = answers.popleft()
        for usage in entry.get("usage", []):
            report_usage(Usage(**usage))
        if "error" in entry:
            raise BackendError(str(entry["error"]))
        return entry

    def _missing(self, key: str, call: Call, used_up: bool) -> str:
        if used_up:
            return (f"replay: every answer recorded in {self.path} for this call "
                    f"({describe_call(call)}) was used already: the program asks it more "
                    "often than when it was recorded; record it again with --record")
        closest = max(self._recorded, default=None,
                      key=lambda other: difflib.SequenceMatcher(None, key, other).ratio())
        nearest = "it has no calls at all" if closest is None else \
            f"the closest recorded call is {describe_call(self._recorded[closest])}"
        return (f"replay: {self.path} has no recorded answer for this call "
                f"({describe_call(call)}); {nearest}; record the program again with --record")
