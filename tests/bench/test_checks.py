"""The checks benchmarks at their tiny size: a real server process, real checks, a well-formed record.

No assertion is about speed: only that the run happened, was counted and was written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import Benchmark, checks, load
from bench import results as rs
from bench.cli import run_one


@pytest.fixture(scope="module", params=["checks", "checks_asyncio"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Benchmark, rs.Result, Path]:
    """One tiny run per benchmark for the whole module: each takes seconds."""
    bench = load(request.param)
    out = tmp_path_factory.mktemp(request.param)
    result, path = run_one(bench, bench.tiny(), out)
    return bench, result, path


def test_tiny_run_writes_a_well_formed_record(tiny: tuple[Benchmark, rs.Result, Path]) -> None:
    bench, result, path = tiny
    name = bench.name
    assert rs.read(path) == result == rs.read(path.parent / f"{name}.json")
    assert result.name == name and result.unit == "checks/s"
    assert result.settings["sizes"] == [20] and result.repetitions == 1
    steps = result.details["steps"]
    assert [s["offered"] for s in steps] == [40.0, 80.0]  # the whole ladder ran
    for s in steps:
        assert s["n"] == 20 and s["checks"] > 0 and 0 <= s["errors"] <= s["checks"]
        assert 0 <= s["lateness_p50"] <= s["lateness_p99"] <= s["lateness_max"]
        assert s["cpu_per_1000"] >= 0 and s["achieved"] == pytest.approx(s["checks"] / s["window"], abs=0.1)
    assert set(result.stages) == set(checks.STAGES)
    assert result.stages["check"] > 0  # each check really connected and waited for an answer
    assert [t.name for t in result.targets] == ["checks per second", "checker CPU per 1,000 checks"]
    assert any(n.startswith("best step: N=20") for n in result.notes)


def test_lasthop_engine_breaks_down_its_cpu(tiny: tuple[Benchmark, rs.Result, Path]) -> None:
    bench, result, _ = tiny
    profile = result.details["profile"]
    if bench.name != "checks":
        assert profile == {}  # the breakdown is of lasthop's path only
        return
    assert profile["run_check_alone"]["checks"] == bench.tiny().profile_checks
    assert profile["scheduler_noop_checks"]["achieved"] > 0
    assert profile["run_check_top_own_time"]


def test_every_check_is_a_new_connection_to_the_server() -> None:
    server = checks.Server(2)
    try:
        from bot.health.checks import run_check
        from bot.inventory import CheckSpec

        eps = checks.endpoints(5, server.ports)
        assert {e.port for e in eps} == set(server.ports) and len({e.path for e in eps}) == 5
        spec = CheckSpec(kind="http", port=eps[1].port, path=eps[1].path, body="ok")
        assert run_check(checks.ADDRESS, spec).ok
        assert run_check(checks.ADDRESS, spec.model_copy(update={"body": "nope"})).ok is False
    finally:
        server.close()
    assert server.proc.returncode is not None  # the server process is gone


def test_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="sizes"):
        checks.Settings(sizes=(0,))
    with pytest.raises(ValueError, match="window"):
        checks.Settings(window=30.0, max_step=20.0)
