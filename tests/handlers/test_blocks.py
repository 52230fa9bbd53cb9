"""handlers/blocks.py: lasthop's chat-neutral messages as Block Kit that Slack accepts.

`check_block_kit` states the limits Slack enforces on what lasthop sends (api.slack.com/reference/
block-kit): at most 50 blocks; section and context text 1..3000; at most 25 elements in an actions
block; a button's label 1..75, value at most 2000, action_id 1..255 and unique in the message; a
confirm dialog's title 100, text 300, buttons 30. Every rendering here passes it.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from bot.chat import Button, Buttons, Code, Confirm, Message, Note, Part, Text
from bot.engine.model import MoveRequest, Plan, PlannedMove, RiskReason
from bot.views import approval_message, confirm_message
from handlers import blocks
from handlers.actions import ACTIONS

# Every action a lasthop button carries (bot/views.py, bot/workflow.py): each must survive the round trip.
KNOWN_ACTIONS = ("confirm", "cancel", "approve", "deny", "maintenance", "dismiss", "post_status", "alert_ack",
                 "alert_failover", "alert_failover_all", "alert_maintenance", "alert_failback")


def check_block_kit(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) <= 50
    action_ids = []
    for block in rendered:
        kind = block["type"]
        if kind == "section":
            assert block["text"]["type"] == "mrkdwn" and 1 <= len(block["text"]["text"]) <= 3000
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(e["type"] == "mrkdwn" and 1 <= len(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for e in block["elements"]:
                assert e["type"] == "button" and e["text"]["type"] == "plain_text"
                assert 1 <= len(e["text"]["text"]) <= 75 and len(e["value"]) <= 2000
                assert 1 <= len(e["action_id"]) <= 255 and e.get("style", "primary") in ("primary", "danger")
                action_ids.append(e["action_id"])
                if "confirm" in e:
                    c = e["confirm"]
                    assert 1 <= len(c["title"]["text"]) <= 100 and 1 <= len(c["text"]["text"]) <= 300
                    assert 1 <= len(c["confirm"]["text"]) <= 30 and 1 <= len(c["deny"]["text"]) <= 30
        else:
            raise AssertionError(f"lasthop renders no {kind} blocks")
    assert len(action_ids) == len(set(action_ids)), f"action_ids repeat: {action_ids}"


def render(*parts: Part, fallback: str = "fallback") -> list[dict[str, Any]]:
    out = blocks.render(Message(fallback, parts))
    check_block_kit(out)
    return out


def texts(rendered: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in rendered if b["type"] == "section"]


def plan(risky: bool) -> Plan:
    req = MoveRequest(kind="service", target="www-a", actor="slack:U0ALICE", source="slack", to_host="web2")
    move = PlannedMove("www-a", "r1", IPv4Network("198.51.100.32/27"), "web1", IPv4Address("192.0.2.2"),
                       "web2", IPv4Address("192.0.2.3"), (IPv4Address("198.51.100.33"),))
    risks = (RiskReason("moves_from_healthy_host", "moves www-a away from web1, which is healthy"),) if risky else ()
    return Plan(req, (move,), ("www-a (198.51.100.32/27 on r1): web1 → web2",),
                {"r1": ["ip route 198.51.100.32/27 192.0.2.3", "no ip route 198.51.100.32/27 192.0.2.2"]}, risks)


# ---------------------------------------------------------------- each kind of part


def test_every_part_kind_renders_as_its_block() -> None:
    confirm = Confirm("Move traffic?", "Move *www-a* to web2?", "Move", "Keep")
    out = render(Text("*www-a* is down"), Note("checked 3 times"), Code("ip route 198.51.100.32/27 192.0.2.3"),
                 Buttons((Button("Fail over", "alert_failover", '{"i":1}', style="danger", confirm=confirm),
                          Button("Acknowledge", "alert_ack", '{"i":1}'))))
    assert out[0] == {"type": "section", "text": {"type": "mrkdwn", "text": "*www-a* is down"}}
    assert out[1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "checked 3 times"}]}
    assert out[2] == {"type": "section",
                      "text": {"type": "mrkdwn", "text": "```ip route 198.51.100.32/27 192.0.2.3```"}}
    fail_over, ack = out[3]["elements"]
    assert fail_over == {
        "type": "button", "text": {"type": "plain_text", "text": "Fail over"}, "action_id": "lh.alert_failover.0",
        "value": '{"i":1}', "style": "danger",
        "confirm": {"title": {"type": "plain_text", "text": "Move traffic?"},
                    "text": {"type": "mrkdwn", "text": "Move *www-a* to web2?"},
                    "confirm": {"type": "plain_text", "text": "Move"}, "deny": {"type": "plain_text", "text": "Keep"}}}
    assert "style" not in ack and "confirm" not in ack and ack["action_id"] == "lh.alert_ack.1"
    assert len(out) == 4


def test_nothing_to_show_renders_nothing_slack_would_refuse() -> None:
    assert render(Text(""), Code(""), Buttons(())) == []  # no empty section, no empty actions block
    assert render(fallback="only the fallback") == render(Text("only the fallback"))
    assert blocks.fallback(Message("")) == "lasthop"  # Slack needs some text for the notification
    assert len(blocks.fallback(Message("x" * 5000))) == 3000


def test_an_empty_note_renders_nothing() -> None:
    assert render(Text("x"), Note("")) == render(Text("x"))


# ---------------------------------------------------------------- long text


def test_long_text_is_split_at_line_ends_and_every_line_is_kept() -> None:
    lines = [f"• www-{i:03d} → web{i % 3 + 1} " + "x" * 60 for i in range(200)]
    out = render(Text("\n".join(lines)))
    assert len(out) > 1
    assert "\n".join(texts(out)).split("\n") == lines  # split only between lines, nothing lost or reordered


def test_one_line_longer_than_a_section_still_fits() -> None:
    out = render(Text("y" * 7000), Note("z" * 7000))
    assert all(len(t) <= 3000 for t in texts(out))
    assert "".join(texts(out)) == "y" * 7000  # split into sections, nothing lost
    notes = [e["text"] for b in out if b["type"] == "context" for e in b["elements"]]
    assert notes == ["z" * 3000]  # small print is cut


def test_code_is_fenced_within_the_limit_and_cannot_close_its_own_fence() -> None:
    out = render(Code("\n".join(f"line {i} " + "c" * 90 for i in range(100))))
    assert len(out) > 1 and all(t.startswith("```") for t in texts(out))
    [single] = render(Code("echo ```; rm -rf /"))
    assert single["text"]["text"].count("```") == 2  # the fences lasthop put there, and only those


def test_long_code_keeps_every_line_and_its_closing_fence() -> None:
    lines = ["r" * 99] * 30  # 30 lines of 99 characters and 29 line ends: one chunk of 2999 characters
    out = render(Code("\n".join(lines)))
    assert all(t.startswith("```") and t.endswith("```") for t in texts(out))
    assert "\n".join(t.removeprefix("```").removesuffix("```") for t in texts(out)).split("\n") == lines


# ---------------------------------------------------------------- buttons


def test_a_button_is_cut_to_slacks_limits() -> None:
    long = Button("L" * 200, "confirm", "v" * 5000, style="primary",
                  confirm=Confirm("T" * 200, "x" * 1000, "Y" * 100, "N" * 100))
    [actions] = render(Buttons((long,)))
    [b] = actions["elements"]
    assert len(b["text"]["text"]) == 75 and len(b["value"]) == 2000
    c = b["confirm"]
    assert (len(c["title"]["text"]), len(c["text"]["text"]), len(c["confirm"]["text"]), len(c["deny"]["text"])) \
        == (100, 300, 30, 30)


def test_an_actions_block_holds_at_most_25_buttons() -> None:
    many = Buttons(tuple(Button(f"b{i}", "post_status", str(i)) for i in range(30)))
    [actions] = render(many)
    assert [e["value"] for e in actions["elements"]] == [str(i) for i in range(25)]  # the first 25, in order


def test_action_ids_are_unique_in_a_message_and_parse_back_to_their_action() -> None:
    parts = [Buttons(tuple(Button(a, a, a) for a in KNOWN_ACTIONS[i::3])) for i in range(3)]
    out = render(Text("x"), *parts, Buttons((Button("again", "confirm", "2"), Button("and again", "confirm", "3"))))
    elements = [e for b in out if b["type"] == "actions" for e in b["elements"]]
    assert len(elements) == len(KNOWN_ACTIONS) + 2
    for e in elements:
        assert ACTIONS.match(e["action_id"]), e["action_id"]  # the one listener (handlers.actions) takes it
        assert blocks.action_of(e["action_id"]) == (e["value"] if e["value"] in KNOWN_ACTIONS else "confirm")
    assert sorted(blocks.action_of(e["action_id"]) or "" for e in elements) == sorted(
        [*KNOWN_ACTIONS, "confirm", "confirm"])


@pytest.mark.parametrize("action_id", ["confirm", "lh.confirm", "lh.Confirm.0", "lh.confirm.x", "xlh.confirm.0",
                                       "lh.confirm.0.1", "lh.conf-irm.0", ""])
def test_action_of_refuses_what_lasthop_did_not_render(action_id: str) -> None:
    assert blocks.action_of(action_id) is None


@pytest.mark.parametrize("risky", [False, True])
def test_plan_messages_render_within_the_limits_with_their_buttons(risky: bool) -> None:
    message = approval_message(plan(True), "apr-1", "slack:U0ALICE", 15) if risky else confirm_message(plan(False),
                                                                                                       "apr-1")
    out = blocks.render(message)
    check_block_kit(out)
    [actions] = [b for b in out if b["type"] == "actions"]
    assert out[-1] is actions  # the buttons come last, under what they act on
    assert [(blocks.action_of(e["action_id"]), e["value"]) for e in actions["elements"]] == (
        [("approve", "apr-1"), ("deny", "apr-1")] if risky else [("confirm", "apr-1"), ("cancel", "apr-1")])
    assert "ip route 198.51.100.32/27 192.0.2.3" in json.dumps(out)


# ---------------------------------------------------------------- at most 50 blocks


def test_cut_text_keeps_the_buttons_and_the_start_of_the_text() -> None:
    out = render(Text("\n".join(f"{i:02d}" + "x" * 2998 for i in range(80))),
                 Buttons((Button("Post to channel", "post_status", "all"),)))
    assert len(out) == 50 and out[-1]["type"] == "actions"
    assert [t[:2] for t in texts(out)] == [f"{i:02d}" for i in range(49)]


def test_many_button_rows_are_kept_even_when_they_alone_fill_the_message() -> None:
    rows = [Buttons((Button(f"row {i}", "post_status", str(i)),)) for i in range(60)]
    out = render(Text("head"), *rows)
    assert len(out) == 50 and all(b["type"] == "actions" for b in out)
    assert [b["elements"][0]["value"] for b in out] == [str(i) for i in range(50)]


def test_cutting_keeps_the_order_of_what_remains() -> None:
    first = (Text("first plan"), Buttons((Button("Confirm move", "confirm", "apr-1"),)))
    second = (Text("\n".join("y" * 2999 for _ in range(60))), Buttons((Button("Confirm move", "confirm", "apr-2"),)))
    out = render(*first, *second)
    assert texts(out)[0] == "first plan"
    assert out[1]["type"] == "actions" and out[1]["elements"][0]["value"] == "apr-1"  # under its own text
    assert out[-1]["type"] == "actions" and out[-1]["elements"][0]["value"] == "apr-2"


# ---------------------------------------------------------------- reply()


@pytest.mark.parametrize("replace", [True, False])
def test_reply_is_an_ephemeral_response_that_replaces_only_when_asked(replace: bool) -> None:
    message = Message("Done: www-a is on web2", (Text(":white_check_mark: Done"), Note("www-a: web1 → web2")))
    assert blocks.reply(message, replace=replace) == {
        "text": "Done: www-a is on web2", "blocks": blocks.render(message), "response_type": "ephemeral",
        "replace_original": replace}
    check_block_kit(blocks.reply(message, replace=replace)["blocks"])
