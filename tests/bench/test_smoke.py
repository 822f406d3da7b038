"""Smoke test of ``cx bench``: it runs, prints a table and writes well-formed JSON.

Never a timing assertion: the numbers depend on the machine, the structure does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxlang.bench import main
from cxlang.bench.peers import PEERS

PEER_NAMES = [peer.name for peer in PEERS]


def test_quick_fanout_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"

    assert main(["--quick", "--only", "fanout", "--json", str(out)]) == 0

    captured = capsys.readouterr()
    printed = captured.out
    assert "fanout took " in captured.err  # each scenario's wall time, and the whole run's
    assert "bench took " in captured.err
    assert "| scenario" in printed
    assert "K=10 no-op fan-out" in printed
    assert "peers: langchain-core " in printed  # with its version, or "not installed"
    assert "llama-index-workflows " in printed
    document = json.loads(out.read_text(encoding="utf-8"))
    for key in ("python", "platform", "cpu_count", "event_loop", "uvloop", "scenarios", "targets"):
        assert key in document
    scenarios = document["scenarios"]
    assert [s["title"] for s in scenarios] == [
        "K=10 no-op fan-out", "K=10 no-op fan-out, inline handlers",
        "K=100 no-op fan-out", "K=100 no-op fan-out, inline handlers",
    ]
    for scenario in scenarios:
        assert scenario["scenario"] == "fanout"
        assert scenario["cxlang"]["median"] > 0
        names = [b["name"] for b in scenario["baselines"]]
        peers = PEER_NAMES if scenario["title"].startswith("K=10 ") else []  # quick: K=10 only
        assert names == ["gather+dict", "TaskGroup+timeout", *peers]
        for baseline in scenario["baselines"]:
            if not baseline["available"]:
                assert baseline["name"] in PEER_NAMES  # the optional ones
                assert baseline["ratio"] is None
                continue
            assert isinstance(baseline["ratio"], float)
            assert baseline["ratio"] > 0
            assert baseline["target_met"] in (True, False, None)


def test_only_rejects_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
