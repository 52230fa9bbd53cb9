"""bench click at its tiny size on the session's lab: real clicks, real moves on FRR, a well-formed record.

No assertion is about speed: that each click moved www-a and was timed stage by stage, and that
the benchmark left the lab as it found it (web1 serving, every web server up).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.labtools import assert_www_a_home

from bench import click, load
from bench import results as rs
from bench.cli import run_one
from bot.inventory import Inventory
from lab import Lab

pytestmark = pytest.mark.lab


def test_tiny_run_clicks_moves_and_writes_a_well_formed_record(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                               tmp_path: Path) -> None:
    bench = load("click")
    settings = click.Settings(warm=2, cold=1, prefix=lab.plan.prefix, slot=lab.plan.slot)
    assert settings.warm == bench.tiny().warm and settings.cold == bench.tiny().cold
    result, path = run_one(bench, settings, tmp_path)
    assert rs.read(path) == result == rs.read(tmp_path / "click.json")
    assert result.unit == "s" and result.repetitions == 2  # the warm clicks are the samples
    assert result.details["warm"]["clicks"] == 2 and result.details["cold"]["clicks"] == 1
    assert set(result.stages) == set(click.STAGES)
    for kind in ("warm", "cold"):
        for row in result.details["clicks"][kind]:
            # Each click was received, acknowledged, and reached the FIB after it was received.
            assert row["ack"] > 0 and row["apply"] > 0 and row["verify_fib"] > 0
            assert row["total"] <= row["to_done"] and row["handoff"] < row["total"]
            assert set(click.PRECHECK) <= set(row)
    assert [t.name for t in result.targets] == ["warm median, click to verified"]
    # Left as found: the lab fixture's lab is still up, www-a is home and web1 answers for it.
    assert_www_a_home(lab, lab_inv)


def test_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="warm"):
        click.Settings(warm=0, cold=0)
    with pytest.raises(ValueError, match="prefix"):
        click.Settings(prefix="no such prefix")
