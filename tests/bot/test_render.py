"""Terminal rendering: every view fits 80 columns and says what happened in words."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from bot import plain
from bot.chat import Message
from bot.engine.model import MoveRequest, Outcome, Plan, PlannedMove, RiskReason
from bot.render import history_text, status_text
from bot.state.records import LeaderRecord
from bot.status import Leadership, ServiceRow, StatusView
from bot.views import outcome_message, plan_parts


def test_status_fits_80_columns_and_marks_problems() -> None:
    view = StatusView([
        ServiceRow("www-a", "198.51.100.32/27", "r1", "web2", ("198.51.100.3",), "up", True),
        ServiceRow("www-b", "198.51.100.64/27", "r1", None, ("198.51.100.2", "198.51.100.3"), "init", None,
                   drift="r1 198.51.100.64/27 has 2 next hops"),
        ServiceRow("www-c", "198.51.100.200/32", "r1", "web3", ("198.51.100.4",), "down", False),
    ], notes=["change 1234abcd on r1 is still applying"])
    text = status_text(view)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[1].split() == ["www-a", "198.51.100.32/27", "r1", "web2", "ok", "ok"]
    assert lines[2].split()[3:7] == ["2", "hops", "?", "-"]
    assert lines[3] == "  ! r1 198.51.100.64/27 has 2 next hops"
    assert lines[4].split()[3:6] == ["web3", "DOWN", "MISS"]
    assert lines[-1] == "! change 1234abcd on r1 is still applying"


def test_status_ends_with_the_leader_in_utc_with_its_date() -> None:
    since = datetime(2030, 1, 2, 5, 2, 11, tzinfo=UTC)
    lead = LeaderRecord("lasthop-b", "vm", 1234, 7, since, None, "", True)
    row = ServiceRow("www-a", "198.51.100.32/27", "r1", "web2", ("198.51.100.3",), "up", True)
    lines = status_text(StatusView([row], leadership=Leadership(lead, shared=True))).splitlines()
    assert lines[-1] == "leader: lasthop-b (vm:1234) since 2030-01-02 05:02:11Z, term 7"
    gone = LeaderRecord("lasthop-a", "vm", 1234, 7, since, since, "lost its database session", False)
    lines = status_text(StatusView([row], leadership=Leadership(gone, shared=True))).splitlines()
    assert all(len(line) <= 80 for line in lines) and lines[-1].startswith("  ")  # wrapped, indented
    assert len(status_text(StatusView([row])).splitlines()) == 2  # no record: no leader line


def test_plan_and_outcome_text() -> None:
    req = MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host="web2")
    move = PlannedMove("www-a", "r1", IPv4Network("198.51.100.32/27"), "web1", IPv4Address("198.51.100.2"),
                       "web2", IPv4Address("198.51.100.3"), (IPv4Address("198.51.100.33"),))
    plan = Plan(req, (move,), ("www-a (198.51.100.32/27 on r1): web1 -> web2",),
                {"r1": ["configure terminal", "ip route 198.51.100.32/27 198.51.100.3", "end"]},
                (RiskReason("moves_from_healthy_host", "moves www-a away from web1, which is healthy"),))
    # What the CLI prints: the chat's messages as plain text.
    text = plain.render(Message("plan", tuple(plan_parts(plan))))
    assert "• www-a (198.51.100.32/27 on r1): web1 -> web2" in text
    assert "    ip route 198.51.100.32/27 198.51.100.3" in text
    assert "Needs approval:\n• moves www-a away from web1, which is healthy" in text
    out = plain.render(outcome_message(Outcome("rolled_back", plan, ["change failed: x", "rolled back to y, verified"],
                                               timings_ms={"apply_ms": 80, "verify_ms": 120})))
    assert out.splitlines()[0] == "[rolled back] Failed and rolled back"
    assert "apply 80 ms, verify 120 ms" in out


def test_history_lists_refusals_with_reasons_marks_accepted_risk_and_reads_as_words(tmp_path: Path) -> None:
    from support.fakes import inventory_from_text
    from support.lan import THREE_HOSTS
    from support.memory import memory_rig

    from bot.chat import Actor
    from bot.commands import FailoverCommand
    from bot.workflow import Workflow

    rig = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, {"www-a": "web1", "www-b": "web2",
                                                                            "www-d": "web1"})
    try:
        flow = Workflow(rig.inv, rig.engine, rig.store)
        alice = Actor("alice", "cli")
        assert flow.request(alice, FailoverCommand("www-a", "web3", dry_run=True)).ok
        assert not flow.request(alice, FailoverCommand("www-a", "web3")).ok  # risky: refused
        offer = flow.request(alice, FailoverCommand("www-b", "web3"), accept_risk=True).offer
        assert offer is not None
        assert flow.confirm(alice, offer.approval_id, accept_risk=True).ok
        text = history_text(reversed(rig.store.history(limit=10)))
    finally:
        rig.close()
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines if line.startswith("    ")), text  # details wrap
    assert "dry-run:dry-run" not in text and "[cli] dry run www-a: ok" in text
    refused = next(i for i, line in enumerate(lines) if "failover www-a: REFUSED" in line)
    assert lines[refused + 1] == "    moves www-a away from web1, which is healthy"
    done = next(line for line in lines if " move www-b: done" in line)
    assert "RISK ACCEPTED without a second person" in done
    assert "risk accepted by cli:alice: moves www-b away from web2, which is healthy" in " ".join(
        line.strip() for line in lines)
