"""The real slack-bolt app against a Slack stand-in on loopback, moving real routes in the lab.

Requests are built and signed exactly as Slack does. Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from support.labtools import comm, namespace_pids
from support.slack_standin import (
    SlackStandIn,
    block_action_body,
    block_action_payload,
    post,
    sign,
    slash_command_body,
    slash_command_payload,
    view_submission_body,
)

from bot.engine.pipeline import Engine
from bot.inventory import Inventory, SlackSettings
from bot.state import StateStore
from bot.web import make_server, serve_in_background
from handlers.app import build_app, http_handler, settings_from_env, start_socket_mode, web_client
from handlers.context import SlackContext
from handlers.poster import Poster
from lab import Lab

pytestmark = pytest.mark.lab

SECRET = "test-signing-secret"
OPS, ALERTS = "C0OPS", "C0ALERTS"
ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
A = IPv4Network("198.51.100.32/27")
VIP_A = IPv4Address("198.51.100.33")


@dataclass
class Slack:
    standin: SlackStandIn
    url: str
    ctx: SlackContext
    app: Any

    def send(self, body: bytes, *, secret: str = SECRET, extra: dict[str, str] | None = None,
             timeout: float = 10.0) -> tuple[int, bytes, float]:
        headers = {**sign(body, secret), **(extra or {})}
        start = time.monotonic()
        status, _, data = post(self.url, body, headers, timeout=timeout)
        return status, data, time.monotonic() - start

    def command(self, command: str, text: str, user: str, channel: str = OPS) -> tuple[str, bytes]:
        response_url = self.standin.new_response_url()
        body = slash_command_body(command, text, user_id=user, channel_id=channel, response_url=response_url)
        status, data, _ = self.send(body, timeout=3.0)  # Slack gives up after 3 s: so does this test
        assert status == 200, data
        return response_url, data

    def click(self, action_id: str, value: str, user: str, channel: str, ts: str = "1.0",
              extra: dict[str, str] | None = None) -> str:
        response_url = self.standin.new_response_url()
        body = block_action_body(action_id, value, user_id=user, channel_id=channel, message_ts=ts,
                                 response_url=response_url)
        status, data, _ = self.send(body, extra=extra, timeout=3.0)
        assert status == 200, data
        return response_url


def slack_inventory(inv: Inventory, **policy: Any) -> Inventory:
    slack = SlackSettings(alert_channel=ALERTS, channels=(OPS, ALERTS), viewers=("*",), operators=(ALICE, BOB),
                          approvers=(ALICE, BOB))
    return dataclasses.replace(inv, slack=slack, policy=dataclasses.replace(inv.policy, **policy))


@pytest.fixture
def slack(lab_inv: Inventory) -> Iterator[Slack]:
    yield from _slack(slack_inventory(lab_inv))


def _slack(inv: Inventory) -> Iterator[Slack]:
    with SlackStandIn() as standin:
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": standin.api_url}
        settings = settings_from_env(env)
        assert settings is not None
        client = web_client(settings)
        store = StateStore(inv.state_url)
        engine = Engine(inv, store, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
        ctx = SlackContext(inv, engine, store, client, Poster(client, interval=0.05))
        app = build_app(ctx, settings)
        server = make_server("127.0.0.1", 0, __import__("bot.metrics").metrics.Metrics(), lambda: True,
                             {"/slack/events": http_handler(app)})
        serve_in_background(server)
        try:
            yield Slack(standin, f"http://127.0.0.1:{server.server_address[1]}/slack/events", ctx, app)
        finally:
            server.shutdown()
            server.server_close()
            ctx.close()
            engine.close()


def texts(responses: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text", "")) for r in responses)


def approval_request(standin: SlackStandIn) -> tuple[str, str]:
    call = standin.wait_for_call("chat.postMessage", lambda c: "approval_approve" in json.dumps(c.args))
    blocks = call.args["blocks"]
    value = next(e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"] == "approval_approve")
    return value, str(call.response.get("ts", ""))


def fib_a(slack: Slack) -> set[IPv4Address]:
    return slack.ctx.engine.devices.router("r1").fib_next_hops(A)


def test_status_acks_at_once_then_answers_from_the_routers(lab: Lab, slack: Slack) -> None:
    url, ack = slack.command("/status", "", BOB)
    assert b"Reading the routers" in ack
    answer = texts(slack.standin.wait_for_response(url))
    assert "*www-a* → web1 (up) lo ok" in answer and "*www-d* → web1" in answer
    url, ack = slack.command("/status", "help", BOB)
    assert b"/status [SERVICE|HOST|help]" in ack


def test_status_of_one_service_shows_its_hosts_route_and_changes(lab: Lab, slack: Slack) -> None:
    url, _ = slack.command("/status", "www-a", BOB)
    answer = texts(slack.standin.wait_for_response(url, timeout=30))
    assert "www-a: 198.51.100.32/27 on r1 via 198.51.100.2" in answer
    assert "web2: up" in answer and "web3: up" in answer
    assert "*www-b*" not in answer


def test_failover_without_words_opens_a_form_whose_answer_is_a_plan(lab: Lab, slack: Slack) -> None:
    _, ack = slack.command("/failover", "", ALICE)
    assert ack in (b"", b"null")
    view = slack.standin.wait_for_call("views.open").args["view"]
    assert view["callback_id"] == "failover_modal"
    values = {
        "service": {"service": {"type": "static_select", "selected_option": {"value": "www-a"}}},
        "target": {"target": {"type": "static_select", "selected_option": {"value": "web3"}}},
        "dry": {"dry": {"type": "checkboxes", "selected_options": [{"value": "dry"}]}},
    }
    body = view_submission_body("failover_modal", values, user_id=ALICE, private_metadata=view["private_metadata"])
    status, _, _ = slack.send(body, timeout=3.0)
    assert status == 200
    shown = slack.standin.wait_for_call("chat.postEphemeral", timeout=30)
    assert shown.args["user"] == ALICE and shown.args["channel"] == OPS
    assert "Dry run: nothing changed" in str(shown.args["text"])
    assert fib_a(slack) == {IPv4Address("198.51.100.2")}


def test_ack_comes_within_3s_while_the_router_hangs(lab: Lab, slack: Slack) -> None:
    zebra = [p for p in namespace_pids(lab, "r1") if comm(p) == "zebra"]
    for pid in zebra:
        os.kill(pid, signal.SIGSTOP)
    try:
        body = slash_command_body("/status", "", user_id=BOB, channel_id=OPS,
                                  response_url=slack.standin.new_response_url())
        status, data, took = slack.send(body, timeout=3.0)
        print(f"\nack while r1 hangs: {took * 1000:.0f} ms")
        assert status == 200 and b"Reading the routers" in data
    finally:
        for pid in zebra:
            os.kill(pid, signal.SIGCONT)


def test_risky_move_needs_a_second_person_and_runs_once(lab: Lab, lab_home: None, slack: Slack) -> None:
    url, ack = slack.command("/failover", "www-a to web2", ALICE)
    assert b"Planning" in ack
    assert "needs a second person" in texts(slack.standin.wait_for_response(url))
    approval_id, ts = approval_request(slack.standin)
    # Alice cannot approve her own request.
    own = slack.click("approval_approve", approval_id, ALICE, ALERTS, ts)
    assert "two-person rule" in texts(slack.standin.wait_for_response(own))
    assert fib_a(slack) == {IPv4Address("198.51.100.2")}
    # Bob approves: pre-checks run again, the route moves, the request message becomes its outcome.
    slack.click("approval_approve", approval_id, BOB, ALERTS, ts)
    done = slack.standin.wait_for_call("chat.update", lambda c: "Done" in str(c.args.get("text", "")), timeout=30)
    assert "approval_approve" not in json.dumps(done.args.get("blocks"))
    assert fib_a(slack) == {IPv4Address("198.51.100.3")}
    assert lab.client_get(VIP_A) == "web2"
    # A second click, and a retried delivery of it, run nothing.
    again = slack.click("approval_approve", approval_id, BOB, ALERTS, ts)
    assert "Already approved" in texts(slack.standin.wait_for_response(again))
    retry = slack.click("approval_approve", approval_id, BOB, ALERTS, ts,
                        extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert "not run again" in texts(slack.standin.wait_for_response(retry))
    assert len(slack.ctx.store.recent_changes()) == 1
    actions = [(r.action, r.result) for r in slack.ctx.store.history(limit=20)]
    assert ("approve", "refused") in actions and ("move", "done") in actions


def test_safe_move_runs_on_the_requesters_confirmation(lab: Lab, lab_home: None, slack: Slack) -> None:
    lab.break_host("web1")
    try:
        url, _ = slack.command("/failover", "www-a", ALICE)
        offer = slack.standin.wait_for_response(url)[0]
        approval_id = next(e["value"] for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"]
                           if e["action_id"] == "failover_confirm")
        not_mine = slack.click("failover_confirm", approval_id, BOB, OPS)
        assert "Only the person who asked" in texts(slack.standin.wait_for_response(not_mine))
        mine = slack.click("failover_confirm", approval_id, ALICE, OPS)
        assert ":white_check_mark: Done" in texts(slack.standin.wait_for_response(mine, count=2, timeout=30))
        twice = slack.click("failover_confirm", approval_id, ALICE, OPS)
        assert "not run again" in texts(slack.standin.wait_for_response(twice))
        assert len(slack.ctx.store.recent_changes()) == 1
    finally:
        lab.heal("web1")


def test_an_expired_approval_cannot_be_approved(lab: Lab, lab_inv: Inventory) -> None:
    for s in _slack(slack_inventory(lab_inv, approval_timeout=1.0)):
        url, _ = s.command("/failover", "www-a to web2", ALICE)
        s.standin.wait_for_response(url)
        approval_id, ts = approval_request(s.standin)
        time.sleep(1.5)
        late = s.click("approval_approve", approval_id, BOB, ALERTS, ts)
        assert "expired" in texts(s.standin.wait_for_response(late))
        assert fib_a(s) == {IPv4Address("198.51.100.2")}


def test_forged_or_stale_signatures_are_refused_and_run_nothing(lab: Lab, slack: Slack) -> None:
    body = slash_command_body("/failover", "www-a to web2", user_id=ALICE, channel_id=OPS,
                              response_url=slack.standin.new_response_url())
    status, _, _ = slack.send(body, secret="not-the-secret")
    assert status == 401
    stale = sign(body, SECRET, timestamp=int(time.time()) - 3600)
    assert post(slack.url, body, stale)[0] == 401
    time.sleep(0.5)
    assert slack.standin.calls_to("chat.postMessage") == []
    assert slack.ctx.store.history() == []


def test_refusals_are_short_and_change_nothing(lab: Lab, slack: Slack) -> None:
    web3 = slack.ctx.engine.devices.host("web3")
    web3.unbind_vip(VIP_A)
    try:
        url, _ = slack.command("/failover", "www-a to web3 dry-run", ALICE)
        answer = texts(slack.standin.wait_for_response(url, timeout=30))
        assert "web3 lacks 198.51.100.33 on its loopback" in answer
    finally:
        web3.bind_vip(VIP_A, 1)
    _, ack = slack.command("/failover", "www-a;reload", ALICE)
    assert b"is not a name" in ack and b"/failover SERVICE|PREFIX|HOST" in ack
    _, ack = slack.command("/failover", "www-a to web2", MALLORY)
    assert b"not allowed to move services" in ack
    url, _ = slack.command("/failover", "www-q", ALICE)
    assert "www-q" in texts(slack.standin.wait_for_response(url))
    _, ack = slack.command("/status", "", BOB, channel="C0RANDOM")
    assert b"does not take commands in this channel" in ack
    assert fib_a(slack) == {IPv4Address("198.51.100.2")}


def test_socket_mode_runs_the_same_approval_flow(lab: Lab, lab_home: None, lab_inv: Inventory) -> None:
    inv = slack_inventory(lab_inv)
    with SlackStandIn() as standin:
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test", "SLACK_API_URL": standin.api_url}
        settings = settings_from_env(env)
        assert settings is not None and settings.socket_mode
        client = web_client(settings)
        store = StateStore(inv.state_url)
        engine = Engine(inv, store, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
        ctx = SlackContext(inv, engine, store, client, Poster(client, interval=0.05))
        handler = start_socket_mode(build_app(ctx, settings), settings)
        try:
            standin.socket_connected()
            response_url = standin.new_response_url()
            env_id = standin.send_envelope("slash_commands", slash_command_payload(
                "/failover", "www-a to web2", user_id=ALICE, channel_id=OPS, response_url=response_url))
            assert "Planning" in json.dumps(standin.wait_for_ack(env_id).payload)
            approval_id, ts = approval_request(standin)
            click = standin.send_envelope("interactive", block_action_payload(
                "approval_approve", approval_id, user_id=BOB, channel_id=ALERTS, message_ts=ts,
                response_url=standin.new_response_url()))
            standin.wait_for_ack(click)
            standin.wait_for_call("chat.update", lambda c: "Done" in str(c.args.get("text", "")), timeout=30)
            assert engine.devices.router("r1").fib_next_hops(A) == {IPv4Address("198.51.100.3")}
        finally:
            handler.close()
            ctx.close()
            engine.close()
