"""The status model: a host that cannot be read is "unknown, because ...", never "missing"; maintenance shows;
so does which `serve` instance leads, and since when."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.memory import MemoryHost, Rig, memory_rig

from bot import plain
from bot.chat import Note
from bot.drivers.errors import HostKeyError
from bot.drivers.host import VipCheck
from bot.engine.pipeline import Engine
from bot.render import status_text
from bot.state import StateStore
from bot.state.errors import StateError
from bot.state.records import LeaderRecord
from bot.status import Leadership, StatusView, collect_status
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


# ------------------------------------------------------------------ leadership

SINCE = datetime(2030, 1, 2, 5, 2, 11, tzinfo=UTC)
LEADING = LeaderRecord(instance="lasthop-b", node="vm", pid=1234, term=7, since=SINCE, until=None, reason="",
                       alive=True)


def hhmmss(at: datetime) -> str:
    return f"{at:%H:%M:%S}Z"


def test_the_leader_is_named_with_its_process_start_and_term() -> None:
    assert Leadership(LEADING, shared=True).words(hhmmss) == "leader: lasthop-b (vm:1234) since 05:02:11Z, term 7"


def test_a_leader_that_stood_down_says_when_why_and_what_happens_next() -> None:
    down = replace(LEADING, instance="lasthop-a", until=SINCE + timedelta(seconds=58),
                   reason="lost its database session", alive=False)
    assert Leadership(down, shared=True).words(hhmmss) == (
        "leader: none: lasthop-a stood down at 05:03:09Z (lost its database session); "
        "a follower, if one runs, takes over within seconds")
    # SQLite runs one serve at most: nobody follows.
    assert Leadership(replace(down, reason=""), shared=False).words(hhmmss) == (
        "leader: none: lasthop-a stood down at 05:03:09Z; lasthop serve is not running")


def test_a_leader_whose_session_ended_without_standing_down_is_no_leader() -> None:
    gone = replace(LEADING, instance="lasthop-a", alive=False)
    assert Leadership(gone, shared=True).words(hhmmss) == (
        "leader: none: lasthop-a's session ended; a follower, if one runs, takes over within seconds")
    assert Leadership(gone, shared=False).words(hhmmss) == (
        "leader: none: lasthop-a's process ended; lasthop serve is not running")


def test_no_record_says_nothing_and_an_error_says_unknown() -> None:
    assert Leadership(None, shared=True).words(hhmmss) is None
    assert Leadership().to_dict() is None
    broken = Leadership(None, shared=True, error="state database error: connection refused")
    assert broken.words(hhmmss) == "leader: unknown (state database error: connection refused)"


def notes(view: StatusView) -> list[str]:
    return [p.text for p in status_message(view, offer_post=False).parts if isinstance(p, Note)]


def test_the_chat_escapes_what_the_store_holds_and_warns_when_nobody_leads() -> None:
    odd = replace(LEADING, instance="<!channel>", until=SINCE, reason="a <b> & c", alive=False)
    [line] = notes(StatusView([], leadership=Leadership(odd, shared=True)))
    assert line.startswith(":warning: leader: none: &lt;!channel&gt; stood down at <!date^")
    assert "(a &lt;b&gt; &amp; c)" in line
    [line] = notes(StatusView([], leadership=Leadership(LEADING, shared=True)))
    stamp = f"<!date^{int(SINCE.timestamp())}^{{time_secs}}|05:02:11 UTC>"  # the reader's zone; UTC without one
    assert line == f"leader: lasthop-b (vm:1234) since {stamp}, term 7"
    assert notes(StatusView([])) == []


@pytest.fixture
def store_rig(tmp_path: Path, state_db_url: str) -> Iterator[tuple[Rig, Engine, StateStore]]:
    """The memory devices with a real store on each backend behind the engine."""
    rig = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, ROUTES)
    store = StateStore(state_db_url)
    try:
        yield rig, Engine(rig.inv, store, devices=rig.engine.devices, health=rig.health), store
    finally:
        store.close()
        rig.close()


def test_status_shows_the_leader_the_store_records_and_its_standing_down(
        store_rig: tuple[Rig, Engine, StateStore]) -> None:
    _, engine, store = store_rig
    view = collect_status(engine, loopback=False)
    assert view.to_dict()["leader"] is None and view.to_dict()["leader_error"] == ""
    assert "leader" not in status_text(view)  # no serve ever ran: nothing to say

    seat = store.seat()
    try:
        assert seat.acquire()
        term = store.take_leadership("lasthop-a", seat)
        view = collect_status(engine, loopback=False)
        lead = view.leadership.record
        assert lead is not None and lead.leading
        [line] = [ln for ln in status_text(view).splitlines() if ln.startswith("leader")]
        assert line == (f"leader: lasthop-a ({lead.node}:{lead.pid}) since {lead.since:%Y-%m-%d %H:%M:%S}Z, "
                        f"term {term}")
        data = json.loads(json.dumps(view.to_dict()))["leader"]
        assert data == {"instance": "lasthop-a", "process": f"{lead.node}:{lead.pid}", "term": term,
                        "since": lead.since.isoformat(), "leading": True, "until": None, "reason": ""}
        chat = plain.render(status_message(view, offer_post=False))
        assert f"leader: lasthop-a ({lead.node}:{lead.pid}) since " in chat and f"term {term}" in chat

        store.stand_down(term, "lost its database session")
        view = collect_status(engine, loopback=False)
        text = " ".join(status_text(view).split())  # the line wraps at 80 columns
        assert "leader: none: lasthop-a stood down at " in text and "(lost its database session)" in text
        assert view.to_dict()["leader"]["leading"] is False
        assert notes(view)[-1].startswith(":warning: leader: none: lasthop-a stood down at ")
    finally:
        seat.release()


def test_a_store_that_cannot_say_who_leads_does_not_break_status(
        store_rig: tuple[Rig, Engine, StateStore], monkeypatch: pytest.MonkeyPatch) -> None:
    _, engine, store = store_rig

    def unreachable() -> LeaderRecord | None:
        raise StateError("state database error: connection refused")

    monkeypatch.setattr(store, "leader", unreachable)
    view = collect_status(engine, loopback=False)
    assert [r.service for r in view.rows] == sorted(ROUTES)  # the rest of status is there
    assert "leader: unknown (state database error: connection refused)" in status_text(view)
    assert view.to_dict()["leader"] is None
    assert view.to_dict()["leader_error"] == "state database error: connection refused"
