"""handlers/commands.py: slash commands are parsed, acknowledged at once and answered through the workflow.

The listener is called as Bolt calls it, with recorders for ack/respond/client and a stub
workflow (tests/support/slack_fakes.py); the roles are the inventory's, checked by the real
SlackAccess. The workflow's own behaviour is tested in tests/bot/test_workflow.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.slack_fakes import ALERTS, ALICE, BOB, ELSEWHERE, EVE, OPS, ROLES, VIC, Harness, harness
from support.slack_standin import slash_command_payload

from bot.chat import Actor, Message
from bot.commands import FailoverCommand, MaintenanceCommand, help_text
from bot.inventory import Inventory
from handlers import blocks, forms
from handlers.commands import on_command


def slash(h: Harness, command: str, text: str, *, user: str = ALICE, channel: str = OPS) -> None:
    """The command as Slack sends it, handed to the listener as Bolt would."""
    body = slash_command_payload(command, text, user_id=user, channel_id=channel,
                                 response_url="https://hooks.slack.invalid/commands/1", trigger_id="T.42")
    on_command(ack=h.ack, command=body, respond=h.respond, client=h.client, context=h.context)  # type: ignore[arg-type]


def nothing_ran(h: Harness) -> None:
    assert h.executor.futures == [] and h.workflow.calls == [] and h.respond.calls == [] and h.client.calls == []


# ---------------------------------------------------------------- usage and help


@pytest.mark.parametrize(
    ("command", "text", "error", "topic"),
    [
        ("/lasthop", "frobnicate", "'frobnicate' is not a lasthop command", None),
        ("/lasthop", "help me now", "help takes one topic at most", None),
        ("/failover", "www-a to", "'to' needs a host name after it", "failover"),
        ("/lasthop", "failover to web2", "failover needs a service, prefix or host first", "failover"),
        ("/lasthop", "maintenance web3 on 90", "a duration needs a unit", "maintenance"),
        ("/lasthop", 'maintenance web3 on "kernel', "the reason goes last", "maintenance"),
        ("/vip-status", "www-a web1", "status takes at most one name", "status"),
    ],
)
def test_a_usage_error_is_acked_with_the_error_and_the_topics_help_and_nothing_runs(
        h: Harness, command: str, text: str, error: str, topic: str | None) -> None:
    slash(h, command, text)
    [acked] = h.ack.texts
    first, _, rest = acked.partition("\n")
    assert first.startswith(error)
    assert rest == help_text(h.ctx.names, topic)
    nothing_ran(h)


@pytest.mark.parametrize(
    ("command", "text", "topic"),
    [
        ("/lasthop", "", None),
        ("/lasthop", "help", None),
        ("/lasthop", "help failover", "failover"),
        ("/lasthop", "maintenance help", "maintenance"),
        ("/failover", "help", "failover"),
        ("/vip-status", "HELP", "status"),
    ],
)
def test_help_is_acked_and_nothing_runs(h: Harness, command: str, text: str, topic: str | None) -> None:
    slash(h, command, text, user=EVE, channel=ELSEWHERE)  # help needs no role, in any channel
    assert h.ack.texts == [help_text(h.ctx.names, topic)]
    nothing_ran(h)


# ---------------------------------------------------------------- refusals before the work


@pytest.mark.parametrize(
    ("command", "text", "user", "channel", "action", "target", "reason"),
    [
        ("/failover", "www-a to web2", EVE, OPS, "failover", "www-a", "you are not allowed to move services"),
        ("/failover", "www-a", VIC, OPS, "failover", "www-a", "you are not allowed to move services"),
        ("/failover", "", EVE, OPS, "failover", "", "you are not allowed to move services"),
        ("/vip-status", "", EVE, OPS, "status", "", "you are not allowed to view status"),
        ("/lasthop", "status web1", ALICE, ELSEWHERE, "status", "web1",
         "lasthop does not take commands in this channel"),
        ("/lasthop", "maintenance web3 off", VIC, OPS, "maintenance", "web3", "you are not allowed to move services"),
    ],
)
def test_a_quick_role_refusal_is_acked_and_audited_and_nothing_else_runs(
        h: Harness, command: str, text: str, user: str, channel: str, action: str, target: str, reason: str) -> None:
    slash(h, command, text, user=user, channel=channel)
    [acked] = h.ack.texts
    assert acked.startswith(reason)
    h.drain()
    [audit] = h.workflow.calls
    assert audit.method == "audit_refusal"
    assert audit.args == (Actor(user, "slack", channel), action, target, acked)
    assert h.respond.calls == [] and h.client.calls == []  # no form, no answer beyond the ack


@pytest.mark.parametrize(("command", "text", "user", "channel"), [
    ("/vip-status", "", VIC, OPS),  # a viewer may view
    ("/vip-status", "", BOB, ALERTS),  # an approver may view too, and the alert channel always counts
    ("/failover", "www-a", BOB, OPS),  # an approver may operate
])
def test_a_permitted_person_is_not_refused(h: Harness, command: str, text: str, user: str, channel: str) -> None:
    slash(h, command, text, user=user, channel=channel)
    h.drain()
    assert [c.method for c in h.workflow.calls] in (["status"], ["request"])
    assert h.workflow.calls[0].args[0] == Actor(user, "slack", channel)


# ---------------------------------------------------------------- the form


@pytest.mark.parametrize(("command", "text"), [("/failover", ""), ("/failover", "   "), ("/lasthop", "failover")])
def test_failover_with_no_words_opens_the_form(h: Harness, command: str, text: str) -> None:
    slash(h, command, text)
    assert h.ack.calls == [((), {})]  # a bare ack: the form is the answer
    assert h.client.calls == [("views_open", {"trigger_id": "T.42", "view": forms.failover_form(h.ctx.workflow.inv,
                                                                                                  OPS)})]
    assert json.loads(h.client.calls[0][1]["view"]["private_metadata"]) == {"channel": OPS}
    assert h.workflow.calls == [] and h.executor.futures == [] and h.respond.calls == []


# ---------------------------------------------------------------- the work, after the ack


@pytest.mark.parametrize(
    ("command", "text", "working", "method", "args"),
    [
        ("/vip-status", "", "Reading the routers…", "status", (None,)),
        ("/lasthop", "status web1", "Reading the routers…", "status", ("web1",)),
        ("/failover", "www-a to web2", "Planning…", "request", (FailoverCommand("www-a", "web2"),)),
        ("/lasthop", "failover 198.51.100.32/27 dry-run", "Planning…", "request",
         (FailoverCommand("198.51.100.32/27", None, True),)),
        ("/lasthop", "maintenance web3 off", "Working…", "maintenance", (MaintenanceCommand("web3", False),)),
    ],
)
def test_a_valid_command_is_acked_at_once_and_the_answer_replaces_the_working_note(
        inv: Inventory, command: str, text: str, working: str, method: str, args: tuple[Any, ...]) -> None:
    with harness(inv, gate=threading.Event()) as h:
        slash(h, command, text)
        # The listener returned with the work still held at the gate: the ack did not wait for it.
        assert h.ack.texts == [working]
        assert not h.workflow.finished.is_set() and h.respond.calls == []
        assert h.workflow.gate is not None
        h.workflow.gate.set()
        h.drain()
    [call] = h.workflow.calls
    assert (call.method, call.args[0], call.args[1:]) == (method, Actor(ALICE, "slack", OPS), args)
    assert h.workflow.answer is not None
    assert h.respond.kwargs == [blocks.reply(h.workflow.answer.message, replace=True)]
    assert h.respond.kwargs[0]["replace_original"] is True and h.respond.kwargs[0]["text"] == "the answer"


@pytest.mark.parametrize("quote", ['"', "“"])
def test_maintenance_with_a_duration_and_a_reason_reaches_the_workflow_parsed(h: Harness, quote: str) -> None:
    close = '"' if quote == '"' else "”"  # a phone's curly quotes
    slash(h, "/lasthop", f"maintenance web3 on 2h {quote}kernel update{close}")
    h.drain()
    [call] = h.workflow.called("maintenance")
    assert call.args == (Actor(ALICE, "slack", OPS), MaintenanceCommand("web3", True, 7200.0, "kernel update"))
    assert callable(call.kwargs["progress"])
    assert h.ack.texts == ["Working…"]


def test_progress_replaces_the_note_before_the_answer_does(inv: Inventory) -> None:
    with harness(inv, progress=Message.of(":hourglass: Moving… (www-a)")) as h:
        slash(h, "/failover", "www-a to web2")
        h.drain()
    assert [k["text"] for k in h.respond.kwargs] == [":hourglass: Moving… (www-a)", "the answer"]
    assert all(k["replace_original"] is True and k["response_type"] == "ephemeral" for k in h.respond.kwargs)


def test_custom_command_names_from_the_inventory_are_understood(tmp_path: Path) -> None:
    names = "  commands: {umbrella: /lh, failover: /move, status: /vips}\n"
    inv = inventory_from_text(tmp_path, THREE_HOSTS + ROLES + names)
    with harness(inv) as h:
        slash(h, "/move", "www-a to web3")
        slash(h, "/vips", "web2")
        slash(h, "/lh", "maintenance web1 on 30m")
        slash(h, "/failover", "www-a")  # the default name is not one of this app's commands
        h.drain()
    assert [(c.method, c.args[1]) for c in h.workflow.calls] == [
        ("request", FailoverCommand("www-a", "web3")), ("status", "web2"),
        ("maintenance", MaintenanceCommand("web1", True, 1800.0))]
    assert h.ack.texts[3].startswith("'/failover' is not a lasthop command")


# ---------------------------------------------------------------- nothing typed is echoed


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("/lasthop", "<!channel>"),
        ("/lasthop", "help <!here>"),
        ("/lasthop", "status <@U0BOB>"),
        ("/failover", "<!channel> to web2"),
        ("/failover", "www-a to <!everyone>"),
        ("/failover", "www-a <https://evil.example|click>"),
        ("/vip-status", "<!subteam^S0OPS>"),
        ("/lasthop", "maintenance <!channel> on"),
        ("/lasthop", 'maintenance web3 on <!channel> "x"'),
    ],
)
def test_slack_markup_typed_by_a_person_is_never_echoed(h: Harness, command: str, text: str) -> None:
    slash(h, command, text)
    h.drain()
    said = json.dumps([h.ack.calls, h.respond.calls])
    assert h.ack.calls and "<!" not in said and "<@" not in said and "<http" not in said
    assert h.workflow.calls == []  # all of them are usage errors


def test_markup_in_a_maintenance_reason_goes_to_the_workflow_as_typed_and_is_not_echoed(h: Harness) -> None:
    slash(h, "/lasthop", 'maintenance web3 on "<!channel> look"')
    h.drain()
    [call] = h.workflow.called("maintenance")
    assert call.args[1].reason == "<!channel> look"  # the workflow escapes it wherever it shows it
    assert "<!channel>" not in json.dumps([h.ack.calls, h.respond.calls])


# ---------------------------------------------------------------- when the work fails


def test_work_that_fails_still_answers_the_person(inv: Inventory) -> None:
    with harness(inv, error=RuntimeError("database is locked")) as h:
        slash(h, "/failover", "www-a to web2")
        h.settle()
    assert h.ack.texts == ["Planning…"]
    assert len(h.respond.calls) == 1 and h.respond.kwargs[0]["replace_original"] is True
    assert "database is locked" not in h.respond.kwargs[0]["text"]  # said plainly, not as a traceback
