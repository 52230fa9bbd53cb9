"""bench takeover at its tiny size on the session's lab: three real serve instances, the leader killed
and cut off twice each, a well-formed record, and nothing left behind (processes, proxies, database),
after a failed run too.

No assertion is about speed: only that each death was followed by a new term, checks running and a
first check on another instance, in that order, and that the record says so.
"""

from __future__ import annotations

import dataclasses
import itertools
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import load, takeover
from bench import results as rs
from bench.cli import run_one
from lab import Lab, netns


@dataclasses.dataclass
class Spawned:
    """Every serve process and proxy address a run made, to show they are all gone after it."""

    procs: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    proxies: list[tuple[str, int]] = dataclasses.field(default_factory=list)

    def assert_gone(self) -> None:
        assert self.procs and all(p.poll() is not None for p in self.procs)
        for address in self.proxies:
            with pytest.raises(OSError), socket.create_connection(address, timeout=2):
                pass
        assert not takeover.database_exists()


@pytest.fixture(scope="module")
def watch() -> Iterator[Spawned]:
    spawned = Spawned()
    real_start, real_open = takeover.Instance.start, takeover.Cluster.open

    def start(self: takeover.Instance, config: Path) -> None:
        real_start(self, config)
        assert self.proc is not None
        spawned.procs.append(self.proc)

    def open_(self: takeover.Cluster) -> None:
        spawned.proxies.extend(i.proxy.address for i in self.instances.values())
        real_open(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(takeover.Instance, "start", start)
        mp.setattr(takeover.Cluster, "open", open_)
        yield spawned


def settings_for(lab: Lab, **changes: Any) -> takeover.Settings:
    return dataclasses.replace(takeover.Settings.tiny(), lab_prefix=lab.plan.prefix, lab_slot=lab.plan.slot,
                               **changes)


@pytest.fixture(scope="module")
def tiny(lab: Lab, watch: Spawned, tmp_path_factory: pytest.TempPathFactory) -> tuple[rs.Result, Path]:
    return run_one(load("takeover"), settings_for(lab), tmp_path_factory.mktemp("takeover"))


@pytest.mark.lab
def test_tiny_run_writes_a_well_formed_record(tiny: tuple[rs.Result, Path]) -> None:
    result, path = tiny
    assert rs.read(path) == result == rs.read(path.parent / "takeover.json")
    assert result.name == "takeover" and result.unit == "s" and result.better == "lower"
    assert result.settings["rounds"] == 2 and result.repetitions == 4
    assert set(result.stages) == {f"{k}: {s.replace('_', ' ')}" for k in takeover.KINDS for s in takeover.STAGES}
    assert [t.name for t in result.targets] == [f"{k}: death to checks running on the new leader, max"
                                                for k in takeover.KINDS]
    rounds = result.details["rounds"]
    assert [r["kind"] for r in rounds] == ["sigkill", "db_cut", "sigkill", "db_cut"]
    assert result.samples == [r["checks_running"] for r in rounds]
    for before, after in itertools.pairwise(rounds):
        assert after["old_term"] >= before["new_term"]  # each round starts from the last one's leader or later
    for r in rounds:
        assert r["new"] != r["old"] and set((r["new"], r["old"])) <= set(takeover.NAMES)
        assert r["new_term"] > r["old_term"]
        # In the order they happen: the term recorded after the death, checks running after the term
        # (the log's milliseconds are truncated, hence the 1 ms), a check seen once leading.
        assert 0 < r["term"] < r["checks_running"] + 0.001 and r["term"] <= r["first_check"]
        assert r["term_found_by_poll"] >= r["term"]
    for r in rounds[1::2]:  # the cut leader stood down before the next leader's term: no two leaders
        assert r["old_stood_down"] > 0 and r["stood_down_before_new_term"] is True
    by_kind = result.details["by_kind"]
    assert set(by_kind) == set(takeover.KINDS)
    assert set(by_kind["sigkill"]) == {*takeover.MARKS, *takeover.STAGES}
    assert by_kind["db_cut"]["checks_running"]["max"] == max(r["checks_running"] for r in rounds[1::2])
    table = takeover.summary_table(result)
    assert "| sigkill |" in table and "| db_cut |" in table and "of 2 deaths of each kind" in table


@pytest.mark.lab
def test_tiny_run_leaves_no_process_proxy_or_database_and_keeps_the_lab(
        lab: Lab, tiny: tuple[rs.Result, Path], watch: Spawned) -> None:
    assert len(watch.procs) == 3 + 4  # three, and each dead one started again
    watch.assert_gone()
    assert all(ns in netns.existing_namespaces() for ns in lab.plan.namespaces)  # it was up before: kept


@pytest.mark.lab
def test_a_run_that_fails_still_takes_everything_down(
        lab: Lab, tiny: Any, watch: Spawned, monkeypatch: pytest.MonkeyPatch) -> None:
    real = takeover.one_round
    calls: list[str] = []

    def fails_second(cluster: takeover.Cluster, kind: str, number: int) -> dict[str, Any]:
        calls.append(kind)
        if len(calls) == 2:
            raise RuntimeError("injected failure after one round")
        return real(cluster, kind, number)

    monkeypatch.setattr(takeover, "one_round", fails_second)
    watch.procs.clear()
    watch.proxies.clear()
    with pytest.raises(RuntimeError, match="injected failure"):
        takeover.run(settings_for(lab, rounds=1))
    assert calls == ["sigkill", "db_cut"]
    watch.assert_gone()


@pytest.mark.parametrize(("changes", "problem"), [
    ({"rounds": 0}, "rounds must be 1 to 100"),
    ({"kinds": ("sigkill", "sigkill")}, "each once"),
    ({"kinds": ("reboot",)}, "kinds must be some of sigkill, db_cut"),
    ({"timeout": 1.0}, "timeout"),
    ({"lab_prefix": "LH"}, "bad lab prefix"),
])
def test_settings_refuse_what_cannot_run(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(takeover.Settings(), **changes)
