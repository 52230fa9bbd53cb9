"""handlers/forms.py: the failover form that `/failover` with no words opens, and what its submission asks for.

The form is checked against Slack's limits for modals (title, buttons, option counts and
lengths, private_metadata); its answer is built from a view_submission as Slack sends it, with
the values put where the form's own block and action IDs say, so the form and its reader agree.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from support.fakes import inventory_from_text
from support.slack_fakes import ALICE, OPS, harness
from support.slack_standin import view_submission_payload

from bot.chat import Actor, Answer, Message
from bot.commands import FailoverCommand
from bot.inventory import Inventory
from handlers import blocks
from handlers.forms import CALLBACK, FIRST_HEALTHY, failover_form, on_submit, submitted


def element(form: dict[str, Any], block_id: str) -> dict[str, Any]:
    block = next(b for b in form["blocks"] if b["block_id"] == block_id)
    return dict(block["element"])


def values(form: dict[str, Any], service: str, target: str | None = None, dry: bool = False) -> dict[str, Any]:
    """state.values as Slack sends them for this form, chosen by value from the form's own options."""
    def pick(block_id: str, value: str) -> dict[str, Any]:
        e = element(form, block_id)
        option = next(o for o in e["options"] if o["value"] == value)
        return {block_id: {e["action_id"]: {"type": e["type"], "selected_option": option}}}

    out = pick("service", service)
    if target is not None:
        out |= pick("target", target)
    else:  # an optional select with nothing selected: Slack sends null
        t = element(form, "target")
        out["target"] = {t["action_id"]: {"type": t["type"], "selected_option": None}}
    d = element(form, "dry")
    out["dry"] = {d["action_id"]: {"type": "checkboxes", "selected_options": d["options"] if dry else []}}
    return out


def view_of(form: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    payload = view_submission_payload(form["callback_id"], state, user_id=ALICE,
                                      private_metadata=form["private_metadata"])
    return dict(payload["view"])


def check_modal_limits(form: dict[str, Any]) -> None:
    """Slack's limits for a modal and the elements this form uses."""
    assert form["type"] == "modal" and 1 <= len(form["blocks"]) <= 100
    for key in ("title", "submit", "close"):
        assert form[key]["type"] == "plain_text" and 1 <= len(form[key]["text"]) <= 24
    assert len(form["callback_id"]) <= 255 and len(form["private_metadata"]) <= 3000
    for block in form["blocks"]:
        assert block["type"] == "input" and len(block["block_id"]) <= 255 and len(block["label"]["text"]) <= 2000
        e = block["element"]
        assert 1 <= len(e["options"]) <= (100 if e["type"] == "static_select" else 10)
        for o in e["options"]:
            assert 1 <= len(o["text"]["text"]) <= 75 and 1 <= len(o["value"]) <= 150
        if "initial_option" in e:
            assert e["initial_option"] in e["options"]


# ---------------------------------------------------------------- the form


def test_the_form_offers_every_service_and_host_and_remembers_the_channel(inv: Inventory) -> None:
    form = failover_form(inv, OPS)
    check_modal_limits(form)
    assert form["callback_id"] == CALLBACK
    assert json.loads(form["private_metadata"]) == {"channel": OPS}
    services = element(form, "service")["options"]
    assert [(o["text"]["text"], o["value"]) for o in services] == [
        ("www-a (198.51.100.32/27)", "www-a"), ("www-b (198.51.100.64/27)", "www-b"),
        ("www-d (198.51.100.96/27)", "www-d")]
    target = element(form, "target")
    assert [o["value"] for o in target["options"]] == [FIRST_HEALTHY, "web1", "web2", "web3"]
    assert target["initial_option"]["value"] == FIRST_HEALTHY  # the one rule chooses unless told otherwise
    service_block = next(b for b in form["blocks"] if b["block_id"] == "service")
    assert not service_block.get("optional")  # Slack makes the person pick a service


def test_a_big_inventory_still_fits_slacks_option_limits(tmp_path: Path) -> None:
    hosts = "\n".join(f"  web{i}: {{address: 198.18.{i // 200}.{i % 200 + 10}}}" for i in range(120))
    services = "\n".join(f"  service-with-a-long-name-{i:03d}: {{prefix: 198.19.{i}.0/27, router: r1, "
                         f"hosts: [web0, web1], vips: [198.19.{i}.1]}}" for i in range(130))
    inv = inventory_from_text(tmp_path, f"""
defaults: {{username: ops, key_file: /k, known_hosts: /kh}}
routers:
  r1: {{driver: frr, address: 198.18.200.1, lan: [198.18.0.0/16]}}
hosts:
{hosts}
services:
{services}
""")
    form = failover_form(inv, "C" + "0" * 40)
    check_modal_limits(form)
    assert len(element(form, "service")["options"]) == 100
    target = element(form, "target")["options"]
    assert len(target) == 100 and target[0]["value"] == FIRST_HEALTHY


# ---------------------------------------------------------------- its answer


@pytest.mark.parametrize(("target", "dry", "expected"), [
    (None, False, FailoverCommand("www-a")),  # nothing selected
    (FIRST_HEALTHY, True, FailoverCommand("www-a", None, True)),
    ("web3", False, FailoverCommand("www-a", "web3")),
    ("web2", True, FailoverCommand("www-a", "web2", True)),
])
def test_a_submission_asks_for_what_was_picked(inv: Inventory, target: str | None, dry: bool,
                                               expected: FailoverCommand) -> None:
    form = failover_form(inv, OPS)
    assert submitted(view_of(form, values(form, "www-a", target, dry))) == (expected, OPS)


def test_a_submission_without_the_optional_blocks_is_a_move_to_the_best_host(inv: Inventory) -> None:
    form = failover_form(inv, OPS)
    state = values(form, "www-b")
    del state["dry"]
    assert submitted(view_of(form, state)) == (FailoverCommand("www-b"), OPS)


def test_submitting_acks_and_posts_the_plan_privately_where_the_form_was_opened(inv: Inventory) -> None:
    form = failover_form(inv, OPS)
    view = view_of(form, values(form, "www-a", "web2"))
    answer = Answer(Message.of("*Plan* (www-a): web1 → web2"), replace=True)
    with harness(inv, answer=answer, progress=Message.of(":hourglass: Moving…"), gate=threading.Event()) as h:
        on_submit(ack=h.ack, body={"user": {"id": ALICE}}, view=view, client=h.client,  # type: ignore[arg-type]
                  context=h.context)
        assert h.ack.calls == [((), {})]  # the modal closes at once; the work follows
        assert not h.workflow.finished.is_set()
        assert h.workflow.gate is not None
        h.workflow.gate.set()
        h.drain()
    [call] = h.workflow.calls
    assert (call.method, call.args) == ("request", (Actor(ALICE, "slack", OPS), FailoverCommand("www-a", "web2")))
    posted = [kwargs for method, kwargs in h.client.calls if method == "chat_postEphemeral"]
    assert posted == [
        {"channel": OPS, "user": ALICE, "text": ":hourglass: Moving…",
         "blocks": blocks.render(Message.of(":hourglass: Moving…"))},
        {"channel": OPS, "user": ALICE, "text": blocks.fallback(answer.message),
         "blocks": blocks.render(answer.message)},
    ]


def test_a_submission_whose_work_fails_still_tells_the_person(inv: Inventory) -> None:
    form = failover_form(inv, OPS)
    with harness(inv, error=RuntimeError("database is locked")) as h:
        on_submit(ack=h.ack, body={"user": {"id": ALICE}}, view=view_of(form, values(form, "www-a")),
                  client=h.client, context=h.context)  # type: ignore[arg-type]
        h.settle()
    assert [method for method, _ in h.client.calls] == ["chat_postEphemeral"]
