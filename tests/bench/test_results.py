"""The result record: built from a measurement, written atomically, read back and validated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import results as rs


def measurement(samples: list[float] | None = None) -> rs.Measurement:
    return rs.Measurement(
        metric="things per second", unit="things/s", better="higher", samples=samples or [3.0, 1.0, 2.0],
        stages={"first": 0.25, "second": 0.5},
        targets=[rs.Target.judge("rate", 2.0, 4.0, "things/s", at_least=True),
                 rs.Target.judge("cost", 0.1, 0.2, "s", at_least=False)],
        notes=["a note"], details={"steps": [1, 2]},
    )


def record(name: str = "demo", samples: list[float] | None = None) -> rs.Result:
    return rs.Result.of(name, measurement(samples), machine=rs.machine_info(), settings={"size": 3},
                        when=datetime(2026, 12, 3, 7, 30, 5, tzinfo=UTC), seconds=1.5)


def test_statistics_are_of_the_samples() -> None:
    r = record(samples=[5.0, 1.0, 3.0, 2.0, 4.0])
    assert (r.min, r.median, r.max, r.repetitions) == (1.0, 3.0, 5.0, 5)
    assert r.p95 == pytest.approx(4.8)
    assert r.samples == [5.0, 1.0, 3.0, 2.0, 4.0]  # raw, in the order measured


def test_percentile_interpolates_and_refuses_nothing() -> None:
    assert rs.percentile([10.0], 0.99) == 10.0
    assert rs.percentile([0.0, 10.0], 0.5) == 5.0
    with pytest.raises(ValueError):
        rs.percentile([], 0.5)


def test_a_measurement_without_samples_is_refused() -> None:
    with pytest.raises(rs.ResultError, match="at least one sample"):
        rs.Result.of("demo", rs.Measurement("m", "u", "higher", []),
                     machine=rs.machine_info(), settings={}, when=datetime.now(UTC), seconds=0.0)


def test_targets_are_judged_both_ways() -> None:
    low = rs.Target.judge("rate", 1500.0, 2000.0, "checks/s", at_least=True)
    assert not low.met and low.missed_by() == pytest.approx(0.25)
    cheap = rs.Target.judge("cpu", 0.1, 0.2, "s", at_least=False)
    assert cheap.met and cheap.missed_by() == 0.0
    dear = rs.Target.judge("cpu", 0.5, 0.2, "s", at_least=False)
    assert not dear.met and dear.missed_by() == pytest.approx(1.5)


def test_machine_is_described() -> None:
    m = rs.machine_info()
    assert m.cpus >= 1 and m.cpu_model and m.kernel and m.python.count(".") == 2
    assert len(m.load_average) == 3 and all(x >= 0 for x in m.load_average)
    assert m.commit == "unknown" or len(m.commit.removesuffix("-dirty")) == 40


def test_write_makes_the_history_file_and_the_stable_one(tmp_path: Path) -> None:
    r = record()
    path = rs.write(r, tmp_path)
    assert path.name == "demo-20261203T073005Z.json"
    assert (tmp_path / "demo.json").read_text() == path.read_text()
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary files were renamed, none left behind
    back = rs.read(tmp_path / "demo.json")
    assert back == r


def test_latest_reads_only_the_stable_files(tmp_path: Path) -> None:
    rs.write(record("one"), tmp_path)
    rs.write(record("two"), tmp_path)
    assert [r.name for r in rs.latest(tmp_path)] == ["one", "two"]
    assert rs.latest(tmp_path / "missing") == []


def _broken(tmp_path: Path, change: Any) -> Path:
    data = record().to_json()
    change(data)
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d.pop("samples"), "samples must be a non-empty list"),
    (lambda d: d.update(max=0.5), "min <= median <= p95 <= max"),
    (lambda d: d.update(repetitions=7), "repetitions 7 but 3 samples"),
    (lambda d: d["machine"].pop("cpu_model"), "machine.cpu_model"),
    (lambda d: d["targets"][0].update(met=True), "contradicts its figures"),
    (lambda d: d["stages"].update(first=-1.0), "stages.first is negative"),
    (lambda d: d.update(when="yesterday"), "not an ISO 8601 time"),
    (lambda d: d.update(median=float("nan")), "finite number"),
    (lambda d: d.update(schema=99), "schema 99"),
])
def test_read_names_what_is_wrong(tmp_path: Path, change: Any, problem: str) -> None:
    with pytest.raises(rs.ResultError, match=problem):
        rs.read(_broken(tmp_path, change))


def test_read_of_no_file_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(rs.ResultError, match="cannot read"):
        rs.read(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{half")
    with pytest.raises(rs.ResultError, match="not JSON"):
        rs.read(tmp_path / "bad.json")
