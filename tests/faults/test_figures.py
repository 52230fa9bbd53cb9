"""The ledger and the figures it makes: what the README's reliability table is built from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults import figures
from support.ledger import REPORT_ENV, Ledger, read_rows, tracebacks


@pytest.fixture(autouse=True)
def _own_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """These ledgers write to a file of their own, never to the report `make faults` is writing."""
    monkeypatch.setenv(REPORT_ENV, str(tmp_path / "r.jsonl"))


TRACE = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'x'\n"


def test_tracebacks_are_counted_only_at_the_start_of_a_line() -> None:
    assert tracebacks(TRACE, "ok", TRACE + TRACE) == 3
    assert tracebacks("the word Traceback (most recent call last): quoted") == 0


def test_a_tally_becomes_one_row_with_its_runs_when_the_test_ends(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.begin("chat text")
    t = ledger.tally("parser")
    t.run()
    t.run(4)
    ledger.end(passed=True, crashed=False, seen_tracebacks=0, name="test_parser")
    assert [(r.group, r.case, r.runs, r.consistent) for r in read_rows(tmp_path / "r.jsonl")] == [
        ("chat text", "parser", 5, True)]


def test_a_crash_after_the_case_recorded_itself_amends_its_row(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.begin("moves on the lab")
    ledger.record("sigkill@after_add", consistent=True, reported=True)
    ledger.end(passed=False, crashed=True, seen_tracebacks=2, name="test_x")
    rows = read_rows(tmp_path / "r.jsonl")
    assert len(rows) == 1 and rows[0].crashes == 1 and rows[0].tracebacks == 2


def test_a_case_that_failed_before_recording_is_counted_as_a_failure() -> None:
    ledger = Ledger()
    ledger.begin("moves on the lab")
    ledger.end(passed=False, crashed=True, seen_tracebacks=0, name="test_y")
    assert [(r.case, r.consistent, r.reported, r.crashes) for r in ledger.rows] == [("test_y", False, False, 1)]
    passed = Ledger()
    passed.begin("g")
    passed.end(passed=True, crashed=False, seen_tracebacks=0, name="test_z")
    assert passed.rows == []


def _report(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CLEAN = [{"group": "moves on the lab", "case": "a", "runs": 1, "consistent": True, "reported": True},
         {"group": "chat text", "case": "b", "runs": 7000, "consistent": True, "reported": True}]


def test_the_table_has_a_line_per_group_and_a_total(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert figures.main([str(_report(tmp_path, CLEAN))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| moves on the lab | 1 | 1 | 0 | 0 | 0 | 0 | 0 |"
    assert out[3] == "| chat text | 1 | 7,000 | 0 | 0 | 0 | 0 | 0 |"
    assert out[4] == "| **all** | 2 | 7,001 | 0 | 0 | 0 | 0 | 0 |"


def test_any_nonzero_figure_fails_and_names_its_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = [*CLEAN, {"group": "buttons", "case": "press", "runs": 9, "consistent": True, "reported": True,
                    "unauthorised": 1}]
    assert figures.main([str(_report(tmp_path, bad))]) == 1
    assert "not clean: buttons: press" in capsys.readouterr().err
    assert figures.main([str(_report(tmp_path, []))]) == 1  # no case at all proves nothing


def test_the_readme_gets_the_table_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{figures.BEGIN}\nold figures\n{figures.END}\nafter\n")
    assert figures.main([str(_report(tmp_path, CLEAN)), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old figures" not in text and "| **all** | 2 | 7,001 |" in text and text.endswith(f"{figures.END}\nafter\n")
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        figures.main([str(_report(tmp_path, CLEAN)), "--readme", str(readme)])


def test_an_unreadable_report_is_a_short_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.jsonl").write_text("{not json\n")
    assert figures.main([str(tmp_path / "r.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("figures: cannot read")
