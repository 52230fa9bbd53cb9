"""handlers/context.py: Slack's roles (SlackAccess) and what every listener shares (SlackContext).

Roles are denied by default, limited to the configured channels (the alert channel always counts)
and nest (approver > operator > viewer). A role may name a Slack user group (S…): its members are
read with usergroups.users.list from the Slack stand-in, once per user, and kept for a while.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from support.slack_fakes import ALERTS, ALICE, BOB, ELSEWHERE, EVE, OPS, VIC, WAIT, FakeClient, Harness, harness
from support.slack_standin import SlackStandIn

from bot.access import Role
from bot.chat import Actor, Message
from bot.inventory import Inventory, Roles, SlackSettings
from handlers import context as context_module
from handlers.context import GROUP_CACHE_SECONDS, KEY, SlackAccess, context_of

ROLES_IN_ORDER: tuple[Role, ...] = ("viewer", "operator", "approver")
VIEW, MOVE, APPROVE = ("you are not allowed to view status", "you are not allowed to move services",
                       "you are not allowed to approve moves")
NOT_HERE = "lasthop does not take commands in this channel"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SlackStandIn() as s:
        yield s


def slack_user(user: str, channel: str = OPS) -> Actor:
    return Actor(user, "slack", channel)


def refusals(access: SlackAccess, actor: Actor) -> list[str | None]:
    """The refusal (or None) for each role, viewer to approver, without the advice in brackets."""
    return [None if r is None else r.split(" (")[0] for r in (access.refusal(actor, role) for role in ROLES_IN_ORDER)]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def monotonic(self) -> float:
        return self.now


# ---------------------------------------------------------------- roles without groups


def test_nothing_is_allowed_when_nothing_is_configured() -> None:
    access = SlackAccess(SlackSettings(), FakeClient())  # type: ignore[arg-type]
    for user in (ALICE, "*"):
        for channel in (OPS, ""):
            assert refusals(access, slack_user(user, channel)) == [NOT_HERE] * 3
    anywhere = SlackAccess(SlackSettings(channels=("*",)), FakeClient())  # type: ignore[arg-type]
    assert refusals(anywhere, slack_user(ALICE)) == [VIEW, MOVE, APPROVE]


@pytest.mark.parametrize(("user", "expected"), [
    (VIC, [None, MOVE, APPROVE]),
    (ALICE, [None, None, APPROVE]),  # an operator may view
    (BOB, [None, None, None]),  # an approver may operate and view
    (EVE, [VIEW, MOVE, APPROVE]),
])
def test_roles_nest(inv: Inventory, user: str, expected: list[str | None]) -> None:
    access = SlackAccess(inv.slack, FakeClient())  # type: ignore[arg-type]
    assert refusals(access, slack_user(user)) == expected
    assert [access.quick(slack_user(user), r) for r in ROLES_IN_ORDER] == [
        access.refusal(slack_user(user), r) for r in ROLES_IN_ORDER]  # no groups named: quick is the full check


@pytest.mark.parametrize(("channels", "channel", "allowed"), [
    ((OPS,), OPS, True),
    ((OPS,), ALERTS, True),  # the alert channel always counts: the approval buttons are posted there
    ((OPS,), ELSEWHERE, False),
    ((OPS,), "D0ALICE", False),  # a direct message is a channel too
    (("*",), ELSEWHERE, True),
    ((), ALERTS, True),
    ((), OPS, False),
])
def test_commands_are_taken_only_in_the_configured_channels(channels: tuple[str, ...], channel: str,
                                                            allowed: bool) -> None:
    settings = SlackSettings(alert_channel=ALERTS, channels=channels, roles=Roles(approvers=("*",)))
    access = SlackAccess(settings, FakeClient())  # type: ignore[arg-type]
    assert refusals(access, slack_user(ALICE, channel)) == ([None] * 3 if allowed else [NOT_HERE] * 3)


@pytest.mark.parametrize("backend", ["console", "cli", "auto"])
def test_only_slack_users_act_through_the_slack_app(backend: str) -> None:
    client = FakeClient()
    access = SlackAccess(SlackSettings(channels=("*",), roles=Roles(approvers=("*", "S0OPS"))), client)  # type: ignore[arg-type]
    for role in ROLES_IN_ORDER:
        assert access.refusal(Actor(ALICE, backend, OPS), role) == "only Slack users act through the Slack app"
    assert client.calls == []


# ---------------------------------------------------------------- user groups


def group_access(standin: SlackStandIn, **roles: tuple[str, ...]) -> SlackAccess:
    settings = SlackSettings(alert_channel=ALERTS, channels=(OPS,), roles=Roles(**roles))
    return SlackAccess(settings, WebClient(token=standin.bot_token, base_url=standin.api_url, timeout=10))


def group_calls(standin: SlackStandIn) -> list[str]:
    return sorted(str(c.args.get("usergroup")) for c in standin.calls_to("usergroups.users.list"))


def test_a_role_may_name_a_user_group_and_each_users_groups_are_read_once(standin: SlackStandIn) -> None:
    standin.usergroups.update({"S0OPS": [ALICE], "S0BOSS": [BOB]})
    access = group_access(standin, viewers=(VIC,), operators=("S0OPS",), approvers=("S0BOSS",))
    assert refusals(access, slack_user(ALICE)) == [None, None, APPROVE]
    assert group_calls(standin) == ["S0BOSS", "S0OPS"]  # each group named in a role, once
    assert refusals(access, slack_user(ALICE, ALERTS)) == [None, None, APPROVE]
    assert group_calls(standin) == ["S0BOSS", "S0OPS"]  # remembered: no more calls for alice
    assert refusals(access, slack_user(BOB)) == [None, None, None]
    assert refusals(access, slack_user(EVE)) == [VIEW, MOVE, APPROVE]
    assert group_calls(standin) == ["S0BOSS", "S0BOSS", "S0BOSS", "S0OPS", "S0OPS", "S0OPS"]
    assert refusals(access, slack_user(VIC)) == [None, MOVE, APPROVE]  # a user named directly still counts


def test_group_membership_is_read_again_after_the_cache_time(standin: SlackStandIn,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(context_module, "time", clock)
    standin.usergroups["S0OPS"] = [ALICE]
    access = group_access(standin, operators=("S0OPS",))
    assert access.refusal(slack_user(ALICE), "operator") is None
    standin.usergroups["S0OPS"] = []  # alice leaves the group
    clock.now += GROUP_CACHE_SECONDS - 1
    assert access.refusal(slack_user(ALICE), "operator") is None  # still as read
    assert len(group_calls(standin)) == 1
    clock.now += 2
    assert (access.refusal(slack_user(ALICE), "operator") or "").startswith(MOVE)
    assert len(group_calls(standin)) == 2


def test_quick_defers_to_the_full_check_when_a_role_names_a_group(standin: SlackStandIn) -> None:
    standin.usergroups["S0OPS"] = [ALICE]
    access = group_access(standin, operators=("S0OPS",))
    # quick() runs before the ack, so it never calls Slack: with a group named, it cannot decide.
    assert access.quick(slack_user(EVE, ELSEWHERE), "operator") is None
    assert standin.calls_to("usergroups.users.list") == []
    assert access.refusal(slack_user(EVE, ELSEWHERE), "operator") == NOT_HERE
    assert (access.refusal(slack_user(EVE), "operator") or "").startswith(MOVE)


def test_an_unreadable_group_grants_nothing_and_the_others_still_count(standin: SlackStandIn) -> None:
    standin.usergroups["S0OPS"] = [ALICE]  # S0GONE is named in a role but Slack knows no such group
    access = group_access(standin, viewers=("S0GONE",), operators=("S0OPS",))
    assert refusals(access, slack_user(ALICE)) == [None, None, APPROVE]
    assert refusals(access, slack_user(BOB)) == [VIEW, MOVE, APPROVE]
    gone = [c for c in standin.calls_to("usergroups.users.list") if c.args["usergroup"] == "S0GONE"]
    assert gone and all(c.response["error"] == "no_such_subteam" for c in gone)


def test_a_failed_group_lookup_is_not_remembered(standin: SlackStandIn) -> None:
    standin.usergroups["S0OPS"] = [ALICE]
    access = group_access(standin, operators=("S0OPS",))
    standin.rate_limit("usergroups.users.list", times=1, retry_after=0)  # this client retries nothing
    assert (access.refusal(slack_user(ALICE), "operator") or "").startswith(MOVE)  # cannot tell: refused
    assert access.refusal(slack_user(ALICE), "operator") is None  # Slack answers again: so is she


# ---------------------------------------------------------------- SlackContext


def test_the_context_is_found_where_the_middleware_puts_it(h: Harness, inv: Inventory) -> None:
    assert context_of({KEY: h.ctx}) is h.ctx
    assert h.ctx.names == inv.slack.commands
    with pytest.raises(KeyError):
        context_of({})
    with pytest.raises(AssertionError):
        context_of({KEY: object()})


def test_work_runs_after_the_caller_returns_and_a_failure_is_logged(h: Harness,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caller = threading.get_ident()
    ran = h.ctx.submit(threading.get_ident)
    assert ran.result(WAIT) != caller

    def fail() -> None:
        raise RuntimeError("router unreachable")

    with caplog.at_level(logging.ERROR, logger="lasthop.slack"):
        failed = h.ctx.submit(fail)
        assert isinstance(failed.exception(WAIT), RuntimeError)
    assert [r.getMessage() for r in caplog.records] == ["Slack background work failed"]
    assert caplog.records[0].exc_info is not None


def test_close_lets_running_work_finish_then_stops_the_poster(inv: Inventory) -> None:
    gate, done = threading.Event(), threading.Event()

    def work() -> None:
        gate.wait(WAIT)
        done.set()

    with harness(inv) as h:
        h.ctx.submit(work)
        closer = threading.Thread(target=h.ctx.close)
        closer.start()
        assert not done.is_set()
        gate.set()
        closer.join(WAIT)
        assert not closer.is_alive() and done.is_set()  # close() returned only after the work ended
        refused = h.ctx.poster.post(OPS, Message.of("after close"))
        assert isinstance(refused.exception(WAIT), RuntimeError)


def test_work_after_an_ack_waits_for_the_requests_being_answered_then_runs(inv: Inventory) -> None:
    """Acks first: fifty commands at once all get their ack before any of their work competes with
    the acks; the wait is bounded, so a steady stream of requests only delays the work."""
    from bot.web import Activity

    activity = Activity()
    with harness(inv) as h:
        h.ctx.activity = activity
        started = threading.Event()
        with activity.request():  # a request still being answered
            ran = h.ctx.submit(started.set)
            assert not started.wait(0.05)
        assert ran.exception(WAIT) is None and started.is_set()
        # Never quiet: the work runs anyway once ACK_FIRST_WAIT has passed.
        with activity.request():
            late = h.ctx.submit(lambda: "done")
            assert late.result(context_module.ACK_FIRST_WAIT + WAIT) == "done"
