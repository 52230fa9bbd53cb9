"""An incident as people see it, folded from its stored events (bot.incident_view.view_of): pure data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot import incident_view as iv
from bot.state import IncidentEvent, IncidentRecord

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(kind: str, member: str = "", after: float = 0.0, **data: Any) -> IncidentEvent:
    return IncidentEvent(at(after), kind, member, data, "words are never read back")


def member(kind: str, ref: str, after: float, *failing: str, **flags: bool) -> IncidentEvent:
    return ev(kind, ref, after, failing=list(failing), flapping=flags.get("flapping", False),
              maintenance=flags.get("maintenance", False))


def fold(*events: IncidentEvent, key: str = "host:web1", status: str = "open") -> iv.IncidentView:
    resolved = at(600) if status == "resolved" else None
    return iv.view_of(IncidentRecord(3, key, "stored title", "major", status, T0, resolved, list(events),
                                     "C0ALERTS", "1700000000.000100"))


def test_the_last_event_of_a_member_is_its_state() -> None:
    v = fold(member(iv.DOWN, "host:web1", 0, "www-a"),
             member(iv.DOWN, "host:web1", 5, "www-a", "www-b"),
             member(iv.PARTIAL, "host:web1", 60, "www-b", maintenance=True))
    (web1,) = v.members
    assert (web1.kind, web1.name, web1.failing, web1.maintenance, web1.flapping) == (
        "host", "web1", ("www-b",), True, False)
    assert v.failing_hosts() == ("web1",) and v.failing_on("web1") == ("www-b",)
    assert v.member("host:web1") is web1 and v.member("host:web2") is None and v.failing_on("web2") == ()
    assert v.affected == ("www-a", "www-b")  # everything that failed during it, even what came back


def test_affected_and_failed_hosts_keep_the_order_things_failed_in() -> None:
    v = fold(member(iv.DOWN, "host:web2", 0, "www-b"),
             member(iv.DOWN, "host:web1", 3, "www-d", "www-a"),
             member(iv.UP, "host:web2", 30),
             member(iv.DOWN, "host:web2", 40, "www-b"))
    assert v.affected == ("www-b", "www-d", "www-a")
    assert v.failed_hosts == ("web2", "web1")
    assert v.title == "web2 and web1 are down"
    assert [m.ref for m in v.members] == ["host:web2", "host:web1"]


def test_the_title_names_the_failed_hosts_not_the_first_check() -> None:
    three = fold(member(iv.DOWN, "service:www-a", 0, "www-a"),
                 *(member(iv.DOWN, f"host:{h}", n, "www-a") for n, h in enumerate(("web1", "web2", "web3"), 1)),
                 key="service:www-a")
    assert three.title == "web1, web2 and web3 are down"
    assert fold(member(iv.DOWN, "host:web1", 0, "www-a")).title == "web1 is down"
    assert fold(member(iv.DOWN, "service:www-a", 0, "www-a"), key="service:www-a").title == "www-a unreachable"
    assert fold(key="host:web9").title == "host:web9"  # opened, nothing recorded yet


def test_a_resolved_event_of_a_member_clears_it_but_not_the_story() -> None:
    v = fold(member(iv.DOWN, "host:web1", 0, "www-a"), member(iv.RESOLVED, "host:web1", 90), status="resolved")
    assert not v.open and v.resolved_at == at(600)
    assert v.failing_hosts() == () and v.failed_hosts == ("web1",) and v.affected == ("www-a",)
    assert v.title == "web1 is down"


def test_moves_are_folded_and_the_last_done_one_per_service_counts() -> None:
    def move(after: float, status: str, to: str, **extra: Any) -> IncidentEvent:
        return ev(iv.MOVE, "", after, moves=[{"service": "www-a", "from": "web1", "to": to}, "garbage"],
                  status=status, by="slack:U0ALICE", **extra)

    v = fold(member(iv.DOWN, "host:web1", 0, "www-a"),
             move(10, "rolled_back", "web2", ms=900),
             move(20, "done", "web3", approved_by="slack:U0BOB", ms=812),
             move(30, "failed", "web2", ms="812"))
    assert [(m.status, m.moves, m.ms) for m in v.moves] == [
        ("rolled_back", (("www-a", "web1", "web2"),), 900),
        ("done", (("www-a", "web1", "web3"),), 812),
        ("failed", (("www-a", "web1", "web2"),), None),  # ms that is no int is not a duration
    ]
    last = v.last_move("www-a")
    assert last is not None and (last.at, last.by, last.approved_by, last.services) == (
        at(20), "slack:U0ALICE", "slack:U0BOB", ("www-a",))
    assert v.moves[0].approved_by == "" and v.last_move("www-b") is None


def test_a_move_from_no_route_keeps_none_as_its_origin() -> None:
    v = fold(ev(iv.MOVE, "", 5, moves=[{"service": "www-a", "from": None, "to": "web3"}], status="done", by="lasthop"))
    assert v.moves[0].moves == (("www-a", None, "web3"),)


def test_the_first_acknowledgement_is_the_one_that_counts() -> None:
    v = fold(member(iv.DOWN, "host:web1", 0, "www-a"),
             ev(iv.ACK, "", 30, by="slack:U0BOB"), ev(iv.ACK, "", 60, by="slack:U0CAROL"))
    assert (v.acked_by, v.acked_at) == ("slack:U0BOB", at(30))
    assert fold(member(iv.DOWN, "host:web1", 0, "www-a")).acked_by == ""


def test_flapping_and_odd_data_are_read_without_trusting_it() -> None:
    v = fold(member(iv.FLAPPING, "host:web1", 0, "www-a", flapping=True),
             ev(iv.DOWN, "host:web2", 1, failing="www-b"),  # not a list: nothing failing
             ev(iv.NOTE, "host:web3", 2, failing=["www-d"]),  # a note is no member state
             ev(iv.HOLD, "", 3, text="holding"))
    web1, web2 = v.members
    assert web1.flapping and web1.failing == ("www-a",)
    assert web2.failing == () and not web2.flapping
    assert v.affected == ("www-a",) and v.failed_hosts == ("web1",)
    assert len(v.events) == 4 and (v.channel, v.thread_ts, v.id, v.key) == (
        "C0ALERTS", "1700000000.000100", 3, "host:web1")
