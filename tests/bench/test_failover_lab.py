"""bench failover at its tiny size on the session's lab: lasthop and keepalived side by side, for real.

One service death, both tools running: a well-formed record with each tool's outage and stages, and
the lab left as it was (keepalived stopped, its VIP and route gone, www-a home on web1). Nothing
about speed is asserted. keepalived and curl are installed by `scripts/install.sh test` (CI), or by
the benchmark itself when it runs as root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.labtools import assert_www_a_home, comm, namespace_pids

from bench import failover, load
from bench import results as rs
from bench.cli import run_one
from bot.inventory import Inventory
from lab import Lab

pytestmark = pytest.mark.lab


def test_tiny_run_breaks_once_times_both_tools_and_leaves_the_lab_as_it_was(
        lab: Lab, lab_inv: Inventory, lab_home: None, tmp_path: Path) -> None:
    bench = load("failover")
    settings = failover.Settings(repetitions=1, breaks=("service",), settle=0.5, lab_prefix=lab.plan.prefix,
                                 lab_slot=lab.plan.slot)
    assert (settings.repetitions, settings.breaks) == (bench.tiny().repetitions, bench.tiny().breaks)
    result, path = run_one(bench, settings, tmp_path)
    assert rs.read(path) == result
    (row,) = result.details["breaks"]
    assert row["break"] == "service" and row["moved_to"] == "web2"
    assert row["keepalived"]["new_master"] == "web2"
    for tool in failover.TOOLS:
        # The client saw each VIP come back from another host after the break.
        assert row[tool]["outage"] > 0 and row[tool]["settled"] >= row[tool]["outage"]
    assert set(result.stages) == set(failover.LASTHOP_STAGES)
    assert row["lasthop"]["detect"] > 0 and row["lasthop"]["confirm"] >= 0 and row["lasthop"]["precheck"] > 0
    names = [t.name for t in result.targets]
    assert names == ["service death: lasthop's median outage / keepalived's",
                     "DOWN decided to new route in the FIB, median"]
    # Left as found: no keepalived, neither its VIP nor its route, www-a home and answered by web1.
    assert failover.k_leftovers(lab.plan) == []
    for host in lab.plan.hosts:
        assert "keepalived" not in [comm(p) for p in namespace_pids(lab, host.name)]
    assert_www_a_home(lab, lab_inv)
