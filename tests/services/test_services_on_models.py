"""CX programs whose services call the loopback server through the openai backend."""

from __future__ import annotations

import io
from dataclasses import replace

from cxlang.program import RunOptions, run_source
from cxlang.services import BackendSettings

from .openai_server import DROP, MALFORMED, OpenAIServer, delay, status


def run(source: str, settings: BackendSettings) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(backend=settings.backend, settings=settings, timeout=20.0,
                         out=out, err=err)
    code = run_source(source, "prog.cx", options)
    return int(code), out.getvalue().splitlines(), err.getvalue()


def test_results_reach_event_result(server: OpenAIServer, settings: BackendSettings) -> None:
    code, out, err = run("""
        think { prompt: "Analyse the Q3 numbers" };
        generate { prompt: "a haiku", handlers: [ poem.ready ] };
        on thinking.complete (event) { print("think: " + event.result); }
        on poem.ready (event) { print("generate: " + event.result); }
        on system.start { var r = infer { prompt: "2 + 2" }; print("infer: " + r); }
    """, settings)
    assert (code, err) == (0, "")
    assert sorted(out) == ["generate: echo: a haiku", "infer: echo: 2 + 2",
                           "think: echo: Analyse the Q3 numbers"]
    assert len(server.exchanges) == 3


def test_three_parallel_handlers_model_calls_overlap_at_the_server(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("SLOW", delay(0.2))
    code, out, err = run("""
        on analytics.run (event) { return think { prompt: "SLOW analytics of " + event.result }; }
        on reporting.run (event) { return think { prompt: "SLOW report on " + event.result }; }
        on audit.run (event)     { return think { prompt: "SLOW audit of " + event.result }; }
        think { prompt: "Q3", analytics: analytics.run, reporting: reporting.run,
                audit: audit.run, handlers: [ analysis.done ] };
        on analysis.done (event) {
            print(event.result); print(event.analytics); print(event.reporting); print(event.audit);
        }
    """, settings)
    assert (code, err) == (0, "")
    assert out == ["echo: Q3", "echo: SLOW analytics of echo: Q3",
                   "echo: SLOW report on echo: Q3", "echo: SLOW audit of echo: Q3"]
    branches = server.about("SLOW")
    assert len(branches) == 3
    # The server's own clock: every request started before any of them ended.
    assert max(e.started for e in branches) < min(e.ended or 0.0 for e in branches)


def test_a_failing_model_call_becomes_an_error_event_and_the_others_keep_their_results(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("BROKEN", status(500))
    code, out, err = run("""
        on good.run (event) { return think { prompt: "fine" }; }
        on bad.run (event)  { var r = think { prompt: "BROKEN" }; return r; }
        on also.run (event) { return chat { message: "hello" }; }
        think { prompt: "start", good: good.run, bad: bad.run, also: also.run,
                handlers: [ done ] };
        on done (event) { print(event.good); print(event.bad); print(event.also); }
        on thinking.error (event) { print("error event: " + event.error); }
    """, settings)
    assert (code, err) == (0, "")
    assert out == [
        f"error event: openai backend at {server.url}: the server answered 500 Internal "
        "Server Error: injected 500; gave up after 3 attempts",
        "echo: fine", "null", "echo: hello",
    ]
    assert len(server.about("BROKEN")) == 3  # max_retries=2: three attempts, then it stops


def test_the_service_call_itself_failing_emits_its_error_event(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("garbled", MALFORMED)
    code, out, _ = run("""
        on a.run (event) { return 1; }
        generate { prompt: "garbled", a: a.run, handlers: [ done ] };
        on done (event) { print("never"); }
        on ai.generate.error (event) { print(event.service + ": " + event.error); }
    """, settings)
    assert code == 0
    assert len(out) == 1
    assert out[0].startswith(f"generate: openai backend at {server.url}: the response to "
                             "chat/completions is not valid JSON")


def test_a_branch_timeout_cancels_its_request_at_the_server(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.always("HANG", delay(30))
    code, out, err = run("""
        on slow.run (event) { return think { prompt: "HANG" }; }
        on fast.run (event) { return think { prompt: "quick" }; }
        think { prompt: "start", slow: slow.run, fast: fast.run, timeout: 300,
                handlers: [ done ] };
        on done (event) { print(event.fast); print(event.slow); print(event._errors.slow.type); }
        on thinking.error (event) { print("failed: " + event.failedHandlers); }
    """, settings)
    assert (code, err) == (0, "")
    assert out == ["echo: quick", "null", "timeout", 'failed: ["slow"]']
    (hung,) = server.about("HANG")
    assert server.wait_until(lambda: hung.outcome == "disconnected")


def test_dropped_connections_and_429_are_retried_within_a_program(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.fail("shaky", DROP, status(429, retry_after="0"))
    code, out, err = run('print(think { prompt: "shaky" });', settings)
    assert (code, out, err) == (0, ["echo: shaky"], "")
    assert [e.outcome for e in server.about("shaky")] == ["dropped", "status 429", "ok"]


def test_is_and_not_fire_on_the_models_yes_or_no(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    server.reply("sky is blue", "Yes")
    server.reply("grass is purple", "No.")
    code, out, err = run("""
        is  { evaluate: "the sky is blue", data: { colour: "blue" }, handlers: [ sky.checked ] };
        not { evaluate: "the grass is purple", handlers: [ grass.checked ] };
        is  { evaluate: "the grass is purple", handlers: [ wrong.branch ] };
        not { evaluate: "the sky is blue", handlers: [ wrong.branch ] };
        on sky.checked (event)   { print("is fired, colour " + event.colour); }
        on grass.checked (event) { print("not fired"); }
        on wrong.branch (event)  { print("wrong"); }
    """, settings)
    assert (code, err) == (0, "")
    assert sorted(out) == ["is fired, colour blue", "not fired"]
    assert len(server.exchanges) == 4


def test_learn_embeds_and_later_calls_recall_the_closest_memories(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    code, out, err = run("""
        var a = learn { data: "Ada drinks green tea every morning" };
        var b = learn { data: "The office closes at six" };
        print(b.memories);
        print(think { prompt: "What does Ada drink?", recall: 1 });
        print(think { prompt: "no memories here", recall: 0 });
    """, settings)
    assert (code, err) == (0, "")
    assert out == ["2", "echo: What does Ada drink?", "echo: no memories here"]
    paths = [e.path for e in server.exchanges]
    assert paths == ["/v1/embeddings", "/v1/embeddings", "/v1/embeddings",
                     "/v1/chat/completions", "/v1/chat/completions"]
    recalled = server.exchanges[3].body["messages"][0]["content"]
    assert "- Ada drinks green tea every morning" in recalled
    assert "office" not in recalled
    assert "learnt" not in server.exchanges[4].body["messages"][0]["content"]


def test_stream_emits_chunk_events_then_the_completion_event(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    code, out, err = run("""
        think { prompt: "tell a story", stream: true, handlers: [ story.done ] };
        on story.done.chunk (event) { print(event.index + " " + event.chunk); }
        on story.done (event) { print("done: " + event.result); }
    """, settings)
    assert (code, err) == (0, "")
    assert out == ["0 echo: ", "1 tell ", "2 a ", "3 story", "done: echo: tell a story"]
    assert server.exchanges[0].body["stream"] is True


def test_stream_on_a_default_completion_event(
    server: OpenAIServer, settings: BackendSettings
) -> None:
    code, out, err = run("""
        chat { message: "hi there", stream: true };
        on chat.complete.chunk (event) { print("chunk: " + event.chunk); }
        on chat.complete (event) { print("reply: " + event.result); }
    """, settings)
    assert (code, err) == (0, "")
    assert out == ["chunk: echo: ", "chunk: hi ", "chunk: there", "reply: echo: hi there"]


def test_a_backend_that_cannot_be_made_is_a_bad_command_line(
    settings: BackendSettings
) -> None:
    code, out, err = run('print("never");', replace(settings, model=None))
    assert (code, out) == (2, [])
    assert err.startswith("cx: the openai backend needs a model: --model NAME or CX_MODEL")
