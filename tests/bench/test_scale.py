"""``cx bench --scale``: its rows at small sizes, and ``-o`` drawing the curves to a PNG.

The CLI's sizes are fixed (up to 100,000 branches and 10^6 events); the tests shrink them
through :data:`cxlang.bench.scale.SIZES` so that each runs in a few seconds. Never a timing
assertion: only the structure of what is reported.
"""

from __future__ import annotations

import importlib.util
import json
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from cxlang.bench import main, scale
from cxlang.bench.scale import BUS, FAN_OUT, FAN_OUT_SUSPEND, MEMORY, Sizes

SMALL = Sizes(branches=(10, 30), events=(200, 400))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_size_gets_a_row_per_measurement() -> None:
    rows = scale.scale(SMALL)

    by_scenario: dict[str, list[float]] = {}
    for row in rows:
        by_scenario.setdefault(row.scenario, []).append(row.extra["size"])
    assert by_scenario == {FAN_OUT: [10, 30], FAN_OUT_SUSPEND: [10, 30], MEMORY: [10, 30],
                           BUS: [200, 400]}
    for row in rows:
        assert row.cxlang.value > 0
        [baseline] = row.comparisons
        assert baseline.value is not None and baseline.value.value > 0


def test_memory_rows_carry_the_2_kb_target_and_gathers_cost_beside() -> None:
    rows = [r for r in scale.scale(Sizes(branches=(20,), events=(100,))) if r.scenario == MEMORY]

    [row] = rows
    [gather] = row.comparisons
    assert gather.baseline == "gather+dict"
    assert gather.target is not None and gather.target.threshold == 2048
    assert row.met(gather) is (row.cxlang.value < 2048)


def test_cli_draws_the_curves_to_a_png_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scale, "SIZES", SMALL)
    picture, numbers = tmp_path / "scale.png", tmp_path / "scale.json"

    assert main(["--scale", "-o", str(picture), "--json", str(numbers)]) == 0

    assert picture.read_bytes().startswith(PNG_SIGNATURE)
    printed = capsys.readouterr().out
    assert "(scale run)" in printed
    assert "fan-out, K=30: time per branch" in printed
    assert "memory, K=30: bytes per in-flight branch" in printed
    document = json.loads(numbers.read_text(encoding="utf-8"))
    assert document["scale"] is True
    assert len(document["scenarios"]) == 8


def test_cli_without_matplotlib_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_matplotlib(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "matplotlib" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_matplotlib)
    picture = tmp_path / "scale.png"

    assert main(["--scale", "-o", str(picture)]) == 2  # before measuring anything

    err = capsys.readouterr().err
    assert "needs matplotlib" in err
    assert "Traceback" not in err
    assert not picture.exists()


@pytest.mark.parametrize("argv", [["-o", "x.png"], ["--scale", "--quick"],
                                  ["--scale", "--only", "fanout"]])
def test_cli_refuses_scale_options_that_do_not_fit(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert "--scale" in capsys.readouterr().err
