"""handlers/actions.py: every lasthop button (action_id `lh.<action>.<n>`) goes to the workflow's press().

A click is acknowledged at once; the answer replaces the clicked message only when that message
is ephemeral (only the clicker sees it) and the answer says so: an alert or an approval request in
a channel is the workflow's to update, and the clicker gets a private answer instead.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from support.slack_fakes import ALERTS, BOB, OPS, Harness, harness
from support.slack_standin import block_action_payload

from bot.chat import Actor, Answer, Message, MessageRef
from bot.inventory import Inventory
from handlers import blocks
from handlers.actions import ACTIONS, clicked, on_action

TS = "1700000000.000500"


def click(h: Harness, action_id: str, value: str, *, user: str = BOB, channel: str = ALERTS,
          ephemeral: bool = False) -> None:
    body = block_action_payload(action_id, value, user_id=user, channel_id=channel, message_ts=TS,
                                response_url="https://hooks.slack.invalid/actions/1", is_ephemeral=ephemeral)
    on_action(ack=h.ack, body=body, respond=h.respond, context=h.context)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action_id", "action", "value"),
    [
        ("lh.approve.0", "approve", "apr-1"),
        ("lh.deny.1", "deny", "apr-1"),
        ("lh.confirm.0", "confirm", "apr-2"),
        ("lh.alert_failover.3", "alert_failover", '{"h":"web2","i":7,"s":"www-a"}'),
        ("lh.alert_failover_all.12", "alert_failover_all", '{"h":["web1"],"i":7}'),
        ("lh.post_status.0", "post_status", "all"),
    ],
)
def test_a_click_goes_to_press_with_the_clicker_the_value_and_the_clicked_message(
        h: Harness, action_id: str, action: str, value: str) -> None:
    click(h, action_id, value)
    h.drain()
    [call] = h.workflow.calls
    assert call.method == "press"
    assert call.args == (Actor(BOB, "slack", ALERTS), action, value)
    assert call.kwargs["clicked"] == MessageRef(ALERTS, TS)
    assert callable(call.kwargs["progress"])


def test_the_ack_comes_before_the_work(inv: Inventory) -> None:
    with harness(inv, gate=threading.Event()) as h:
        click(h, "lh.approve.0", "apr-1")
        assert h.ack.calls == [((), {})]  # a bare ack, with the work still held at the gate
        assert not h.workflow.finished.is_set() and h.respond.calls == []
        assert h.workflow.gate is not None
        h.workflow.gate.set()
        h.drain()
    assert len(h.respond.calls) == 1


@pytest.mark.parametrize(("ephemeral", "replace", "replaced"), [
    (True, True, True),  # a plan only the clicker sees becomes its outcome
    (True, False, False),  # e.g. a refusal: the plan stays, to be clicked again by someone allowed
    (False, True, False),  # a channel message is never replaced through the clicker's response_url
    (False, False, False),
])
def test_an_answer_replaces_the_clicked_message_only_when_it_is_ephemeral_and_the_answer_says_so(
        inv: Inventory, ephemeral: bool, replace: bool, replaced: bool) -> None:
    answer = Answer(Message.of("Done: www-a is on web2"), replace=replace)
    with harness(inv, answer=answer) as h:
        click(h, "lh.confirm.0", "apr-2", channel=OPS, ephemeral=ephemeral)
        h.drain()
    assert h.respond.kwargs == [blocks.reply(answer.message, replace=replaced)]
    assert h.respond.kwargs[0]["response_type"] == "ephemeral"


@pytest.mark.parametrize("ephemeral", [True, False])
def test_progress_replaces_only_an_ephemeral_message(inv: Inventory, ephemeral: bool) -> None:
    with harness(inv, progress=Message.of(":hourglass: Moving…")) as h:
        click(h, "lh.alert_failover.0", '{"h":"web2","i":7,"s":"www-a"}', ephemeral=ephemeral)
        h.drain()
    assert [(k["text"], k["replace_original"]) for k in h.respond.kwargs] == [
        (":hourglass: Moving…", ephemeral), ("the answer", ephemeral)]


def test_no_answer_means_nothing_is_sent(inv: Inventory) -> None:
    """An approval's outcome replaces the request message in the channel; the approver gets nothing more."""
    with harness(inv, answer=None) as h:
        click(h, "lh.approve.0", "apr-1")
        h.drain()
    assert len(h.workflow.called("press")) == 1 and h.respond.calls == []


def test_dismiss_deletes_the_original_and_runs_nothing(h: Harness) -> None:
    click(h, "lh.dismiss.1", "", channel=OPS, ephemeral=True)
    h.drain()
    assert h.respond.calls == [((), {"delete_original": True})]
    assert h.workflow.calls == []


def test_the_clicked_message_is_found_in_the_payload() -> None:
    body: dict[str, Any] = block_action_payload("lh.confirm.0", "x", user_id=BOB, channel_id=OPS, message_ts=TS,
                                                response_url="https://hooks.slack.invalid/1", is_ephemeral=True)
    assert clicked(body) == (MessageRef(OPS, TS), True)
    del body["channel"], body["message"]  # an ephemeral message's payload may carry only the container
    assert clicked(body) == (MessageRef(OPS, TS), True)
    body["container"] = {"type": "message", "channel_id": ALERTS}
    body["message"] = {"ts": "1700000000.000700"}
    assert clicked(body) == (MessageRef(ALERTS, "1700000000.000700"), False)


@pytest.mark.parametrize(("action_id", "routed"), [
    ("lh.confirm.0", True), ("lh.alert_failover_all.24", True),
    ("confirm", False), ("lh.confirm", False), ("lh.Confirm.0", False), ("lh.confirm.x", False),
    ("xlh.confirm.0", False), ("lh.confirm.0.1", False), ("lh..0", False),
])
def test_only_lasthops_action_ids_reach_the_listener(action_id: str, routed: bool) -> None:
    assert bool(ACTIONS.match(action_id)) is routed
    assert (blocks.action_of(action_id) is not None) is routed  # what the listener routes, it can parse


def test_a_click_whose_work_fails_still_answers_the_clicker(inv: Inventory) -> None:
    with harness(inv, error=RuntimeError("database is locked")) as h:
        click(h, "lh.confirm.0", "apr-2", channel=OPS, ephemeral=True)
        h.settle()
    assert len(h.respond.calls) == 1
