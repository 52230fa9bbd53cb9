"""The status model: a host that cannot be read is "unknown, because ...", never "missing"; maintenance shows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from ipaddress import IPv4Address
from pathlib import Path

from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.memory import MemoryHost, memory_rig

from bot import plain
from bot.drivers.errors import HostKeyError
from bot.drivers.host import VipCheck
from bot.render import status_text
from bot.status import collect_status
from bot.views import status_message


class LockedHost(MemoryHost):
    """A host lasthop cannot log in to: its key is not in known_hosts."""

    def check_vips(self, vips: Iterable[IPv4Address], *, arp: bool = True) -> VipCheck:
        raise HostKeyError(self.name, "host key of 192.0.2.2:22 is not in /kh: refusing to connect")


ROUTES = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}


def test_an_unreadable_host_is_unknown_with_its_reason_not_missing(tmp_path: Path) -> None:
    rig = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, ROUTES)
    rig.hosts["web1"] = LockedHost("web1")
    rig.hosts["web2"].vips.discard(IPv4Address("198.51.100.65"))  # really missing
    try:
        view = collect_status(rig.engine)
    finally:
        rig.close()
    rows = {r.service: r for r in view.rows}
    assert rows["www-a"].loopback is None and rows["www-a"].loopback_state == "unknown"
    assert "host key" in rows["www-a"].loopback_error and rows["www-a"].loopback_error.startswith("web1:")
    assert rows["www-b"].loopback is False and rows["www-b"].loopback_state == "missing"

    data = json.loads(json.dumps(view.to_dict()))
    a = next(s for s in data["services"] if s["service"] == "www-a")
    assert a["loopback"] is None and a["loopback_state"] == "unknown" and "known_hosts" not in a["loopback_error"]
    assert "host key" in a["loopback_error"]

    text = status_text(view)
    lines = text.splitlines()
    assert lines[1].split()[-1] == "unknown"
    assert "loopback unknown: web1: host key" in text
    assert [ln.split()[-1] for ln in lines if ln.startswith("www-b")] == ["MISS"]
    assert sum("MISS" in ln for ln in lines) == 1

    chat = plain.render(status_message(view))
    assert "[ok] www-a → web1 (up) lo unknown\n" in chat
    assert chat.count("loopback of web1 unknown: web1: host key") == 1  # once, not once per service
    assert chat.count("VIP missing on lo") == 1


def test_unchecked_loopback_is_neither(tmp_path: Path) -> None:
    rig = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, ROUTES)
    try:
        view = collect_status(rig.engine, loopback=False)
    finally:
        rig.close()
    assert {r.loopback_state for r in view.rows} == {"unchecked"}
    assert {ln.split()[-1] for ln in status_text(view).splitlines()[1:]} == {"-"}


def test_hosts_in_maintenance_show_with_end_and_reason(tmp_path: Path) -> None:
    rig = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, ROUTES)
    until = rig.clock.now + timedelta(hours=2)
    rig.store.set_maintenance("web3", by="cli:alice", reason="kernel update", until=until)
    rig.store.set_maintenance("web2", by="slack:U0BOB")
    try:
        view = collect_status(rig.engine)
        only_web1 = collect_status(rig.engine, only="web1")
    finally:
        rig.close()
    assert set(view.maintenance) == {"web2", "web3"}
    assert only_web1.maintenance == {}
    text = status_text(view)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert f"\nweb3 is in maintenance until {until:%Y-%m-%d %H:%M}Z, by cli:alice: kernel update" in text
    assert "\nweb2 is in maintenance until turned off, by slack:U0BOB" in text
    data = view.to_dict()["maintenance"]
    assert data["web3"] == {"by": "cli:alice", "reason": "kernel update",
                            "since": rig.clock.now.isoformat(), "until": until.isoformat()}
    assert data["web2"]["until"] is None
    chat = plain.render(status_message(view))
    assert f"web3 is in maintenance until {until:%H:%M}, by alice (CLI): kernel update" in chat
    assert "web2 is in maintenance until turned off, by @U0BOB" in chat
