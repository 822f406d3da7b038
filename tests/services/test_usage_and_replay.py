"""Usage and cost, the token budget, and record / replay / cache of model calls: as a user
runs them (``cx run``, ``cx test``, ``cx cache``) and through the Python face."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxlang import Runtime
from cxlang.services import BackendError, Services

from .openai_server import OpenAIServer

CX = Path(sys.executable).with_name("cx")

pytestmark = pytest.mark.skipif(not CX.exists(), reason=f"no cx script next to {sys.executable}")

# Four branches, each its own model call, and a streamed one: what replay must get right
# whatever order the branches' calls arrive in.
PARALLEL = """
on a.run (e) { return think { prompt: "alpha about " + e.result }; }
on b.run (e) { return infer { data: "beta about " + e.result }; }
on c.run (e) { return generate { prompt: "gamma about " + e.result }; }
on d.run (e) { return chat { message: "delta about " + e.result }; }
think { prompt: "Q3", a: a.run, b: b.run, c: c.run, d: d.run, handlers: [ done ] };
on done (event) {
    print(event.result); print(event.a); print(event.b); print(event.c); print(event.d);
    think { prompt: "streamed", stream: true, handlers: [ told ] };
}
on told.chunk (event) { print("piece: " + event.chunk); }
on told (event) { print("whole: " + event.result); }
"""


def cx(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CX_", "OPENAI_"))}
    done = subprocess.run([str(CX), *args], capture_output=True, text=True, timeout=60,
                          check=False, cwd=cwd, env={**clean, **env})
    assert "Traceback" not in done.stderr, done.stderr
    return done


OPENAI = ("--backend", "openai", "--model", "test-model")


def env(server: OpenAIServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.url}


def test_stats_print_each_models_calls_tokens_and_cost(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(PARALLEL)
    done = cx("run", "prog.cx", "--stats", "--stats-json", "stats.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The local backend counts words: "Q3" in, "Thought about: Q3" out, and so on.
    assert "cx: local:local: 6 calls, " in done.stderr
    assert "no price set" in done.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert set(stats) >= {"program", "elapsed_ms", "events", "models"}
    model = stats["models"]["local:local"]
    assert set(model) == {"calls", "input_tokens", "output_tokens", "cost"}
    assert model["calls"] == 6 and model["input_tokens"] > 0 and model["output_tokens"] > 0
    assert model["cost"] is None
    assert stats["tokens"] == model["input_tokens"] + model["output_tokens"]


def test_prices_in_cx_toml_give_the_cost(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text('[prices."local"]\ninput = 1.5\noutput = 6\n')
    (tmp_path / "prog.cx").write_text('print(think { prompt: "one two three" });\n')
    done = cx("run", "prog.cx", "--stats-json", "stats.json", "--stats", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    model = json.loads((tmp_path / "stats.json").read_text())["models"]["local:local"]
    # "one two three" in; "Thought about: one two three" out.
    assert (model["input_tokens"], model["output_tokens"]) == (3, 5)
    assert model["cost"] == pytest.approx((3 * 1.5 + 5 * 6) / 1e6)
    assert "cost 0.00003450" in done.stderr


def test_a_price_without_both_numbers_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cx.toml").write_text('[prices."gpt-4o-mini"]\ninput = 0.15\n')
    done = cx("run", "-", cwd=tmp_path)
    assert done.returncode == 2
    assert 'prices."gpt-4o-mini"' in done.stderr and "input and output" in done.stderr


def test_openai_usage_is_the_servers_plain_and_streamed(server: OpenAIServer,
                                                        tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(
        'print(think { prompt: "one two" });\n'
        'think { prompt: "three four five", stream: true, handlers: [ told ] };\n'
        'on told (e) { print(e.result); }\n')
    (tmp_path / "cx.toml").write_text('[prices."test-model"]\ninput = 1000000\noutput = 0\n')
    done = cx("run", "prog.cx", *OPENAI, "--stats-json", "stats.json", cwd=tmp_path,
              **env(server))
    assert done.returncode == 0, done.stderr
    streamed = [e.body for e in server.exchanges if e.body and e.body.get("stream")]
    assert streamed[0]["stream_options"] == {"include_usage": True}
    model = json.loads((tmp_path / "stats.json").read_text())["models"]["openai:test-model"]
    # The fake server counts words of every message (the system one included) and answer.
    words = [len(" ".join(m["content"] for m in e.body["messages"]).split())
             for e in server.exchanges if e.path.endswith("/chat/completions")]
    assert model["calls"] == 2
    assert model["input_tokens"] == sum(words)
    assert model["output_tokens"] == 3 + 4  # "echo: one two", "echo: three four five"
    assert model["cost"] == pytest.approx(sum(words))


def test_a_stream_without_usage_counts_nothing_and_says_so(server: OpenAIServer,
                                                           tmp_path: Path) -> None:
    server.stream_usage = False
    (tmp_path / "prog.cx").write_text(
        'think { prompt: "hi", stream: true, handlers: [ told ] };\n'
        'on told (e) { print(e.result); }\n')
    done = cx("run", "prog.cx", *OPENAI, "--stats", cwd=tmp_path, **env(server))
    assert done.returncode == 0, done.stderr
    assert "openai:test-model: 1 call, 0 input tokens, 0 output tokens" in done.stderr
    assert "tokens of 1 unknown (the server gave no usage)" in done.stderr


def test_the_token_budget_stops_the_run_with_exit_4(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(
        'on again (e) { think { prompt: "more words please", handlers: [ again ] }; }\n'
        'emit again {};\n')
    done = cx("run", "prog.cx", "--token-budget", "50", "--stats-json", "s.json",
              cwd=tmp_path)
    assert done.returncode == 4
    assert "tokens limit reached" in done.stderr and "--token-budget" in done.stderr
    used = json.loads((tmp_path / "s.json").read_text())["tokens"]
    assert 50 <= used < 50 + 20  # the call that crossed it, and none after
    (tmp_path / "cx.toml").write_text("token_budget = 30\n")
    assert cx("run", "prog.cx", cwd=tmp_path).returncode == 4


def test_record_then_replay_gives_the_same_output_in_any_order(server: OpenAIServer,
                                                              tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(PARALLEL)
    recorded = cx("run", "prog.cx", *OPENAI, "--record", "calls.jsonl",
                  "--stats-json", "live.json", cwd=tmp_path, **env(server))
    assert recorded.returncode == 0, recorded.stderr
    asked = len(server.exchanges)
    lines = (tmp_path / "calls.jsonl").read_text().splitlines()
    assert len(lines) == 6
    entries = [json.loads(line) for line in lines]
    assert {e["backend"] for e in entries} == {"openai"}
    streamed = next(e for e in entries if e["method"] == "stream")
    assert "".join(streamed["pieces"]) == streamed["answer"] and len(streamed["pieces"]) > 1
    # Backwards: every branch's call now comes before the one it came after.
    (tmp_path / "reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    for cassette in ("calls.jsonl", "reversed.jsonl"):
        replayed = cx("run", "prog.cx", "--replay", cassette, "--stats-json", "replay.json",
                      cwd=tmp_path)
        assert (replayed.returncode, replayed.stdout, replayed.stderr) == \
            (0, recorded.stdout, "")
        # The recorded usage, too: a replayed test sees what the run cost.
        assert json.loads((tmp_path / "replay.json").read_text())["models"] == \
            json.loads((tmp_path / "live.json").read_text())["models"]
    assert len(server.exchanges) == asked  # replay never asked the server


def test_a_call_missing_from_the_replay_names_the_closest(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(PARALLEL)
    assert cx("run", "prog.cx", "--record", "calls.jsonl", cwd=tmp_path).returncode == 0
    (tmp_path / "changed.cx").write_text(PARALLEL.replace("gamma about", "gamma on"))
    done = cx("run", "changed.cx", "--replay", "calls.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("changed.cx:4:")  # the call's position in the program
    assert 'no recorded answer for this call (generate {"prompt": "gamma on ' in done.stderr
    assert 'the closest recorded call is generate {"prompt": "gamma about ' in done.stderr


def test_identical_calls_are_replayed_in_order_then_run_out(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text('print(think { prompt: "same" });\n' * 2)
    assert cx("run", "prog.cx", "--record", "calls.jsonl", cwd=tmp_path).returncode == 0
    (tmp_path / "thrice.cx").write_text('print(think { prompt: "same" });\n' * 3)
    done = cx("run", "thrice.cx", "--replay", "calls.jsonl", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.count("Thought about: same") == 2
    assert "was used already" in done.stderr


def test_replay_refuses_record_and_cache(tmp_path: Path) -> None:
    (tmp_path / "calls.jsonl").write_text("")
    done = cx("run", "-", "--replay", "calls.jsonl", "--cache", "c", cwd=tmp_path)
    assert done.returncode == 2 and "leave out --record and --cache" in done.stderr


def test_the_cache_answers_identical_calls_across_runs(server: OpenAIServer,
                                                       tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text(PARALLEL)
    first = cx("run", "prog.cx", *OPENAI, "--cache", "answers", cwd=tmp_path,
               **env(server))
    assert first.returncode == 0, first.stderr
    asked = len(server.exchanges)
    assert asked == 6
    second = cx("run", "prog.cx", *OPENAI, "--cache", "answers", "--stats",
                cwd=tmp_path, **env(server))
    assert second.stdout == first.stdout
    assert len(server.exchanges) == asked  # all six from the cache
    assert "openai:test-model" not in second.stderr  # no model was asked: no tokens
    # cx.toml names the cache; cx cache clear empties it and the server is asked again.
    (tmp_path / "cx.toml").write_text('cache = "answers"\n')
    cleared = cx("cache", "clear", cwd=tmp_path)
    assert (cleared.returncode, cleared.stdout) == (0, "answers: removed 6 cached answers\n")
    assert cx("run", "prog.cx", *OPENAI, cwd=tmp_path, **env(server)).returncode == 0
    assert len(server.exchanges) == 2 * asked


def test_cx_test_replays_a_cassette_beside_the_program(server: OpenAIServer,
                                                       tmp_path: Path) -> None:
    (tmp_path / "agent.cx").write_text(PARALLEL)
    (tmp_path / "expected").mkdir()
    recorded = cx("run", "agent.cx", *OPENAI, "--record", "expected/agent.cassette",
                  cwd=tmp_path, **env(server))
    (tmp_path / "expected" / "agent.out").write_text(recorded.stdout)
    asked = len(server.exchanges)
    done = subprocess.run([sys.executable, "-m", "cxlang.cli.main", "test"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("1 passed in ")
    assert len(server.exchanges) == asked  # offline: the cassette answered


async def test_the_python_face_records_and_replays(tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    async with Runtime() as runtime:
        async with Services(runtime, backend="local", record=calls) as services:
            live = await services.think("what is CX?")
        async with Services(runtime, backend="local", replay=calls) as services:
            assert await services.think("what is CX?") == live
            with pytest.raises(BackendError, match="closest recorded call is think"):
                await services.think("what is cx?")
        async with Services(runtime, backend="local", cache=tmp_path / "cache") as services:
            assert await services.think("what is CX?") == live
        assert len(list((tmp_path / "cache").iterdir())) == 1


def test_service_spans_carry_the_usage(tmp_path: Path) -> None:
    (tmp_path / "prog.cx").write_text('print(think { prompt: "one two three" });\n')
    done = cx("run", "prog.cx", "--trace", "trace.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    service = next(e["args"] for e in events if e.get("args", {}).get("kind") == "service")
    assert (service["model"], service["input_tokens"], service["output_tokens"]) == \
        ("local:local", 3, 5)
