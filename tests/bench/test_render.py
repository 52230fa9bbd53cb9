"""The table and the charts of the latest results."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from bench import render
from bench import results as rs

from .test_results import record


@pytest.fixture
def two(tmp_path: Path) -> Path:
    rs.write(record("demo"), tmp_path)
    checks = record("checks", samples=[900.0, 1000.0, 1100.0])
    checks.unit = "checks/s"
    checks.targets = [rs.Target.judge("checks per second", 1000.0, 2000.0, "checks/s", at_least=True),
                      rs.Target.judge("checker CPU per 1,000 checks", 0.1, 0.2, "CPU-s", at_least=False)]
    checks.details = {"steps": [{"n": 20, "offered": 40.0, "achieved": 39.0, "lateness_p99": 0.01}]}
    rs.write(checks, tmp_path)
    return tmp_path


def test_table_has_a_row_per_benchmark_with_its_verdicts(two: Path) -> None:
    text, _, _ = render.render(two)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`checks`", "`demo`"]
    checks_row = rows[0]
    assert "**1,000 checks/s**" in checks_row and "checks per second ≥ 2,000 checks/s" in checks_row
    assert "**missed by 50%**: 1,000 checks/s" in checks_row and "met: 0.1 CPU-s" in checks_row
    assert (two / render.TABLE).read_text() == text


def test_without_matplotlib_the_table_is_still_written(two: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def hide(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", hide)
    text, written, word = render.render(two)
    assert word.startswith("charts skipped: matplotlib not installed") and written == []
    assert (two / render.TABLE).is_file() and "`demo`" in text
    assert not list(two.glob("*.png"))


def test_charts_are_png_files(two: Path) -> None:
    _, written, _ = render.render(two)
    assert {p.name for p in written} == {"stages.png", "checks.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_main_prints_the_table_and_refuses_a_broken_result(two: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["--dir", str(two)]) == 0
    out = capsys.readouterr().out
    assert "| `checks` |" in out and "charts" in out
    (two / "broken.json").write_text("{}")
    assert render.main(["--dir", str(two)]) == 1
    assert "cannot render" in capsys.readouterr().err


def test_readme_gets_the_table_between_its_markers_and_nothing_else_changes(two: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# lasthop\n\nbefore\n{render.BEGIN}\nold table\n{render.END}\nafter\n")
    assert render.main(["--dir", str(two), "--readme", str(readme)]) == 0
    body = readme.read_text()
    text, _, _ = render.render(two)
    assert body == f"# lasthop\n\nbefore\n{render.BEGIN}\n{text}{render.END}\nafter\n"
    assert render.main(["--dir", str(two), "--readme", str(readme)]) == 0
    assert readme.read_text() == body  # a second run changes nothing


def test_a_readme_without_its_markers_is_refused_and_left_alone(two: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# lasthop\nno markers here\n")
    assert render.main(["--dir", str(two), "--readme", str(readme)]) == 1
    assert "needs one <!-- bench:begin --> line" in capsys.readouterr().err
    assert readme.read_text() == "# lasthop\nno markers here\n"
