"""The real slack-bolt app, wired as `lasthop serve` wires it, against a Slack stand-in, moving real routes.

The stand-in behaves as Slack does where it matters here: it accepts only the commands the
generated manifest installed, one chat.postMessage per second per channel (429 with
Retry-After beyond that), and it keeps each message's latest content and its thread, so a
test reads the channel as a person would. Requests are built and signed exactly as Slack
does. Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from support.labtools import comm, namespace_pids, wait_for
from support.slack_reading import buttons, incident_parents
from support.slack_reading import thread_text as read_thread
from support.slack_standin import (
    SlackStandIn,
    block_action_body,
    block_action_payload,
    post,
    sign,
    view_submission_body,
)

from bot.inventory import Inventory, Roles, SlackSettings
from bot.manifest import build_manifest
from bot.metrics import Metrics
from bot.serve import Daemon, ServeSettings
from bot.state import StateStore
from bot.values import replace
from bot.web import make_server, serve_in_background
from handlers.app import build_app, http_handler, poster_client, settings_from_env, slack_context, start_socket_mode
from handlers.poster import Poster
from lab import Lab

pytestmark = pytest.mark.lab

SECRET = "test-signing-secret"
OPS, ALERTS = "C0OPS", "C0ALERTS"
ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
A = IPv4Network("198.51.100.32/27")
VIP_A = IPv4Address("198.51.100.33")
WEB1, WEB2 = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3")




@dataclass
class Lasthop:
    """One `lasthop serve` process's worth of objects, in this test process."""

    standin: SlackStandIn
    daemon: Daemon
    url: str
    close: Callable[[], None]

    @property
    def store(self) -> StateStore:
        return self.daemon.store

    def send(self, body: bytes, *, secret: str = SECRET, extra: dict[str, str] | None = None,
             timeout: float = 3.0) -> tuple[int, bytes]:
        status, _, data = post(self.url, body, {**sign(body, secret), **(extra or {})}, timeout=timeout)
        return status, data

    def command(self, command: str, text: str, user: str, channel: str = OPS) -> tuple[str, bytes]:
        response_url = self.standin.new_response_url()
        body = self.standin.slash_command_body(command, text, user_id=user, channel_id=channel,
                                               response_url=response_url)
        status, data = self.send(body)  # Slack gives up after 3 s: so does this test
        assert status == 200, data
        return response_url, data

    def click(self, button: dict[str, Any], user: str, channel: str, ts: str, *, ephemeral: bool = False,
              extra: dict[str, str] | None = None) -> str:
        response_url = self.standin.new_response_url()
        body = block_action_body(button["action_id"], button["value"], user_id=user, channel_id=channel,
                                 message_ts=ts, response_url=response_url, is_ephemeral=ephemeral)
        status, data = self.send(body, extra=extra)
        assert status == 200, data
        return response_url

    def fib(self) -> set[IPv4Address]:
        return self.daemon.engine.devices.router("r1").fib_next_hops(A)


def slack_inventory(inv: Inventory, *, services: tuple[str, ...] = ("www-a", "www-b", "www-c", "www-d"),
                    **policy: Any) -> Inventory:
    """The lab's inventory with Slack roles and fast checks; automatic failover off: people decide."""
    slack = SlackSettings(alert_channel=ALERTS, channels=(OPS, ALERTS),
                          roles=Roles(viewers=("*",), operators=(ALICE, BOB), approvers=(ALICE, BOB)))
    fast = {name: replace(svc, auto_failover=False, check=replace(
        svc.check, interval=1.0, timeout=0.5, fall=2, rise=2, fast_interval=0.2))
        for name, svc in inv.services.items() if name in services}
    auto = replace(inv.policy.auto_failover, enabled=False)
    return replace(inv, slack=slack, services=fast,
                               policy=replace(inv.policy, auto_failover=auto, **policy))


def start(inv: Inventory, standin: SlackStandIn) -> Lasthop:
    env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": standin.api_url}
    settings = settings_from_env(env)
    assert settings is not None
    poster = Poster(poster_client(settings))  # Slack's own pace: one message per second per channel
    daemon = Daemon(inv, StateStore(inv.state_url), poster, channel=ALERTS,
                    settings=ServeSettings(drift_interval=2.0, startup_grace=10.0, remind_after=0))
    ctx = slack_context(inv, daemon, poster, settings)
    app = build_app(ctx, settings)
    server = make_server("127.0.0.1", 0, Metrics(), lambda: True, {"/slack/events": http_handler(app, SECRET)})
    serve_in_background(server)
    daemon.start()
    wait_for(lambda: daemon._ready, 30, "a complete health view")

    def close() -> None:
        server.shutdown()
        server.server_close()
        daemon.stop()
        ctx.close()

    return Lasthop(standin, daemon, f"http://127.0.0.1:{server.server_address[1]}/slack/events", close)


@pytest.fixture
def standin(lab_inv: Inventory) -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        s.install(build_manifest(lab_inv.slack.commands, mode="http",
                                 request_url="https://lasthop.example.net/slack/events"))
        yield s


@pytest.fixture
def run(lab_inv: Inventory, standin: SlackStandIn) -> Iterator[Callable[..., Lasthop]]:
    started: list[Lasthop] = []

    def go(inv: Inventory | None = None) -> Lasthop:
        lh = start(inv or slack_inventory(lab_inv), standin)
        started.append(lh)
        return lh

    yield go
    for lh in started:
        lh.close()


def texts(responses: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text", "")) for r in responses)


def parents(standin: SlackStandIn) -> list[dict[str, Any]]:
    """Incident parents in the alert channel: top-level messages with an incident state."""
    return incident_parents(standin, ALERTS)


def thread_text(standin: SlackStandIn, ts: str) -> str:
    return read_thread(standin, ALERTS, ts)


# ------------------------------------------------------------------ the 5 AM flow


def test_an_outage_is_one_alert_whose_button_moves_it_and_whose_thread_tells_the_story(
        lab: Lab, lab_home: None, lab_inv: Inventory, run: Callable[..., Lasthop]) -> None:
    lh = run(slack_inventory(lab_inv, services=("www-a", "www-b", "www-c")))
    standin = lh.standin
    lab.break_host("web1")
    try:
        first = wait_for(lambda: parents(standin), 30, "the incident's parent message")[0]
        ts = first["ts"]
        # The VIP check may notice first; the host's own checks follow within a second or two.
        parent = wait_for(lambda: (m := standin.message(ALERTS, ts)) and {"alert_failover", "alert_maintenance"}
                          <= set(buttons(m)) and m, 30, "the parent's Fail over and Maintenance buttons")
        fail_over = buttons(parent)["alert_failover"]
        assert fail_over["text"]["text"] == "Fail over www-a to web2"  # web3 serves www-c, web2 www-b: a tie
        assert fail_over["style"] == "danger" and "confirm" in fail_over
        assert {"alert_ack", "alert_maintenance"} <= set(buttons(parent))
        assert "web1 is down since" in parent["text"] and "OPEN" in parent["text"]
        assert "www-a* → web1" in json.dumps(parent["blocks"], ensure_ascii=False)

        # Two people tap at once (a double tap, or two phones): one move.
        urls: list[str] = []
        taps = [threading.Thread(target=lambda u=u: urls.append(lh.click(fail_over, u, ALERTS, ts)))
                for u in (BOB, ALICE)]
        for t in taps:
            t.start()
        for t in taps:
            t.join(10)
        answers = [texts(standin.wait_for_response(u, timeout=30)) for u in urls]
        wait_for(lambda: any("Done" in texts(standin.responses[u]) for u in urls), 30, "one tap's Done")
        assert lh.fib() == {WEB2}
        assert lab.client_get(VIP_A) == "web2"
        assert len(lh.store.recent_changes()) == 1, answers

        wait_for(lambda: "moved www-a web1 → web2" in thread_text(standin, ts), 20, "the move in the thread")
        moved = next(line for line in thread_text(standin, ts).splitlines() if "moved www-a" in line)
        assert "verified in the router's FIB" in moved and " s," in moved  # who did it, and how long it took
        assert "<@U0BOB>" in moved or "<@U0ALICE>" in moved
        wait_for(lambda: "MITIGATED" in standin.message(ALERTS, ts)["text"], 20, "the parent saying mitigated")
        assert "alert_failover" not in buttons(standin.message(ALERTS, ts))

        ack = lh.click(buttons(standin.message(ALERTS, ts))["alert_ack"], ALICE, ALERTS, ts)
        assert "You are on it" in texts(standin.wait_for_response(ack, timeout=20))
        wait_for(lambda: "acknowledged by <@U0ALICE>" in standin.message(ALERTS, ts)["text"], 20,
                 "the parent naming who is on it")
        again = lh.click(buttons(parent)["alert_ack"], BOB, ALERTS, ts)  # the old button, still on Bob's screen
        assert "Already acknowledged by <@U0ALICE>" in texts(standin.wait_for_response(again, timeout=20))
    finally:
        lab.heal("web1")
    wait_for(lambda: "RESOLVED" in standin.message(ALERTS, ts)["text"], 40, "the parent saying resolved")
    resolved = standin.message(ALERTS, ts)
    assert "Fail back www-a to web1" in json.dumps(resolved["blocks"], ensure_ascii=False)
    # The parent may run ahead: its queued update is coalesced with the newest content.
    wait_for(lambda: "web1 is back up" in thread_text(standin, ts), 20, "the recovery in the thread")
    assert lh.fib() == {WEB2}  # offered, not done
    # A tap on the old alert button after it is over says what happened and moves nothing.
    late = lh.click(fail_over, BOB, ALERTS, ts)
    assert "This incident is over" in texts(standin.wait_for_response(late, timeout=20))
    assert len(lh.store.recent_changes()) == 1
    assert len(parents(standin)) == 1  # one break, one parent message
    assert standin.rate_limited("chat.postMessage") == []  # the poster kept to Slack's pace


def test_a_tap_after_a_restart_still_works_and_lands_in_the_same_thread(
        lab: Lab, lab_home: None, lab_inv: Inventory, standin: SlackStandIn) -> None:
    inv = slack_inventory(lab_inv, services=("www-a", "www-b", "www-c"))
    before = start(inv, standin)
    lab.break_host("web1")
    try:
        try:
            ts = wait_for(lambda: parents(standin), 30, "the parent")[0]["ts"]
            parent = wait_for(lambda: (m := standin.message(ALERTS, ts)) and "alert_failover" in buttons(m) and m,
                              30, "the Fail over button")
        finally:
            before.close()  # lasthop restarts: a deploy, a crash
        after = start(inv, standin)
        try:
            url = after.click(buttons(parent)["alert_failover"], BOB, ALERTS, ts)
            wait_for(lambda: "Done" in texts(standin.responses[url]), 30, "the move after the restart")
            assert after.fib() == {WEB2}
            wait_for(lambda: "moved www-a web1 → web2" in thread_text(standin, ts), 20, "the move in the old thread")
            wait_for(lambda: "MITIGATED" in standin.message(ALERTS, ts)["text"], 20, "the old parent updated")
            assert len(parents(standin)) == 1  # the restarted process continued the thread, opened nothing new
        finally:
            after.close()
    finally:
        lab.heal("web1")


# ------------------------------------------------------------------ commands and approvals


def test_status_acks_at_once_then_answers_from_the_routers(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    url, ack = lh.command("/vip-status", "", BOB)
    assert b"Reading the routers" in ack
    answer = texts(lh.standin.wait_for_response(url))
    assert "*www-a* → web1 (up) lo ok" in answer and "*www-d* → web1" in answer
    url, _ = lh.command("/lasthop", "status www-a", BOB)
    detail = json.dumps(lh.standin.wait_for_response(url, timeout=30))
    assert "www-a: 198.51.100.32/27 on r1 via 198.51.100.2" in detail and "*www-b*" not in detail
    _, ack = lh.command("/vip-status", "help", BOB)
    assert b"/vip-status" in ack and b"/lasthop status" in ack


def test_failover_without_words_opens_a_form_whose_answer_is_a_plan(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    _, ack = lh.command("/failover", "", ALICE)
    assert ack in (b"", b"null")
    view = lh.standin.wait_for_call("views.open").args["view"]
    values = {
        "service": {"service": {"type": "static_select", "selected_option": {"value": "www-a"}}},
        "target": {"target": {"type": "static_select", "selected_option": {"value": "web3"}}},
        "dry": {"dry": {"type": "checkboxes", "selected_options": [{"value": "dry"}]}},
    }
    body = view_submission_body(view["callback_id"], values, user_id=ALICE, private_metadata=view["private_metadata"])
    assert lh.send(body)[0] == 200
    shown = lh.standin.wait_for_call("chat.postEphemeral", timeout=30)
    assert shown.args["user"] == ALICE and shown.args["channel"] == OPS
    assert "Dry run: nothing changed" in str(shown.args["text"])
    assert lh.fib() == {WEB1}


def test_ack_comes_within_3s_while_the_router_hangs(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    zebra = [p for p in namespace_pids(lab, "r1") if comm(p) == "zebra"]
    for pid in zebra:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        _, data = lh.command("/vip-status", "", BOB)
        print(f"\nack while r1 hangs: {(time.monotonic() - started) * 1000:.0f} ms")
        assert b"Reading the routers" in data
    finally:
        for pid in zebra:
            os.kill(pid, signal.SIGCONT)


def approval_request(standin: SlackStandIn) -> tuple[dict[str, Any], dict[str, Any], str]:
    message = wait_for(lambda: next((m for m in standin.channel_messages(ALERTS) if "approve" in buttons(m)), None),
                       20, "the approval request in the alert channel")
    found = buttons(message)
    return found["approve"], found["deny"], message["ts"]


def test_risky_move_needs_a_second_person_and_runs_once(lab: Lab, lab_home: None,
                                                        run: Callable[..., Lasthop]) -> None:
    lh = run()
    url, ack = lh.command("/failover", "www-a to web2", ALICE)
    assert b"Planning" in ack
    assert "needs a second person" in texts(lh.standin.wait_for_response(url, timeout=30))
    approve, _, ts = approval_request(lh.standin)
    own = lh.click(approve, ALICE, ALERTS, ts)
    assert "two-person rule" in texts(lh.standin.wait_for_response(own))
    assert lh.fib() == {WEB1}
    lh.click(approve, BOB, ALERTS, ts)
    wait_for(lambda: "Done" in lh.standin.message(ALERTS, ts)["text"], 30, "the request replaced by its outcome")
    assert "approve" not in buttons(lh.standin.message(ALERTS, ts))
    assert lh.fib() == {WEB2} and lab.client_get(VIP_A) == "web2"
    again = lh.click(approve, BOB, ALERTS, ts)
    assert "Already approved" in texts(lh.standin.wait_for_response(again))
    retry = lh.click(approve, BOB, ALERTS, ts, extra={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert "not run again" in texts(lh.standin.wait_for_response(retry))
    assert len(lh.store.recent_changes()) == 1
    actions = [(r.action, r.result) for r in lh.store.history(limit=20)]
    assert ("approve", "refused") in actions and ("move", "done") in actions


def test_nobody_outside_the_roles_can_cancel_someone_elses_request(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    url, _ = lh.command("/failover", "www-a to web2", ALICE)
    lh.standin.wait_for_response(url, timeout=30)
    _, deny, ts = approval_request(lh.standin)
    refused = lh.click(deny, MALLORY, ALERTS, ts)
    assert "not allowed to approve" in texts(lh.standin.wait_for_response(refused))
    pending = lh.store.get_approval(deny["value"])
    assert pending is not None and pending.status == "pending"
    assert ("deny", "refused") in [(r.action, r.result) for r in lh.store.history(limit=10)]


def test_safe_move_runs_on_the_requesters_confirmation(lab: Lab, lab_home: None, run: Callable[..., Lasthop]) -> None:
    lh = run()
    lab.break_host("web1")
    try:
        wait_for(lambda: lh.daemon.machines[("www-a", "web1")].state.value == "down", 20, "web1 down for www-a")
        url, _ = lh.command("/failover", "www-a", ALICE)
        offer = lh.standin.wait_for_response(url, timeout=30)[-1]
        confirm = buttons(offer)["confirm"]
        not_mine = lh.click(confirm, BOB, OPS, "1.0", ephemeral=True)
        assert "Only the person who asked" in texts(lh.standin.wait_for_response(not_mine))
        mine = lh.click(confirm, ALICE, OPS, "1.0", ephemeral=True)
        done = lh.standin.wait_for_response(mine, count=2, timeout=30)
        assert ":white_check_mark: Done" in texts(done) and all(r["replace_original"] for r in done)
        twice = lh.click(confirm, ALICE, OPS, "1.0", ephemeral=True)
        assert "not run again" in texts(lh.standin.wait_for_response(twice))
        assert len(lh.store.recent_changes()) == 1
    finally:
        lab.heal("web1")


def test_maintenance_of_a_serving_host_from_chat_drains_once_a_second_person_approves(
        lab: Lab, lab_home: None, run: Callable[..., Lasthop]) -> None:
    lh = run()
    url, ack = lh.command("/lasthop", 'maintenance web3 on 2h "kernel update"', ALICE)
    assert b"Working" in ack
    # Draining a healthy host (web3 serves www-c) is risky: a second person approves the drain.
    assert "needs a second person" in texts(lh.standin.wait_for_response(url, timeout=30))
    assert lh.store.maintenance() == {}
    approve, _, ts = approval_request(lh.standin)
    lh.click(approve, BOB, ALERTS, ts)
    started = "web3 is in maintenance for 2h (kernel update)"
    wait_for(lambda: started in json.dumps(lh.standin.message(ALERTS, ts), ensure_ascii=False), 30,
             "the drain's outcome, with maintenance started")
    (record,) = lh.store.maintenance().values()
    assert (record.host, record.by, record.reason) == ("web3", f"slack:{ALICE}", "kernel update")
    assert lab.client_get(IPv4Address("198.51.100.200")) != "web3"
    url, _ = lh.command("/lasthop", "maintenance web3 off", ALICE)
    assert "out of maintenance" in texts(lh.standin.wait_for_response(url, timeout=30))
    assert lh.store.maintenance() == {}


def test_an_expired_approval_cannot_be_approved(lab: Lab, lab_inv: Inventory, run: Callable[..., Lasthop]) -> None:
    lh = run(slack_inventory(lab_inv, approval_timeout=1.0))
    url, _ = lh.command("/failover", "www-a to web2", ALICE)
    lh.standin.wait_for_response(url, timeout=30)
    approve, _, ts = approval_request(lh.standin)
    time.sleep(1.5)
    late = lh.click(approve, BOB, ALERTS, ts)
    assert "expired" in texts(lh.standin.wait_for_response(late))
    assert lh.fib() == {WEB1}


def test_forged_or_stale_signatures_are_refused_and_run_nothing(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    body = lh.standin.slash_command_body("/failover", "www-a to web2", user_id=ALICE, channel_id=OPS,
                                         response_url=lh.standin.new_response_url())
    assert lh.send(body, secret="not-the-secret")[0] == 401
    stale = sign(body, SECRET, timestamp=int(time.time()) - 3600)
    assert post(lh.url, body, stale)[0] == 401
    time.sleep(0.5)
    assert lh.store.history() == [] and lh.store.recent_changes() == []


def test_refusals_are_short_and_change_nothing(lab: Lab, run: Callable[..., Lasthop]) -> None:
    lh = run()
    web3 = lh.daemon.engine.devices.host("web3")
    web3.unbind_vip(VIP_A)
    try:
        url, _ = lh.command("/failover", "www-a to web3 dry-run", ALICE)
        assert "web3 lacks 198.51.100.33 on its loopback" in texts(lh.standin.wait_for_response(url, timeout=30))
    finally:
        web3.bind_vip(VIP_A, 1)
    _, ack = lh.command("/failover", "www-a;reload", ALICE)
    assert b"is not a name" in ack and b"/failover" in ack
    _, ack = lh.command("/failover", "<!channel>", ALICE)
    assert b"<!channel>" not in ack
    _, ack = lh.command("/failover", "www-a to web2", MALLORY)
    assert b"not allowed to move services" in ack
    url, _ = lh.command("/failover", "www-q", ALICE)
    assert "www-q" in texts(lh.standin.wait_for_response(url))
    _, ack = lh.command("/vip-status", "", BOB, channel="C0RANDOM")
    assert b"does not take commands in this channel" in ack
    assert lh.fib() == {WEB1}


def test_socket_mode_runs_the_same_approval_flow(lab: Lab, lab_home: None, lab_inv: Inventory) -> None:
    inv = slack_inventory(lab_inv)
    with SlackStandIn() as standin:
        standin.install(build_manifest(inv.slack.commands, mode="socket"))
        env = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test", "SLACK_API_URL": standin.api_url}
        settings = settings_from_env(env)
        assert settings is not None and settings.socket_mode
        poster = Poster(poster_client(settings))
        daemon = Daemon(inv, StateStore(inv.state_url), poster, channel=ALERTS,
                        settings=ServeSettings(startup_grace=10.0, remind_after=0))
        ctx = slack_context(inv, daemon, poster, settings)
        handler = start_socket_mode(build_app(ctx, settings), settings)
        daemon.start()
        try:
            wait_for(lambda: daemon._ready, 30, "a complete health view")
            standin.socket_connected()
            env_id = standin.send_envelope("slash_commands", standin.slash_command_payload(
                "/failover", "www-a to web2", user_id=ALICE, channel_id=OPS,
                response_url=standin.new_response_url()))
            assert "Planning" in json.dumps(standin.wait_for_ack(env_id).payload)
            approve, _, ts = approval_request(standin)
            click = standin.send_envelope("interactive", block_action_payload(
                approve["action_id"], approve["value"], user_id=BOB, channel_id=ALERTS, message_ts=ts,
                response_url=standin.new_response_url()))
            standin.wait_for_ack(click)
            wait_for(lambda: "Done" in standin.message(ALERTS, ts)["text"], 30, "the approved move's outcome")
            assert daemon.engine.devices.router("r1").fib_next_hops(A) == {WEB2}
        finally:
            handler.close()
            daemon.stop()
            ctx.close()
