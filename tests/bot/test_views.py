"""Every message lasthop shows, composed from data alone: timeline lines, the alert, plans, status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS

from bot import incident_view as iv
from bot import plain
from bot.chat import Button, Buttons, Code, Message, Note, Text, decode
from bot.commands import CommandNames
from bot.engine.model import MoveRequest, Outcome, Plan, PlannedMove, RiskReason
from bot.health.state import Health
from bot.inventory import Inventory
from bot.situation import Situation
from bot.state import IncidentEvent, IncidentRecord
from bot.status import ServiceRow, StatusView
from bot.views import (
    CLI,
    Phrasing,
    approval_message,
    confirm_message,
    event_text,
    incident_message,
    outcome_message,
    status_message,
    thread_line,
)

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SINCE = f"<!date^{int(T0.timestamp())}^{{time}}|03:04 UTC>"
HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
CHAT = Phrasing(CommandNames(umbrella="/lh", failover="/move", status="/vips"))
D, U = Health.DOWN, Health.UP


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory_from_text(tmp_path, THREE_HOSTS)


# ---------------------------------------------------------------- data


def ev(kind: str, member: str = "", after: float = 0.0, **data: Any) -> IncidentEvent:
    return IncidentEvent(T0 + timedelta(seconds=after), kind, member, data, f"(stored text of {kind})")


def down(host: str, *failing: str, after: float = 0.0, **state: Any) -> IncidentEvent:
    """A host member's event, with its whole state (not flapping, not in maintenance unless `state` says so)."""
    return ev(iv.DOWN, f"host:{host}", after, **{"failing": list(failing), "flapping": False, "maintenance": False,
                                                 **state})


def moved(service: str, frm: str | None, to: str, after: float, status: str = "done") -> IncidentEvent:
    return ev(iv.MOVE, "", after, services=[service], moves=[{"service": service, "from": frm, "to": to}],
              status=status, by="slack:U0ALICE", approved_by="", ms=812)


def view(*events: IncidentEvent, key: str = "host:web1", resolved_after: float | None = None) -> iv.IncidentView:
    resolved = T0 + timedelta(seconds=resolved_after) if resolved_after is not None else None
    return iv.view_of(IncidentRecord(7, key, "stored title", "major", "resolved" if resolved else "open", T0,
                                     resolved, list(events), "C0ALERTS", "1700000000.000100"))


def situation(inv: Inventory, health: Mapping[str, Health] | None = None,
              serving: Mapping[str, str] = HOME) -> Situation:
    """Every (service, host) UP, except `health` (keyed "service@host")."""
    state = {(s.name, h): U for s in inv.services.values() for h in s.hosts}
    for pair, state_now in (health or {}).items():
        service, host = pair.split("@")
        state[(service, host)] = state_now
    return Situation(state, dict(serving))


def message(inv: Inventory, v: iv.IncidentView, now: Situation, phrasing: Phrasing = CHAT) -> Message:
    return incident_message(inv, v, now, phrasing, T0 + timedelta(minutes=10))


def texts(m: Message, kind: type[Text] | type[Note] | type[Code] = Text) -> list[str]:
    return [p.text for p in m.parts if isinstance(p, kind)]


def labels(m: Message) -> list[str]:
    return [b.label for b in m.buttons]


def button(m: Message, label: str) -> Button:
    return next(b for b in m.buttons if b.label == label)


# ---------------------------------------------------------------- the timeline

MOVE = {"moves": [{"service": "www-a", "from": "web1", "to": "web3"}], "by": "slack:U0BOB", "ms": 812}
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (iv.DOWN, "host:web1", {"failing": ["www-a", "www-b"], "service": "www-b", "detail": "connect timeout"},
     "web1 is down for www-a and www-b (www-b: connect timeout)"),
    (iv.DOWN, "host:web1", {"failing": ["www-a"]}, "web1 is down for www-a"),
    (iv.STILL_DOWN, "host:web1", {"failing": ["www-a", "www-d"]},
     "web1 is still down after maintenance (www-a and www-d)"),
    (iv.PARTIAL, "host:web1", {"failing": ["www-b"], "back": ["www-a"]},
     "www-a back on web1; web1 is still down for www-b"),
    (iv.UP, "host:web1", {"failing": []}, "web1 is back up"),
    (iv.UP, "host:web1", {"failing": [], "after_maintenance": True}, "web1 is back up after maintenance"),
    (iv.FLAPPING, "host:web1", {"changes": 4, "window": 300.0},
     "web1 is flapping: 4 changes in 5m; lasthop moves nothing to or from it automatically, and says nothing "
     "more about it until it has been stable for 5m"),
    (iv.STABLE, "host:web1", {"failing": []}, "web1 is stable again and up"),
    (iv.STABLE, "host:web1", {"failing": ["www-a"]}, "web1 is stable again and down for www-a"),
    (iv.MAINTENANCE_ON, "host:web1", {}, "web1 is in maintenance: its alerts are silenced and nothing moves to it"),
    (iv.MAINTENANCE_OFF, "host:web1", {}, "web1 is out of maintenance: checking it again"),
    (iv.DOWN, "service:www-a", {"failing": ["www-a"], "serving": {"www-a": "web1"}},
     "www-a is unreachable through r1 (VIP check); it is served by web1"),
    (iv.DOWN, "service:www-a", {"failing": ["www-a"], "serving": {"www-a": None}, "detail": "timeout"},
     "www-a is unreachable through r1 (VIP check); who serves it is unknown: timeout"),
    (iv.DOWN, "service:www-z", {"failing": ["www-z"]},
     "www-z is unreachable through the router (VIP check); who serves it is unknown"),
    (iv.FLAPPING, "service:www-a", {"changes": 5, "window": 600},
     "www-a through r1 is flapping: 5 changes in 10m; quiet about it until it is stable"),
    (iv.STABLE, "service:www-a", {"failing": ["www-a"]}, "www-a is stable again and unreachable through r1"),
    (iv.STABLE, "service:www-a", {"failing": []}, "www-a is stable again and reachable through r1"),
    (iv.UP, "service:www-a", {"failing": []}, "www-a is reachable again through r1"),
    (iv.ACK, "", {"by": "slack:U0ALICE"}, "<@U0ALICE> is on it (acknowledged)"),
    (iv.MOVE, "", {**MOVE, "status": "done", "approved_by": "slack:U0CAROL", "notes": ["web3 now serves all"]},
     "moved www-a web1 → web3 (<@U0BOB>, approved by <@U0CAROL>) in 0.8 s, verified in the router's FIB; "
     "web3 now serves all"),
    (iv.MOVE, "", {**MOVE, "status": "done", "by": "lasthop", "ms": None,
                   "moves": [{"service": "www-a", "from": None, "to": "web3"}]},
     "moved www-a no route → web3 (lasthop (automatic)), verified in the router's FIB"),
    (iv.MOVE, "", {**MOVE, "status": "rolled_back", "why": "change failed: r1: verify timed out"},
     "move www-a web1 → web3 (<@U0BOB>) failed and was rolled back in 0.8 s: r1: verify timed out"),
    (iv.MOVE, "", {**MOVE, "status": "needs_human"},
     "move www-a web1 → web3 (<@U0BOB>) FAILED and its rollback failed: a human is needed now"),
    (iv.MOVE, "", {**MOVE, "status": "failed"}, "move www-a web1 → web3 (<@U0BOB>): failed"),
    (iv.HOLD, "", {"text": "holding: 2 of 3 hosts failed at once"}, "holding: 2 of 3 hosts failed at once"),
    (iv.NOTE, "", {"text": "automatic move of www-a refused"}, "automatic move of www-a refused"),
    (iv.REMINDER, "", {"text": "reminder: web1 is down for 15 min"}, "reminder: web1 is down for 15 min"),
    (iv.NOTE, "", {}, "note"),
    (iv.RESOLVED, "host:web1", {"failing": [], "why": iv.UP, "took": 95}, "web1 is back up; all clear after 1m35s"),
    (iv.RESOLVED, "host:web1", {"failing": [], "why": iv.STABLE, "took": 600},
     "web1 is stable again and up; all clear after 10m"),
    (iv.RESOLVED, "", {"took": None}, "nothing is failing any more; all clear"),
]


@pytest.mark.parametrize(("kind", "member", "data", "expected"), CASES)
def test_event_text_from_data_alone(inv: Inventory, kind: str, member: str, data: dict[str, Any],
                                    expected: str) -> None:
    assert event_text(inv, kind, member, data) == expected


def test_the_cases_cover_every_event_kind() -> None:
    kinds = iv.MEMBER_KINDS | {iv.MOVE, iv.HOLD, iv.ACK, iv.NOTE, iv.RESOLVED, iv.REMINDER}
    assert kinds <= {kind for kind, _, _, _ in CASES}


def test_device_output_in_details_is_escaped(inv: Inventory) -> None:
    evil = "<!channel> <@U0BOSS> & <https://example.invalid|click>"
    inert = "&lt;!channel&gt; &lt;@U0BOSS&gt; &amp; &lt;https://example.invalid|click&gt;"
    host = event_text(inv, iv.DOWN, "host:web1", {"failing": ["www-a"], "service": "www-a", "detail": evil})
    vip = event_text(inv, iv.DOWN, "service:www-a", {"failing": ["www-a"], "detail": evil})
    move = event_text(inv, iv.MOVE, "", {**MOVE, "status": "rolled_back", "why": f"change failed: {evil}"})
    for line in (host, vip, move):
        assert line.endswith(inert) or line.endswith(inert + ")"), line
        assert "<!channel>" not in line and "<@U0BOSS>" not in line
    # The terminal shows what the device said, once, after every other rule.
    assert plain.text(move).endswith(evil)


def test_a_thread_line_carries_its_time_with_seconds() -> None:
    line = thread_line(T0, "web1 is back up")
    assert line.fallback == "web1 is back up"
    assert texts(line) == [f"<!date^{int(T0.timestamp())}^{{time_secs}}|03:04:05 UTC> web1 is back up"]


# ---------------------------------------------------------------- the alert


def test_open_with_one_service_down_offers_one_fail_over_button(inv: Inventory) -> None:
    m = message(inv, view(down("web1", "www-a")), situation(inv, {"www-a@web1": D}))
    head, body = texts(m)
    assert head == f":red_circle: *OPEN* web1 is down since {SINCE}"
    assert body == "• *www-a* → web1 :red_circle: still on web1, which is down"
    assert m.fallback == f"web1 is down: {head}"
    assert labels(m) == ["Fail over www-a to web3", "Acknowledge", "Maintenance 1h"]
    fail_over = button(m, "Fail over www-a to web3")
    assert (fail_over.action, decode(fail_over.value), fail_over.style) == (
        "alert_failover", {"i": 7, "s": "www-a", "h": "web3"}, "danger")
    assert fail_over.confirm is not None and fail_over.confirm.yes == "Fail over"
    assert "Move *www-a* from web1 to web3?" in fail_over.confirm.text
    assert decode(button(m, "Acknowledge").value) == {"i": 7}
    assert decode(button(m, "Maintenance 1h").value) == {"i": 7, "h": "web1"}
    assert texts(m, Note) == ["Or type: `/move www-a to web3`"]


def test_the_suggested_command_is_the_cli_where_there_is_no_chat(inv: Inventory) -> None:
    m = message(inv, view(down("web1", "www-a")), situation(inv, {"www-a@web1": D}), CLI)
    assert texts(m, Note) == ["Or type: `lasthop failover www-a --to web3`"]


def test_phrasing_names_the_configured_commands() -> None:
    assert (CHAT.failover("web1"), CHAT.failover("www-a", "web2")) == ("`/move web1`", "`/move www-a to web2`")
    assert (CHAT.status(), CHAT.status("www-a")) == ("`/vips`", "`/vips www-a`")
    assert (CLI.failover("www-a", "web2"), CLI.status("web1")) == ("`lasthop failover www-a --to web2`",
                                                                   "`lasthop status web1`")


def test_several_services_on_the_failed_host_get_one_fail_over_all_button(inv: Inventory) -> None:
    m = message(inv, view(down("web1", "www-a", "www-d")), situation(inv, {"www-a@web1": D, "www-d@web1": D}))
    assert labels(m) == ["Fail over all", "Acknowledge", "Maintenance 1h"]
    all_of_them = button(m, "Fail over all")
    assert (all_of_them.action, decode(all_of_them.value), all_of_them.style) == (
        "alert_failover_all", {"i": 7, "h": ["web1"]}, "danger")
    assert all_of_them.confirm is not None and all_of_them.confirm.text.startswith("Move www-a → web3, www-d → ")
    assert texts(m)[1].splitlines() == ["• *www-a* → web1 :red_circle: still on web1, which is down",
                                        "• *www-d* → web1 :red_circle: still on web1, which is down"]


def test_fail_over_all_confirms_the_moves_the_drain_will_make(inv: Inventory) -> None:
    m = message(inv, view(down("web1", "www-a", "www-d")), situation(inv, {"www-a@web1": D, "www-d@web1": D}))
    confirm = button(m, "Fail over all").confirm
    assert confirm is not None and "www-a → web3, www-d → web2" in confirm.text


def test_acknowledge_is_hidden_once_acknowledged_and_the_head_says_who(inv: Inventory) -> None:
    v = view(down("web1", "www-a"), ev(iv.ACK, "", 30, by="slack:U0BOB"), ev(iv.ACK, "", 60, by="slack:U0CAROL"))
    m = message(inv, v, situation(inv, {"www-a@web1": D}))
    assert texts(m)[0].endswith(" · acknowledged by <@U0BOB>")
    assert labels(m) == ["Fail over www-a to web3", "Maintenance 1h"]


def test_a_failed_standby_is_down_not_serving(inv: Inventory) -> None:
    m = message(inv, view(down("web3", "www-a"), key="host:web3"), situation(inv, {"www-a@web3": D}))
    head, body = texts(m)
    assert head.startswith(f":large_yellow_circle: *DOWN, NOT SERVING* web3 is down since {SINCE}: ")
    assert head.endswith("it serves no traffic now, so nothing is affected")
    assert body == "• *www-a* → web1 :white_check_mark:"
    assert labels(m) == ["Acknowledge", "Maintenance 1h"] and decode(button(m, "Maintenance 1h").value)["h"] == "web3"
    assert texts(m, Note) == []


def test_mitigated_after_a_move(inv: Inventory) -> None:
    v = view(down("web1", "www-a"), moved("www-a", "web1", "web3", 42))
    m = message(inv, v, situation(inv, {"www-a@web1": D}, {**HOME, "www-a": "web3"}))
    head, body = texts(m)
    assert head == f":large_yellow_circle: *MITIGATED* after 42s: traffic is off the failed host · " \
                   f"web1 is down since {SINCE}"
    assert body == "• *www-a* → web3 :white_check_mark: moved (<@U0ALICE> in 0.8 s)"
    assert labels(m) == ["Acknowledge", "Maintenance 1h"]  # nothing left to fail over


def test_a_move_that_rolled_back_leaves_it_open(inv: Inventory) -> None:
    v = view(down("web1", "www-a"), moved("www-a", "web1", "web3", 42, status="rolled_back"))
    m = message(inv, v, situation(inv, {"www-a@web1": D}))
    assert texts(m)[0].startswith(":red_circle: *OPEN*") and "Fail over www-a to web3" in labels(m)


def test_resolved_offers_fail_back_to_where_it_was(inv: Inventory) -> None:
    v = view(down("web1", "www-a"), moved("www-a", "web1", "web3", 42),
             ev(iv.RESOLVED, "host:web1", 300, failing=[], why=iv.UP, took=300), resolved_after=300)
    m = message(inv, v, situation(inv, serving={**HOME, "www-a": "web3"}))
    assert texts(m)[0] == f":white_check_mark: *RESOLVED* web1 was down from {SINCE} for 5m"
    assert labels(m) == ["Fail back www-a to web1"]
    back = button(m, "Fail back www-a to web1")
    assert (back.action, decode(back.value)) == ("alert_failback", {"i": 7, "s": "www-a", "h": "web1"})
    assert back.confirm is not None and "second person" in back.confirm.text
    assert texts(m, Note) == []
    # Already back home: nothing to offer, not even an empty row of buttons.
    home = message(inv, v, situation(inv))
    assert home.buttons == () and not any(isinstance(p, Buttons) for p in home.parts)


def test_a_vip_only_incident(inv: Inventory) -> None:
    v = view(ev(iv.DOWN, "service:www-a", 0, failing=["www-a"], flapping=False, maintenance=False),
             key="service:www-a")
    assert v.title == "www-a unreachable"
    m = message(inv, v, situation(inv))
    head, body = texts(m)
    assert head == f":red_circle: *OPEN* www-a unreachable since {SINCE}"
    assert body == "• *www-a* → web1 :red_circle: unreachable through r1"
    assert labels(m) == ["Fail over www-a to web3", "Acknowledge"]  # no host failed: no maintenance to offer


def test_no_healthy_target_is_said_instead_of_a_button(inv: Inventory) -> None:
    m = message(inv, view(down("web1", "www-a")), situation(inv, {"www-a@web1": D, "www-a@web2": D,
                                                                    "www-a@web3": Health.FALLING}))
    assert labels(m) == ["Acknowledge", "Maintenance 1h"]
    assert texts(m, Note) == ["www-a: no healthy host to move it to (web2 down, web3 falling)"]


def test_maintenance_and_flapping_members_are_shown_and_maintenance_is_not_offered_again(inv: Inventory) -> None:
    v = view(down("web1", "www-a"), down("web1", "www-a", after=5, maintenance=True),
             down("web2", "www-b", after=6, flapping=True))
    m = message(inv, v, situation(inv, {"www-a@web1": D, "www-b@web2": D}))
    body = texts(m)[1].splitlines()
    assert ":wrench: web1 is in maintenance" in body and ":warning: web2 is flapping: no automatic moves" in body
    assert decode(button(m, "Maintenance 1h").value)["h"] == "web2"


# ---------------------------------------------------------------- plans and outcomes


def plan(risks: tuple[RiskReason, ...] = ()) -> Plan:
    req = MoveRequest("service", "www-a", "slack:U0ALICE", "slack", to_host="web2")
    move = PlannedMove("www-a", "r1", IPv4Network("198.51.100.32/27"), "web1", IPv4Address("192.0.2.2"),
                       "web2", IPv4Address("192.0.2.3"), (IPv4Address("198.51.100.33"),))
    commands = {"r1": ["configure terminal", "ip route 198.51.100.32/27 192.0.2.3", "end"]}
    return Plan(req, (move,), ("www-a (198.51.100.32/27 on r1): web1 -> web2",), commands, risks)


def test_a_confirm_message_shows_the_plan_and_its_buttons_carry_the_approval_id() -> None:
    m = confirm_message(plan(), "a1b2c3")
    assert m.fallback == "Plan: www-a (198.51.100.32/27 on r1): web1 -> web2"
    assert texts(m) == ["*Plan* (www-a):\n• www-a (198.51.100.32/27 on r1): web1 -> web2"]
    assert texts(m, Note) == ["Commands on r1:"]
    assert texts(m, Code) == ["configure terminal\nip route 198.51.100.32/27 192.0.2.3\nend"]
    assert [(b.label, b.action, b.value, b.style) for b in m.buttons] == [
        ("Confirm move", "confirm", "a1b2c3", "primary"), ("Cancel", "cancel", "a1b2c3", None)]
    confirm = m.buttons[0].confirm
    assert confirm is not None and confirm.text == "Move www-a now?"


def test_an_approval_message_names_the_requester_the_deadline_and_the_risks() -> None:
    m = approval_message(plan((RiskReason("moves_from_healthy_host", "moves www-a away from web1, which is healthy"),)),
                         "a1b2c3", "slack:U0ALICE", 15)
    assert m.fallback == "Approval needed: www-a (198.51.100.32/27 on r1): web1 -> web2"
    head, _, risks = texts(m)
    assert head == ":raised_hand: <@U0ALICE> asks to move traffic. Approval needed within 15 min."
    assert risks == "*Needs approval:*\n• moves www-a away from web1, which is healthy"
    assert [(b.action, b.value, b.style) for b in m.buttons] == [("approve", "a1b2c3", "primary"),
                                                                 ("deny", "a1b2c3", "danger")]


def test_an_outcome_escapes_what_the_device_said_and_shows_timings() -> None:
    outcome = Outcome("rolled_back", plan(), ["change failed: r1: rejected 'x': <!here>"],
                      timings_ms={"apply_ms": 120, "total_ms": 900})
    m = outcome_message(outcome, by="approved by <@U0BOB>", plan=plan())
    (text,) = texts(m)
    assert text.splitlines() == [":leftwards_arrow_with_hook: Failed and rolled back (approved by <@U0BOB>)",
                                 "• change failed: r1: rejected 'x': &lt;!here&gt;", "_apply 120 ms, total 900 ms_"]
    assert texts(m, Note) == ["www-a (198.51.100.32/27 on r1): web1 -> web2"]


# ---------------------------------------------------------------- status


def row(service: str, host: str | None, health: str = "up", **kw: Any) -> ServiceRow:
    return ServiceRow(service, "198.51.100.32/27", "r1", host, (), health, kw.pop("loopback", True), **kw)


def test_status_message_marks_what_is_wrong_and_offers_to_post() -> None:
    status = StatusView([
        row("www-a", "web1"),
        row("www-b", "web3", "down", loopback=False),
        row("www-d", None, "init", loopback=None, drift="r1 198.51.100.96/27 has 2 next hops"),
        row("shop", None, "init", loopback=None, error="r1: <no answer>"),
    ], notes=["change 1234abcd on r1 is still applying"])
    m = status_message(status)
    (text,) = texts(m)
    assert text.splitlines() == [
        ":large_green_circle: *www-a* → web1 (up) lo ok",
        ":red_circle: *www-b* → web3 (down) *VIP missing on lo*",
        ":white_circle: *www-d* → no single host (init) :warning: drift",
        ":white_circle: *shop* → ? (init) :x: r1: &lt;no answer&gt;",
    ]
    assert texts(m, Note) == [":warning: r1 198.51.100.96/27 has 2 next hops\n"
                              ":warning: change 1234abcd on r1 is still applying"]
    assert [(b.action, b.value) for b in m.buttons] == [("post_status", "all")]
    assert m.fallback == text


def test_status_message_posted_has_a_head_a_detail_and_no_button() -> None:
    m = status_message(StatusView([row("www-a", "web1")]), detail=["www-a: 198.51.100.32/27 on r1 via 192.0.2.2"],
                       offer_post=False, head="Status, asked by <@U0ALICE>:")
    assert texts(m) == ["Status, asked by <@U0ALICE>:", ":large_green_circle: *www-a* → web1 (up) lo ok"]
    assert texts(m, Code) == ["www-a: 198.51.100.32/27 on r1 via 192.0.2.2"]
    assert m.buttons == ()
    assert m.fallback.splitlines()[0] == "Status, asked by <@U0ALICE>:" and m.fallback.endswith("via 192.0.2.2")
    assert texts(status_message(StatusView([]), offer_post=False)) == ["No services."]
