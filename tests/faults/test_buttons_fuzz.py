"""Fault suite: every button, pressed by anyone, in any order: no move runs without its role.

Sequences of requests and button presses from five people (an operator, two approvers, a viewer
and someone no role names), on whatever approval ids are about, forged ones included, through
the workflow every front end shares, over memory devices and the real access rules. After each
step the state store is checked against the roles: every change was asked for by an operator;
a risky change ran on an approver's click who is not its requester; a safe one on its requester's
confirmation; a denial came from the requester or an approver; a maintenance from an operator.
Anything else counts as an unauthorised move in the figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.ledger import Tally
from support.memory import Rig, memory_rig

from bot.access import Role, Who, refusal
from bot.chat import Actor, Answer, Recorder
from bot.commands import FailoverCommand, MaintenanceCommand
from bot.health.state import Health
from bot.inventory import SlackSettings
from bot.workflow import Workflow

LEDGER_GROUP = "buttons"
EXAMPLES = 400  # sequences; each has up to STEPS steps
STEPS = 8
CHANNEL = "C0ALERTS"
INVENTORY = THREE_HOSTS + f"""
slack:
  alert_channel: {CHANNEL}
  channels: [{CHANNEL}]
  roles:
    viewers: [U0VIC]
    operators: [U0ALICE]
    approvers: [U0BOB, U0CAROL]
"""
HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
PEOPLE = [Actor(u, "slack", CHANNEL) for u in ("U0ALICE", "U0BOB", "U0CAROL", "U0VIC", "U0EVE")]
OUTSIDER = Actor("U0ALICE", "slack", "C0ELSEWHERE")  # an operator, in a channel lasthop does not serve
BUTTONS = ["confirm", "approve", "deny", "cancel", "maintenance", "dismiss", "post_status", "alert_failover"]


@dataclass
class SlackRoles:
    settings: SlackSettings

    def refusal(self, actor: Actor, role: Role) -> str | None:
        return refusal(self.settings, Who(actor.id, actor.channel), role)


@dataclass
class Game:
    rig: Rig
    workflow: Workflow
    roles: SlackRoles
    approvals: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)  # changes already judged: what allowed them cannot change

    def has(self, ref: str, role: Role) -> bool:
        actor = Actor.from_ref(ref)
        return self.roles.refusal(Actor(actor.id, actor.backend, CHANNEL), role) is None

    def violations(self, touched: list[str]) -> list[str]:
        """What the store holds that the roles do not allow: new changes, the approvals a step touched."""
        found: list[str] = []
        for c in self.rig.store.recent_changes(limit=20):
            if c.id in self.checked:
                continue
            self.checked.add(c.id)
            if not self.has(c.requested_by, "operator"):
                found.append(f"change {c.id[:8]} asked for by {c.requested_by}")
            # A change's key is its request's: the approval id, then the router.
            key = c.idempotency_key.rsplit(":", 1)[0] if c.idempotency_key else None
            record = self.rig.store.get_approval(key) if key else None
            if record is None:
                continue
            by = record.decided_by
            if record.reasons and (not self.has(by, "approver") or by == record.requester):
                found.append(f"risky change {c.id[:8]} let run by {record.decided_by} for {record.requester}")
            if not record.reasons and record.decided_by != record.requester:
                found.append(f"safe change {c.id[:8]} confirmed by {record.decided_by} for {record.requester}")
        for a in filter(None, map(self.rig.store.get_approval, touched)):
            if a.status == "denied" and a.decided_by != a.requester and not self.has(a.decided_by, "approver"):
                found.append(f"approval {a.id[:8]} denied by {a.decided_by}")
            # Let through, whether or not the move then passed its pre-check:
            if a.status == "approved" and a.reasons and (a.decided_by == a.requester
                                                         or not self.has(a.decided_by, "approver")):
                found.append(f"risky request {a.id[:8]} approved by {a.decided_by} for {a.requester}")
            if a.status == "approved" and not a.reasons and a.decided_by != a.requester:
                found.append(f"safe request {a.id[:8]} confirmed by {a.decided_by} for {a.requester}")
        for host, m in self.rig.store.maintenance().items():
            if not self.has(m.by, "operator"):
                found.append(f"maintenance of {host} by {m.by}")
        return found


@pytest.fixture(scope="module")
def game(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Game]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-buttons")
    inv = inventory_from_text(tmp, INVENTORY)
    rig = memory_rig(inv, tmp, HOME, {("www-a", "web1"): Health.DOWN})
    roles = SlackRoles(inv.slack)
    wf = Workflow(inv, rig.engine, rig.store, access=roles, out=Recorder(), alert_channel=CHANNEL)
    yield Game(rig, wf, roles)
    rig.close()


ACTOR = st.sampled_from([*PEOPLE, OUTSIDER])
REQUEST = st.tuples(st.just("request"), ACTOR, st.sampled_from(["www-a", "www-a", "www-b", "www-d", "web1", "web2"]),
                    st.sampled_from([None, "web1", "web2", "web3"]))
PICK = st.one_of(st.integers(0, 20), st.sampled_from(["apr-forged", "", "x" * 80]))
PRESS = st.tuples(st.just("press"), ACTOR, st.sampled_from(BUTTONS), PICK)
# Someone presses a button of the newest request: approvals get decided often, by the wrong people too.
NEXT = st.tuples(st.just("press"), ACTOR, st.sampled_from(["confirm", "approve", "deny", "cancel"]), st.just(0))
MAINTAIN = st.tuples(st.just("maintain"), ACTOR, st.sampled_from(["web1", "web2", "web3"]), st.booleans())
STEP = st.one_of(REQUEST, NEXT, REQUEST, NEXT, PRESS, MAINTAIN)


def _value(game: Game, pick: object) -> str:
    """A recent approval id (the newest ones most), or the forged text itself."""
    if isinstance(pick, str) or not game.approvals:
        return str(pick)
    return game.approvals[-1 - pick % len(game.approvals)]


def _step(game: Game, step: tuple[object, ...]) -> Answer | None:
    wf = game.workflow
    match step:
        case ("request", Actor() as actor, str(target), to):
            return wf.request(actor, FailoverCommand(target, to if isinstance(to, str) else None))
        case ("press", Actor() as actor, str(button), pick):
            return wf.press(actor, button, _value(game, pick))
        case ("maintain", Actor() as actor, str(host), bool(on)):
            return wf.maintenance(actor, MaintenanceCommand(host, on, 600.0, "fuzz"), confirmed=True)
    raise AssertionError(step)


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=STEPS))
def test_no_button_runs_a_move_for_someone_without_the_role(game: Game, tally: Tally,
                                                            steps: list[tuple[object, ...]]) -> None:
    for step in steps:
        tally.run()
        answer = _step(game, step)
        touched = [_value(game, step[3])] if step[0] == "press" else []
        if answer is not None and answer.offer is not None:
            game.approvals.append(answer.offer.approval_id)
            touched.append(answer.offer.approval_id)
        found = game.violations(touched)
        tally.unauthorised = max(tally.unauthorised, len(found))
        assert found == [], (step, found)
    for host in game.rig.inv.hosts:  # each sequence starts where the first did, so moves stay possible
        game.rig.store.clear_maintenance(host)
    for service, host in HOME.items():
        game.rig.route(service, host)
