"""`lasthop` on the lab, where a host cannot be logged in to: status says "unknown, because …", never "missing".

The real command in a child process against the real lab, with an inventory copy whose known_hosts
lacks web1's key (or whose key_file is not there). Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.labtools import inventory_copy, lasthop

from bot import plain
from bot.chat import Actor
from bot.config import load_inventory
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from bot.workflow import Workflow
from lab import Lab

pytestmark = pytest.mark.lab

def test_a_host_whose_key_is_unknown_is_unknown_not_missing(lab: Lab, lab_inv: Inventory, tmp_path: Path) -> None:
    web1 = str(lab.plan.device("web1").address)
    known = "".join(line + "\n" for line in lab.known_hosts.read_text().splitlines()
                    if not line.startswith(f"{web1} "))
    config = inventory_copy(lab, lab_inv, tmp_path, known_hosts=known)

    done = lasthop("status", "--json", "--config", str(config))  # --config after the command
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["service"]: r for r in json.loads(done.stdout)["services"]}
    for service in ("www-a", "www-d"):  # served by web1
        assert rows[service]["host"] == "web1"
        assert rows[service]["loopback"] is None and rows[service]["loopback_state"] == "unknown"
        assert rows[service]["loopback_error"].startswith("web1: host key of ")
        assert "not in" in rows[service]["loopback_error"]
    assert rows["www-b"]["loopback"] is True and rows["www-c"]["loopback_state"] == "ok"
    assert not any(r["loopback"] is False for r in rows.values())

    done = lasthop("--config", str(config), "status")  # and before it
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MISS" not in done.stdout
    assert [line.split()[-1] for line in done.stdout.splitlines() if line.startswith(("www-a", "www-d"))] == [
        "unknown", "unknown"]
    assert "loopback unknown: web1: host key of" in done.stdout

    inv = load_inventory(config)
    store = StateStore(inv.state_url)
    engine = Engine(inv, store, probe_source=inv.probe.source)
    try:
        chat = plain.render(Workflow(inv, engine, store).status(Actor("alice", "console")).message)
    finally:
        engine.close()
        store.close()
    assert "www-a → web1 (up) lo unknown" in chat and "missing" not in chat.lower()
    assert chat.count("loopback of web1 unknown: web1: host key of") == 1


def test_a_missing_key_file_stops_status_and_not_history(lab: Lab, lab_inv: Inventory, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_key"
    config = inventory_copy(lab, lab_inv, tmp_path, key_file=missing)
    done = lasthop("history", "--config", str(config))
    assert done.returncode == 0 and "(no audit records)" in done.stdout, done.stdout + done.stderr
    done = lasthop("check-config", "--config", str(config))
    assert done.returncode == 0 and f"key_file {missing} does not exist" in done.stderr
    done = lasthop("status", "--config", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"key_file {missing} does not exist" in done.stderr
    assert "lasthop status logs in to devices and needs that file; nothing was done" in done.stderr
