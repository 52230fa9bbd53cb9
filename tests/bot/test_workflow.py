"""The chat-neutral workflow: access, requests, confirmations, approvals, maintenance and alert buttons.

The engine is real (plan, risk, pre-check, lock, verify, audit) over memory devices
(tests/support/memory.py) and a SQLite store; chat is a Recorder; incidents are the real
tracker and announcer over the same store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support.fakes import ManualClock, inventory_from_text
from support.lan import THREE_HOSTS
from support.memory import Rig, memory_rig

from bot import incident_view as iv
from bot.access import Role, Who, refusal
from bot.announce import Announcer
from bot.chat import Actor, Answer, MessageRef, Recorder, encode
from bot.commands import FailoverCommand, MaintenanceCommand
from bot.engine.model import MoveRequest, Outcome
from bot.health.machine import Transition
from bot.health.state import Health
from bot.incidents import IncidentTracker, IncidentUpdate
from bot.inventory import Inventory, SlackSettings
from bot.situation import Situation
from bot.values import replace
from bot.views import Phrasing
from bot.workflow import Workflow

INVENTORY = THREE_HOSTS + """
slack:
  alert_channel: C0ALERTS
  channels: [C0ALERTS]
  roles:
    viewers: [U0VIC]
    operators: [U0ALICE]
    approvers: [U0BOB, U0CAROL]
  commands: {umbrella: /lh, failover: /move, status: /vips}
"""
HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
CHANNEL = "C0ALERTS"
ALICE, VIC, EVE = (Actor(u, "slack", CHANNEL) for u in ("U0ALICE", "U0VIC", "U0EVE"))  # operator, viewer, nobody
BOB, CAROL = (Actor(u, "slack", CHANNEL) for u in ("U0BOB", "U0CAROL"))  # approvers
D = Health.DOWN


@dataclasses.dataclass
class SlackRoles:
    """The real access rules (bot.access) over the inventory's roles; one channel, no user groups."""

    settings: SlackSettings

    def refusal(self, actor: Actor, role: Role) -> str | None:
        return refusal(self.settings, Who(actor.id, actor.channel), role)


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory_from_text(tmp_path, INVENTORY)


@pytest.fixture
def rig(inv: Inventory, tmp_path: Path) -> Iterator[Rig]:
    """www-a and www-d on web1, www-b on web2; web1 fails its check for www-a."""
    r = memory_rig(inv, tmp_path, HOME, {("www-a", "web1"): D})
    yield r
    r.close()


@pytest.fixture
def chat() -> Recorder:
    return Recorder()


def workflow(rig: Rig, out: Recorder | None, incidents: Desk | None = None) -> Workflow:
    return Workflow(rig.inv, rig.engine, rig.store, access=SlackRoles(rig.inv.slack), out=out,
                    alert_channel=CHANNEL if out is not None else "", incidents=incidents,
                    phrasing=Phrasing(rig.inv.slack.commands))


@pytest.fixture
def wf(rig: Rig, chat: Recorder) -> Workflow:
    return workflow(rig, chat)


def said(answer: Answer | None) -> str:
    assert answer is not None
    return answer.message.fallback


def audits(rig: Rig, action: str) -> list[tuple[str, str]]:
    """(actor, result) of the audit records of `action`, oldest first."""
    return [(a.actor, a.result) for a in reversed(rig.store.history(200)) if a.action == action]


def risky_request(wf: Workflow, actor: Actor = ALICE) -> Answer:
    """www-b off web2, which is healthy: needs a second person."""
    answer = wf.request(actor, FailoverCommand("www-b", "web3"))
    assert answer.offer is not None and answer.offer.kind == "approval", said(answer)
    return answer


# ---------------------------------------------------------------- status


def test_status_is_denied_to_a_user_with_no_role_and_the_refusal_is_audited(wf: Workflow, rig: Rig) -> None:
    answer = wf.status(EVE)
    assert not answer.ok and "not allowed to view status" in said(answer)
    assert audits(rig, "status") == [("slack:U0EVE", "refused")]
    assert rig.hosts["web1"].checks == 0  # nothing was read for them


def test_status_of_a_name_resolves_it_and_shows_only_what_it_names(wf: Workflow) -> None:
    answer = wf.status(VIC, "WWW-A")
    assert answer.ok and answer.replace
    text = said(answer)
    assert "*www-a* → web1 (down) lo ok" in text
    assert "www-a: 198.51.100.32/27 on r1 via 192.0.2.2" in text  # the detail of /status NAME
    assert "www-b" not in text
    assert [b.action for b in answer.message.buttons] == ["post_status"]


def test_status_of_an_unknown_name_is_a_short_answer(wf: Workflow) -> None:
    answer = wf.status(VIC, "www-q")
    assert not answer.ok
    assert said(answer).startswith("no service or host") and "did you mean www-a" in said(answer)
    assert "\n" not in said(answer)


# ---------------------------------------------------------------- request


def test_a_safe_plan_is_offered_for_confirmation_and_nothing_moves_yet(wf: Workflow, rig: Rig) -> None:
    answer = wf.request(ALICE, FailoverCommand("www-a"))
    assert answer.ok and answer.offer is not None and answer.offer.kind == "confirm"
    record = rig.store.get_approval(answer.offer.approval_id)
    assert record is not None and (record.status, record.reasons, record.requester) == ("pending", [], "slack:U0ALICE")
    assert [(b.action, b.value) for b in answer.message.buttons] == [("confirm", record.id), ("cancel", record.id)]
    assert "www-a (198.51.100.32/27 on r1): web1 -> web3" in said(answer)
    assert rig.routers["r1"].applies == 0 and rig.serving("www-a") == {"web1"}


def test_a_risky_plan_goes_to_the_alert_channel_and_supersedes_the_older_request(
    wf: Workflow, rig: Rig, chat: Recorder
) -> None:
    first = risky_request(wf)
    assert "asked in <#C0ALERTS>" in said(first) and "moves www-b away from web2, which is healthy" in said(first)
    ((how, ref, posted),) = chat.sent
    assert (how, ref.channel) == ("post", CHANNEL)
    assert first.offer is not None
    assert [(b.action, b.value) for b in posted.buttons] == [("approve", first.offer.approval_id),
                                                             ("deny", first.offer.approval_id)]
    record = rig.store.get_approval(first.offer.approval_id)
    assert record is not None and (record.channel, record.message_ts) == (ref.channel, ref.ts)
    assert audits(rig, "approval-request") == [("slack:U0ALICE", "pending")]

    second = risky_request(wf)
    assert second.offer is not None
    old = rig.store.get_approval(first.offer.approval_id)
    assert old is not None and old.status == "superseded"
    assert said(wf.decide(BOB, first.offer.approval_id, "approved")) == \
        "A newer request for the same target replaced this one."
    assert rig.routers["r1"].applies == 0


def test_without_a_chat_a_risky_plan_is_refused_unless_the_risk_is_accepted(rig: Rig) -> None:
    cli = workflow(rig, None)
    refused = cli.request(ALICE, FailoverCommand("www-b", "web3"))
    assert not refused.ok and "--accept-risk" in said(refused)
    assert audits(rig, "failover") == [("slack:U0ALICE", "refused")]

    owned = cli.request(ALICE, FailoverCommand("www-b", "web3"), accept_risk=True)
    assert owned.offer is not None and owned.offer.kind == "confirm"
    # The stored record keeps its risks: confirming it takes accepting them again.
    assert "approver's button" in said(cli.confirm(ALICE, owned.offer.approval_id))
    assert rig.serving("www-b") == {"web2"}
    done = cli.confirm(ALICE, owned.offer.approval_id, accept_risk=True)
    assert done.ok and said(done).startswith(":white_check_mark: Done")
    assert rig.serving("www-b") == {"web3"}


def test_a_dry_run_checks_live_and_changes_nothing(wf: Workflow, rig: Rig) -> None:
    answer = wf.request(ALICE, FailoverCommand("www-a", dry_run=True))
    assert answer.ok and ":mag: Dry run: nothing changed" in said(answer)
    assert "pre-checks passed on r1" in said(answer)
    assert rig.health.checked == [("www-a", "web3")] and rig.hosts["web3"].checks == 1
    assert rig.routers["r1"].applies == 0 and rig.store.recent_changes() == []
    assert rig.store.get_approval("x") is None and answer.offer is None


def test_a_request_for_where_it_already_is_is_nothing_to_do(wf: Workflow, rig: Rig) -> None:
    answer = wf.request(ALICE, FailoverCommand("www-b", "web2"))
    assert answer.ok and answer.offer is None
    assert said(answer) == ":information_source: www-b is already served by web2"
    assert rig.routers["r1"].applies == 0


def test_a_request_needs_the_operator_role(wf: Workflow, rig: Rig) -> None:
    answer = wf.request(VIC, FailoverCommand("www-a"))
    assert not answer.ok and "not allowed to move services" in said(answer)
    assert audits(rig, "failover") == [("slack:U0VIC", "refused")]


# ---------------------------------------------------------------- confirm


def test_only_the_requester_confirms_and_a_second_confirmation_runs_nothing(wf: Workflow, rig: Rig) -> None:
    offer = wf.request(ALICE, FailoverCommand("www-a")).offer
    assert offer is not None
    other = wf.confirm(BOB, offer.approval_id)
    assert not other.ok and said(other) == "Only the person who asked can confirm this move."
    assert audits(rig, "confirm") == [("slack:U0BOB", "refused")]
    assert rig.serving("www-a") == {"web1"}

    done = wf.confirm(ALICE, offer.approval_id)
    assert done.ok and done.replace and said(done).startswith(":white_check_mark: Done")
    assert rig.serving("www-a") == {"web3"} and rig.routers["r1"].saves_done == 1

    again = wf.confirm(ALICE, offer.approval_id)
    assert not again.ok
    assert said(again) == "Already approved by <@U0ALICE> (change on r1: done); not run again."
    assert rig.routers["r1"].applies == 1


def test_a_risky_request_cannot_be_confirmed_by_its_requester(wf: Workflow, rig: Rig) -> None:
    offer = risky_request(wf).offer
    assert offer is not None
    answer = wf.press(ALICE, "confirm", offer.approval_id)
    assert answer is not None and not answer.ok and "approver's button" in said(answer)
    assert rig.serving("www-b") == {"web2"}


def test_a_move_that_fails_verification_is_rolled_back_and_said_so(wf: Workflow, rig: Rig) -> None:
    offer = wf.request(ALICE, FailoverCommand("www-a")).offer
    assert offer is not None
    rig.routers["r1"].fail_next("verify")
    answer = wf.confirm(ALICE, offer.approval_id)
    assert not answer.ok and said(answer).startswith(":leftwards_arrow_with_hook: Failed and rolled back")
    assert "rolled back to 198.51.100.32/27 via 192.0.2.2, verified" in said(answer)
    assert rig.serving("www-a") == {"web1"}


def test_a_move_whose_rollback_fails_calls_for_a_human(wf: Workflow, rig: Rig) -> None:
    offer = wf.request(ALICE, FailoverCommand("www-a")).offer
    assert offer is not None
    # The change is taken but never reaches the FIB, then the router refuses the rollback's removal.
    # (A change refused outright leaves nothing to undo, so its rollback has nothing to fail at.)
    rig.routers["r1"].fail_next("verify")
    rig.routers["r1"].fail_next("apply")
    answer = wf.confirm(ALICE, offer.approval_id)
    assert not answer.ok and said(answer).startswith(":rotating_light: FAILED and rollback failed")
    (change,) = rig.store.recent_changes()
    assert change.status == "needs_human"


# ---------------------------------------------------------------- cancel


def test_the_requester_cancels_their_own_request(wf: Workflow, rig: Rig) -> None:
    offer = wf.request(ALICE, FailoverCommand("www-a")).offer
    assert offer is not None
    answer = wf.cancel(ALICE, offer.approval_id)
    assert answer.ok and said(answer) == "Cancelled by <@U0ALICE>: nothing changed."
    record = rig.store.get_approval(offer.approval_id)
    assert record is not None and record.status == "denied"
    assert "Already denied" in said(wf.confirm(ALICE, offer.approval_id))
    assert rig.routers["r1"].applies == 0


def test_an_approver_cancels_someone_elses_request_and_the_request_message_says_so(
    wf: Workflow, rig: Rig, chat: Recorder
) -> None:
    offer = risky_request(wf).offer
    assert offer is not None
    answer = wf.press(BOB, "cancel", offer.approval_id)
    assert answer is not None and answer.ok
    (_, posted_ref, _), (how, ref, message) = chat.sent
    assert (how, ref) == ("update", posted_ref) and message.fallback == "Cancelled by <@U0BOB>: nothing changed."


def test_a_user_with_no_role_cannot_cancel_someone_elses_pending_approval(
    wf: Workflow, rig: Rig, chat: Recorder
) -> None:
    """Issue 11, bug 1: anybody could cancel anybody's request."""
    offer = risky_request(wf).offer
    assert offer is not None
    for actor in (EVE, VIC):
        answer = wf.cancel(actor, offer.approval_id)
        assert not answer.ok and "Only the person who asked, or an approver" in said(answer)
    record = rig.store.get_approval(offer.approval_id)
    assert record is not None and record.status == "pending"
    assert audits(rig, "cancel") == [("slack:U0EVE", "refused"), ("slack:U0VIC", "refused")]
    assert [how for how, _, _ in chat.sent] == ["post"]  # the request message is untouched


# ---------------------------------------------------------------- decide


def test_approving_needs_the_approver_role(wf: Workflow, rig: Rig) -> None:
    offer = risky_request(wf).offer
    assert offer is not None
    for actor in (VIC, EVE):
        answer = wf.decide(actor, offer.approval_id, "approved")
        assert answer is not None and not answer.ok and "not allowed to approve moves" in said(answer)
    denied = wf.decide(EVE, offer.approval_id, "denied")
    assert denied is not None and not denied.ok
    assert audits(rig, "approve") == [("slack:U0VIC", "refused"), ("slack:U0EVE", "refused")]
    assert audits(rig, "deny") == [("slack:U0EVE", "refused")]
    record = rig.store.get_approval(offer.approval_id)
    assert record is not None and record.status == "pending" and rig.serving("www-b") == {"web2"}


def test_an_approve_click_on_a_safe_plan_waiting_for_its_requester_runs_nothing(wf: Workflow, rig: Rig) -> None:
    """Found by the buttons fuzz: an approver's forged "approve" on Alice's unconfirmed safe plan ran it."""
    offer = wf.request(ALICE, FailoverCommand("www-a", "web2")).offer  # web1 is down: safe, Alice confirms
    assert offer is not None and offer.kind == "confirm"
    for actor in (BOB, CAROL):
        answer = wf.press(actor, "approve", offer.approval_id)
        assert answer is not None and not answer.ok and "nothing to approve" in said(answer)
    assert audits(rig, "approve") == [("slack:U0BOB", "refused"), ("slack:U0CAROL", "refused")]
    record = rig.store.get_approval(offer.approval_id)
    assert record is not None and record.status == "pending" and rig.serving("www-a") == {"web1"}
    assert wf.confirm(ALICE, offer.approval_id).ok and rig.serving("www-a") == {"web2"}


def test_the_two_person_rule_and_the_request_message_replaced_by_its_outcome(
    wf: Workflow, rig: Rig, chat: Recorder
) -> None:
    offer = risky_request(wf, BOB).offer
    assert offer is not None
    own = wf.press(BOB, "approve", offer.approval_id)
    assert own is not None and not own.ok and "two-person rule" in said(own)
    assert audits(rig, "approve") == [("slack:U0BOB", "refused")]
    assert rig.serving("www-b") == {"web2"}

    assert wf.press(CAROL, "approve", offer.approval_id) is None  # told in the channel, not to CAROL alone
    assert rig.serving("www-b") == {"web3"}
    (_, request_ref, _), *updates = chat.sent
    assert [(how, ref) for how, ref, _ in updates] == [("update", request_ref)] * 2
    running, outcome = (m.fallback for _, _, m in updates)
    assert running.startswith(":hourglass: Approved by <@U0CAROL>, running: www-b")
    assert outcome.startswith(":white_check_mark: Done (approved by <@U0CAROL>, asked by <@U0BOB>)")
    assert not any(m.buttons for _, _, m in updates)  # the Approve button is gone

    again = wf.decide(CAROL, offer.approval_id, "approved")
    assert again is not None and "Already approved by <@U0CAROL> (change on r1: done)" in said(again)
    assert rig.routers["r1"].applies == 1


def test_a_denial_changes_nothing_and_replaces_the_request(wf: Workflow, rig: Rig, chat: Recorder) -> None:
    offer = risky_request(wf).offer
    assert offer is not None
    assert wf.decide(BOB, offer.approval_id, "denied") is None
    (_, _, message) = chat.sent[-1]
    assert message.fallback.startswith(":no_entry_sign: Denied by <@U0BOB>: www-b") and "Nothing changed." in \
        message.fallback
    assert audits(rig, "deny") == [("slack:U0BOB", "denied")]
    assert rig.routers["r1"].applies == 0


def test_an_expired_request_runs_nothing(wf: Workflow, rig: Rig) -> None:
    offer = risky_request(wf).offer
    assert offer is not None
    rig.clock.advance(seconds=rig.inv.policy.approval_timeout + 1)
    answer = wf.decide(BOB, offer.approval_id, "approved")
    assert answer is not None and not answer.ok
    assert said(answer) == "This request has expired: nothing was changed. Ask again."
    assert rig.serving("www-b") == {"web2"}


def test_deciding_without_a_chat_answers_the_approver_with_the_outcome(rig: Rig) -> None:
    """The console has no channel to update: the approver is told the outcome directly."""
    plan = rig.engine.plan(MoveRequest("service", "www-b", "console:alice", "console", to_host="web3"))
    record = rig.store.create_approval(plan=plan.to_dict(), requester="console:alice",
                                       reasons=[r.text for r in plan.risks], expires_in=timedelta(hours=1))
    answer = workflow(rig, None).decide(BOB, record.id, "approved")
    assert answer is not None and answer.ok and said(answer).startswith(":white_check_mark: Done")
    assert rig.serving("www-b") == {"web3"}


# ---------------------------------------------------------------- maintenance


def test_maintenance_off(wf: Workflow, rig: Rig) -> None:
    answer = wf.maintenance(ALICE, MaintenanceCommand("web3", False))
    assert answer.ok and said(answer) == "web3 was not in maintenance"
    rig.store.set_maintenance("web3", by="slack:U0BOB")
    answer = wf.maintenance(ALICE, MaintenanceCommand("web3", False))
    assert said(answer) == "web3 is out of maintenance: checking it again"
    assert rig.store.maintenance() == {}
    assert audits(rig, "maintenance") == [("slack:U0ALICE", "off"), ("slack:U0ALICE", "off")]


def test_maintenance_on_drains_only_once_confirmed(wf: Workflow, rig: Rig) -> None:
    rig.health.mark("www-d", "web1", D)  # web1 fails for both its services: draining it rescues them
    offered = wf.maintenance(ALICE, MaintenanceCommand("web1", True, 3600.0, "kernel update"))
    assert offered.offer is not None and offered.offer.kind == "confirm"
    assert "Maintenance of *web1* drains it first:" in [getattr(p, "text", "") for p in offered.message.parts]
    (start, _) = offered.message.buttons
    assert (start.action, start.value) == ("maintenance", offered.offer.approval_id)
    assert rig.store.maintenance() == {} and rig.routers["r1"].applies == 0

    answer = wf.press(ALICE, start.action, start.value)
    assert answer is not None and answer.ok
    assert said(answer) == ":wrench: web1 is in maintenance for 1h (kernel update): no alerts, no moves to it."
    assert rig.serving("www-a") == {"web3"} and rig.serving("www-d") == {"web2"}
    record = rig.store.maintenance()["web1"]
    assert (record.by, record.reason) == ("slack:U0ALICE", "kernel update") and record.until is not None
    assert audits(rig, "maintenance") == [("slack:U0ALICE", "on")]


def test_maintenance_of_a_host_serving_nothing_starts_at_once(wf: Workflow, rig: Rig) -> None:
    answer = wf.maintenance(ALICE, MaintenanceCommand("web3", True))
    assert answer.ok and said(answer).startswith(":wrench: web3 is in maintenance until it is turned off")
    assert set(rig.store.maintenance()) == {"web3"} and rig.routers["r1"].applies == 0


def test_a_risky_drain_is_refused_and_maintenance_does_not_start(rig: Rig) -> None:
    cli = workflow(rig, None)
    answer = cli.maintenance(ALICE, MaintenanceCommand("web2", True, 3600.0))  # web2 serves www-b, healthy
    assert not answer.ok and said(answer).startswith("Refused: draining web2 is risky, so maintenance did not start")
    assert "moves www-b away from web2, which is healthy" in said(answer)
    assert rig.store.maintenance() == {} and rig.routers["r1"].applies == 0
    assert audits(rig, "maintenance") == [("slack:U0ALICE", "refused")]


def test_a_risky_drain_from_chat_does_not_start_maintenance_by_itself(wf: Workflow, rig: Rig) -> None:
    answer = wf.maintenance(ALICE, MaintenanceCommand("web2", True, 3600.0))
    assert "is in maintenance" not in said(answer)
    assert rig.store.maintenance() == {} and rig.routers["r1"].applies == 0


@pytest.mark.parametrize(("value", "problem"), [
    (encode(h="web3", d=5, r=""), "a maintenance window lasts from 1m to 168h"),
    (encode(h="web3", d=10**9, r=""), "a maintenance window lasts from 1m to 168h"),
    (encode(h="web3", d=3600, r="x" * 201), "the reason must be at most 200 printable characters"),
    (encode(h="web3", d=3600, r="ok\x1b[2J"), "the reason must be at most 200 printable characters"),
    (encode(h="web9", d=3600, r=""), "unknown host 'web9'"),
    (encode(h="<!channel>", d=3600, r=""), "unknown host by that name (known: web1, web2, web3)"),
    (encode(h="<@U123> & <#C123>", d=3600, r=""), "unknown host by that name"),
])
def test_a_forged_maintenance_button_is_checked_again(wf: Workflow, rig: Rig, value: str, problem: str) -> None:
    answer = wf.press(ALICE, "maintenance", value)
    assert answer is not None and not answer.ok and problem in said(answer)
    assert rig.store.maintenance() == {}


def test_a_maintenance_button_value_that_is_no_command_is_unknown(wf: Workflow, rig: Rig) -> None:
    for value in ("{", encode(h=["web3"], d=3600), encode(h="web3", d="1h")):
        answer = wf.press(ALICE, "maintenance", value)
        assert answer is not None and said(answer) == "This button is not one lasthop knows."
    assert rig.store.maintenance() == {}


# ---------------------------------------------------------------- alert buttons


def serving(rig: Rig) -> dict[str, str | None]:
    return {s: next(iter(rig.serving(s)), None) for s in rig.inv.services}


@dataclasses.dataclass
class Desk:
    """The IncidentDesk the serve daemon is, reduced to the real tracker and announcer over the rig's store."""

    rig: Rig
    chat: Recorder
    tracker: IncidentTracker
    announcer: Announcer

    @classmethod
    def over(cls, rig: Rig, chat: Recorder) -> Desk:
        tracker = IncidentTracker(rig.store, rig.inv, clock=ManualClock())
        announcer = Announcer(rig.inv, rig.store, chat, CHANNEL,
                              situation=lambda: Situation(rig.health.snapshot(), serving(rig)))
        desk = cls(rig, chat, tracker, announcer)
        rig.engine.observers.append(desk.moved)
        return desk

    def moved(self, outcome: Outcome, kind: str) -> None:  # as serve's _on_move
        for update in self.tracker.record_move(outcome, kind):
            self.announce(update)

    def health(self, service: str, host: str, new: Health) -> list[IncidentUpdate]:
        """A health transition, told as serve tells it."""
        old = self.rig.health.state.get((service, host), Health.INIT)
        self.rig.health.mark(service, host, new)
        updates = self.tracker.on_transition(Transition((service, host), old, new, 0.0, "test"),
                                             serving=serving(self.rig))
        for update in updates:
            self.announce(update)
        return updates

    # -- IncidentDesk
    def acknowledge(self, incident_id: int, by: str) -> tuple[IncidentUpdate | None, str]:
        return self.tracker.acknowledge(incident_id, by)

    def view(self, incident_id: int) -> iv.IncidentView | None:
        return self.tracker.view(incident_id)

    def announce(self, update: IncidentUpdate) -> None:
        self.announcer.incident(update)

    def after_move(self, incident_id: int) -> None:
        self.announcer.refresh(incident_id)

    def parent(self, incident_id: int) -> MessageRef | None:
        future = self.announcer.parent_of(incident_id)
        return future.result(timeout=10) if future is not None else None

    def buttons(self, incident_id: int) -> dict[str, tuple[str, str]]:
        """The parent message's buttons as it is now: label -> (action, value)."""
        message = self.announcer.message(incident_id)
        assert message is not None
        return {b.label: (b.action, b.value) for b in message.buttons}


@pytest.fixture
def desk(rig: Rig, chat: Recorder) -> Desk:
    return Desk.over(rig, chat)


@pytest.fixture
def alert(rig: Rig, chat: Recorder, desk: Desk) -> Workflow:
    return workflow(rig, chat, desk)


def opened(desk: Desk) -> int:
    """web1 fails for www-a (the rig has it DOWN; this is the transition that says so): the incident's id."""
    desk.rig.health.mark("www-a", "web1", Health.FALLING)
    (update,) = desk.health("www-a", "web1", D)
    assert update.kind == "opened"
    return update.incident_id


def press(wf: Workflow, actor: Actor, button: tuple[str, str]) -> Answer:
    answer = wf.press(actor, *button)
    assert answer is not None
    return answer


def test_a_tap_on_fail_over_runs_the_safe_rescue_at_once(alert: Workflow, desk: Desk, rig: Rig,
                                                          chat: Recorder) -> None:
    incident = opened(desk)
    buttons = desk.buttons(incident)
    answer = press(alert, ALICE, buttons["Fail over www-a to web3"])
    assert answer.ok and answer.replace and said(answer).startswith(":white_check_mark: Done")
    assert rig.serving("www-a") == {"web3"}
    parent = desk.parent(incident)
    lines = [m.fallback for how, ref, m in chat.sent if how == "post" and ref != parent]
    assert lines[-1].startswith("moved www-a web1 → web3 (<@U0ALICE>)")
    (how, ref, latest) = chat.sent[-1]
    assert (how, ref) == ("update", parent) and "*MITIGATED*" in latest.fallback
    assert "Fail over www-a to web3" not in desk.buttons(incident)


def test_a_second_tap_moves_nothing_and_says_it_was_already_done(alert: Workflow, desk: Desk, rig: Rig) -> None:
    incident = opened(desk)
    button = desk.buttons(incident)["Fail over www-a to web3"]
    press(alert, ALICE, button)
    again = press(alert, BOB, button)
    assert again.ok and said(again).startswith(":information_source: Already done: www-a web1 → web3 by <@U0ALICE>")
    assert rig.routers["r1"].applies == 1


def test_fail_over_all_moves_every_service_of_the_failed_host(alert: Workflow, desk: Desk, rig: Rig) -> None:
    incident = opened(desk)
    desk.health("www-d", "web1", D)
    answer = press(alert, ALICE, desk.buttons(incident)["Fail over all"])
    assert answer.ok, said(answer)
    assert rig.serving("www-a") == {"web3"} and rig.serving("www-d") == {"web2"}
    again = press(alert, ALICE, desk.buttons(incident).get("Fail over all", ("alert_failover_all",
                                                                              encode(i=incident, h=["web1"]))))
    assert said(again).startswith(":information_source:") and rig.routers["r1"].applies == 1


def test_a_tap_on_a_resolved_incident_says_what_happened_and_moves_nothing(
    alert: Workflow, desk: Desk, rig: Rig
) -> None:
    incident = opened(desk)
    button = desk.buttons(incident)["Fail over www-a to web3"]
    press(alert, ALICE, button)
    (resolved,) = desk.health("www-a", "web1", Health.UP)
    assert resolved.kind == "resolved"
    late = press(alert, BOB, button)
    assert not late.ok
    assert said(late).startswith("This incident is over: web1 was down, resolved after ")
    assert said(late).endswith("(www-a went to web3). Nothing moved now.")
    assert rig.routers["r1"].applies == 1


def test_a_tap_on_an_incident_resolved_before_any_move_says_nothing_was_moved(
    alert: Workflow, desk: Desk, rig: Rig
) -> None:
    incident = opened(desk)
    button = desk.buttons(incident)["Fail over www-a to web3"]
    desk.health("www-a", "web1", Health.UP)
    assert said(press(alert, ALICE, button)).endswith("(nothing was moved). Nothing moved now.")
    assert rig.serving("www-a") == {"web1"}


@pytest.mark.parametrize(("action", "value"), [
    ("alert_failover", "not json"),
    ("alert_failover", encode(i="1", s="www-a", h="web3")),
    ("alert_failover", encode(i=1, s="www-z", h="web3")),
    ("alert_failover", encode(i=1, s="www-a", h="web9")),
    ("alert_failover", encode(i=1, s="www-a")),
    ("alert_maintenance", encode(i=1, h="198.18.0.1")),
    ("alert_reboot", encode(i=1, s="www-a", h="web3")),
    ("format_disk", encode(i=1)),
])
def test_a_forged_or_unknown_button_is_refused(alert: Workflow, desk: Desk, rig: Rig, action: str,
                                               value: str) -> None:
    assert opened(desk) == 1
    answer = press(alert, ALICE, (action, value))
    assert not answer.ok and said(answer) == "This button is not one lasthop knows."
    assert rig.routers["r1"].applies == 0 and rig.store.maintenance() == {}


def test_a_button_of_an_unknown_incident_is_refused(alert: Workflow, desk: Desk, rig: Rig) -> None:
    opened(desk)
    answer = press(alert, ALICE, ("alert_failover", encode(i=999, s="www-a", h="web3")))
    assert not answer.ok and said(answer) == "This incident is no longer known."
    assert rig.routers["r1"].applies == 0


def test_acknowledge_records_the_first_person_and_tells_the_second_who_has_it(
    alert: Workflow, desk: Desk, rig: Rig, chat: Recorder
) -> None:
    incident = opened(desk)
    ack = desk.buttons(incident)["Acknowledge"]
    refused = press(alert, VIC, ack)
    assert not refused.ok and "not allowed to move services" in said(refused)

    first = press(alert, ALICE, ack)
    assert first.ok and said(first) == "You are on it: web1 is down. Reminders stop."
    assert any(m.fallback == "<@U0ALICE> is on it (acknowledged)" for how, _, m in chat.sent if how == "post")
    (how, _, parent) = chat.sent[-1]
    assert how == "update" and "acknowledged by <@U0ALICE>" in parent.fallback
    assert "Acknowledge" not in desk.buttons(incident)

    second = press(alert, BOB, ack)
    assert not second.ok and said(second) == "Already acknowledged by <@U0ALICE>."
    assert audits(rig, "acknowledge") == [("slack:U0VIC", "refused"), ("slack:U0ALICE", "ok")]


def test_failback_after_the_incident_goes_through_risk_and_needs_an_approver(
    alert: Workflow, desk: Desk, rig: Rig, chat: Recorder
) -> None:
    threads: list[MessageRef | None] = []
    chat.on_send = lambda how, ref, message, parent: threads.append(parent) if how == "post" else None
    incident = opened(desk)
    press(alert, ALICE, desk.buttons(incident)["Fail over www-a to web3"])
    desk.health("www-a", "web1", Health.UP)
    back = desk.buttons(incident)["Fail back www-a to web1"]

    answer = press(alert, ALICE, back)
    assert answer.offer is not None and answer.offer.kind == "approval"
    assert "asked in the incident's thread" in said(answer)
    assert "moves www-a away from web3, which is healthy" in said(answer)
    assert threads[-1] == desk.parent(incident)  # the approval request sits in the incident's thread
    assert rig.serving("www-a") == {"web3"}

    assert alert.decide(BOB, answer.offer.approval_id, "approved") is None
    assert rig.serving("www-a") == {"web1"}


def test_a_refused_tap_gives_its_key_back_so_a_later_tap_runs(alert: Workflow, desk: Desk, rig: Rig) -> None:
    incident = opened(desk)
    button = desk.buttons(incident)["Fail over www-a to web3"]
    vip = rig.inv.services["www-a"].vips[0]
    rig.hosts["web3"].vips.discard(vip)
    refused = press(alert, ALICE, button)
    assert not refused.ok and "web3 lacks 198.51.100.33 on its loopback" in said(refused)
    assert rig.serving("www-a") == {"web1"} and rig.routers["r1"].applies == 0

    rig.hosts["web3"].vips.add(vip)
    done = press(alert, ALICE, button)
    assert done.ok and rig.serving("www-a") == {"web3"}


def test_a_tap_whose_move_ran_never_runs_again(inv: Inventory, tmp_path: Path, chat: Recorder) -> None:
    """Same incident, same plan, same key: a retried delivery after the route was put back by hand."""
    no_drift = replace(inv, policy=replace(
        inv.policy, risky=replace(inv.policy.risky, drift=False)))
    rig = memory_rig(no_drift, tmp_path, HOME, {("www-a", "web1"): D})
    try:
        desk = Desk.over(rig, chat)
        wf = workflow(rig, chat, desk)
        incident = opened(desk)
        button = desk.buttons(incident)["Fail over www-a to web3"]
        assert press(wf, ALICE, button).ok
        rig.route("www-a", "web1")
        again = press(wf, ALICE, button)
        assert "already requested: change" in said(again) and "on r1 is done; not run again" in said(again)
        assert rig.serving("www-a") == {"web1"} and rig.routers["r1"].applies == 1
    finally:
        rig.close()


# ---------------------------------------------------------------- bugs found and mended


@pytest.mark.parametrize("hosts", [5, None, True])
def test_a_forged_fail_over_all_value_is_refused_not_a_crash(alert: Workflow, desk: Desk, rig: Rig,
                                                             hosts: object) -> None:
    incident = opened(desk)
    answer = press(alert, ALICE, ("alert_failover_all", encode(i=incident, h=hosts)))
    assert not answer.ok and rig.routers["r1"].applies == 0


def test_a_late_tap_tells_every_service_a_move_took(alert: Workflow, desk: Desk, rig: Rig) -> None:
    incident = opened(desk)
    desk.health("www-d", "web1", D)
    assert press(alert, ALICE, desk.buttons(incident)["Fail over all"]).ok
    desk.health("www-a", "web1", Health.UP)
    desk.health("www-d", "web1", Health.UP)
    late = press(alert, BOB, ("alert_failover", encode(i=incident, s="www-a", h="web3")))
    assert "www-a went to web3" in said(late) and "www-d went to web2" in said(late)


def test_a_late_tap_on_an_incident_of_two_hosts_says_they_were_down(alert: Workflow, desk: Desk) -> None:
    incident = opened(desk)
    desk.health("www-b", "web2", D)  # within the group window: the same incident
    desk.health("www-a", "web1", Health.UP)
    desk.health("www-b", "web2", Health.UP)
    late = press(alert, ALICE, ("alert_failover", encode(i=incident, s="www-a", h="web3")))
    assert said(late).startswith("This incident is over: web1 and web2 were down, resolved")


def test_a_second_fail_back_tap_does_not_claim_the_failover_as_done(alert: Workflow, desk: Desk, rig: Rig) -> None:
    incident = opened(desk)
    press(alert, ALICE, desk.buttons(incident)["Fail over www-a to web3"])
    desk.health("www-a", "web1", Health.UP)
    back = desk.buttons(incident)["Fail back www-a to web1"]
    offer = press(alert, ALICE, back).offer
    assert offer is not None and alert.decide(BOB, offer.approval_id, "approved") is None
    assert rig.serving("www-a") == {"web1"}
    again = press(alert, ALICE, back)  # the resolved parent still shows the button
    assert "www-a is already served by web1" in said(again)
    assert "web1 → web3" not in said(again)
