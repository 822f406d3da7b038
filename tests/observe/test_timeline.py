"""The timeline picture: produced, a valid PNG (and SVG, HTML), failures marked."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib import image

from cxlang.cli.main import main
from cxlang.observe.timeline import load

EXAMPLES = Path(__file__).parents[2] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("timeline")
    paths = {}
    for name, extra in (("parallel_models", ["--latency", "30ms"]), ("parallel_failures", [])):
        paths[name] = folder / f"{name}.json"
        main(["run", str(EXAMPLES / f"{name}.cx"), "--trace", str(paths[name]), "--quiet",
              *extra])
    return paths


def test_cx_trace_draws_a_valid_png(traces: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "timeline.png"
    assert main(["trace", str(traces["parallel_models"]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 600
    said = capsys.readouterr().out
    assert "one branch at a time, estimated from the branches' own times" in said


def test_the_sequential_time_is_the_branches_one_after_another(
    traces: dict[str, Path],
) -> None:
    timeline = load(traces["parallel_models"])
    branches = [b for b in timeline.bars if b.kind == "branch"]
    (call,) = [b for b in timeline.bars if b.kind == "call"]
    expected = timeline.elapsed + sum(b.duration for b in branches) - call.duration
    assert timeline.sequential == pytest.approx(expected)
    assert timeline.sequential > timeline.elapsed


def test_failures_and_timeouts_are_marked(traces: dict[str, Path], tmp_path: Path) -> None:
    timeline = load(traces["parallel_failures"])
    assert {(b.name, b.failure) for b in timeline.failures} == {
        ("compliance", "error"), ("archive", "timeout")}
    out = tmp_path / "failures.svg"
    assert main(["trace", str(traces["parallel_failures"]), "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "timeout" in svg and "error" in svg


def test_the_html_page_holds_the_picture_and_the_failures(
    traces: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "failures.html"
    assert main(["trace", str(traces["parallel_failures"]), "-o", str(out)]) == 0
    page = out.read_text()
    assert "<svg" in page and "<h2>Failures</h2>" in page and "archive" in page


def test_a_file_that_is_not_a_trace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["trace", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "cx trace: " in capsys.readouterr().err
    assert main(["trace", str(bad), "-o", str(tmp_path / "x.gif")]) == 2
