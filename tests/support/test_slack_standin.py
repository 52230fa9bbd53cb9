"""The Slack stand-in, proved against the real slack_sdk clients (and slack-bolt over Socket Mode)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient

from support.slack_standin import (
    CommandRejected,
    SlackStandIn,
    block_action_body,
    block_action_payload,
    post,
    sign,
    slash_command_body,
    slash_command_payload,
    validate_manifest,
    view_submission_body,
)

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*www-a* is down"}}]


@pytest.fixture(autouse=True)
def no_stray_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy may reroute loopback traffic, and every test must end with no thread of its own left running."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not extra, f"threads left running: {sorted(t.name for t in extra)}"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def web(slack: SlackStandIn) -> WebClient:
    return WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10)


@pytest.fixture
def unlimited() -> Iterator[SlackStandIn]:
    """A stand-in without the per-channel post limit, for tests that post to one channel in a burst."""
    with SlackStandIn(post_interval=0) as standin:
        yield standin


def test_auth_test_post_message_and_update(unlimited: SlackStandIn) -> None:
    slack, web = unlimited, WebClient(token="xoxb-test", base_url=unlimited.api_url, timeout=10)
    auth = web.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"], auth["team"]) == ("UBOT", "B1", "T1", "lab")

    first = web.chat_postMessage(channel="C1", text="failover?", blocks=BLOCKS)
    second = web.chat_postMessage(channel="C1", text="reply", thread_ts=first["ts"])
    assert first["channel"] == "C1"
    assert first["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"] == BLOCKS
    assert first["message"]["text"] == "failover?"
    assert second["message"]["thread_ts"] == first["ts"]

    posted = slack.calls_to("chat.postMessage")
    assert [c.args["text"] for c in posted] == ["failover?", "reply"]
    assert posted[0].args["blocks"] == BLOCKS  # JSON body: decoded already
    assert posted[0].token == "xoxb-test"
    assert posted[0].response["ts"] == first["ts"]
    assert posted[0].at <= posted[1].at

    updated = web.chat_update(channel="C1", ts=first["ts"], text="done", blocks=BLOCKS)
    assert (updated["channel"], updated["ts"], updated["text"]) == ("C1", first["ts"], "done")
    call = slack.wait_for_call("chat.update", lambda c: c.args["text"] == "done", timeout=5)
    assert call.args["blocks"] == BLOCKS
    assert [c.method for c in slack.calls] == ["auth.test", "chat.postMessage", "chat.postMessage", "chat.update"]


def test_form_and_multipart_bodies_are_parsed_and_blocks_decoded(slack: SlackStandIn, web: WebClient) -> None:
    web.api_call("chat.postMessage", data={"channel": "C2", "text": "form", "blocks": json.dumps(BLOCKS)})
    web.api_call("chat.postMessage", data={"channel": "C3", "text": "multi"}, files={"file": b"\x00bytes"})
    form, multipart = slack.calls_to("chat.postMessage")
    assert form.args == {"channel": "C2", "text": "form", "blocks": BLOCKS}
    assert multipart.args == {"channel": "C3", "text": "multi", "file": b"\x00bytes"}
    assert form.token == multipart.token == "xoxb-test"


def test_views_ephemeral_and_lookups(slack: SlackStandIn, web: WebClient) -> None:
    view = {"type": "modal", "callback_id": "confirm", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
    opened = web.views_open(trigger_id="T.1", view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["callback_id"] == "confirm"
    updated = web.views_update(view_id=opened["view"]["id"], view=view)
    assert updated["view"]["id"] == opened["view"]["id"]
    home = web.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    assert home["view"]["type"] == "home"
    assert slack.calls_to("views.open")[0].args["view"] == view

    eph = web.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert float(eph["message_ts"]) > 0
    slack.users["U1"] = {"real_name": "Ops Person"}
    assert web.users_info(user="U1")["user"]["real_name"] == "Ops Person"
    assert web.users_info(user="UBOT")["user"]["is_bot"] is True
    assert web.conversations_info(channel="C1")["channel"]["id"] == "C1"
    assert slack.calls_to("users.info")[0].args == {"user": "U1"}


def test_usergroups_users_list(slack: SlackStandIn, web: WebClient) -> None:
    slack.usergroups["S0OPS"] = ["U0ALICE", "U0BOB"]
    slack.usergroups["S0EMPTY"] = []
    assert web.usergroups_users_list(usergroup="S0OPS")["users"] == ["U0ALICE", "U0BOB"]
    assert web.usergroups_users_list(usergroup="S0EMPTY")["users"] == []
    slack.usergroups["S0OPS"].remove("U0BOB")  # membership as it is now, at each call
    assert web.usergroups_users_list(usergroup="S0OPS")["users"] == ["U0ALICE"]
    with pytest.raises(SlackApiError) as caught:
        web.usergroups_users_list(usergroup="S0NONE")
    assert caught.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as caught:
        web.api_call("usergroups.users.list")
    assert caught.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as caught:
        WebClient(token="xoxb-wrong", base_url=slack.api_url, timeout=10).usergroups_users_list(usergroup="S0OPS")
    assert caught.value.response["error"] == "invalid_auth"
    calls = slack.calls_to("usergroups.users.list")
    assert [c.args.get("usergroup") for c in calls] == ["S0OPS", "S0EMPTY", "S0OPS", "S0NONE", None, "S0OPS"]


def test_wrong_token_and_unknown_method(slack: SlackStandIn) -> None:
    bad = WebClient(token="xoxb-wrong", base_url=slack.api_url, timeout=10)
    with pytest.raises(SlackApiError) as caught:
        bad.chat_postMessage(channel="C1", text="x")
    assert caught.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as caught:
        WebClient(base_url=slack.api_url, timeout=10).auth_test()
    assert caught.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as caught:
        WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10).api_call("nope.nothing")
    assert caught.value.response["error"] == "unknown_method"
    # The app token is only good for apps.connections.open.
    with pytest.raises(SlackApiError):
        WebClient(token="xapp-test", base_url=slack.api_url, timeout=10).auth_test()
    assert [(c.method, c.token) for c in slack.calls] == [
        ("chat.postMessage", "xoxb-wrong"),
        ("auth.test", None),
        ("nope.nothing", "xoxb-test"),
        ("auth.test", "xapp-test"),
    ]


def test_rate_limit_without_retry_handler(slack: SlackStandIn, web: WebClient) -> None:
    slack.rate_limit("chat.postMessage", 1, retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C1", text="x")
    response = caught.value.response
    assert response.status_code == 429
    assert response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "7"
    assert web.chat_postMessage(channel="C1", text="x")["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 200]


def test_rate_limit_with_retry_handler(slack: SlackStandIn) -> None:
    client = WebClient(
        token="xoxb-test",
        base_url=slack.api_url,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    slack.rate_limit("chat.postMessage", 2, retry_after=0)  # the handler sleeps Retry-After + random() s
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 429, 200]


def test_response_url_posts(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    assert url.startswith(f"http://127.0.0.1:{slack.port}/response/")
    hook = WebhookClient(url, timeout=10)
    assert hook.send(text="working on it", response_type="ephemeral").status_code == 200
    assert slack.wait_for_response(url, timeout=5) == [{"text": "working on it", "response_type": "ephemeral"}]
    for n in range(4):
        assert hook.send(text=f"n{n}", replace_original=True).status_code == 200
    sixth = hook.send(text="too many")
    assert (sixth.status_code, json.loads(sixth.body)["error"]) == (404, "used_too_many_times")
    assert len(slack.wait_for_response(url, count=5, timeout=5)) == 5

    status, headers, body = post(f"http://127.0.0.1:{slack.port}/response/999", b"{}", {})
    assert (status, json.loads(body)["error"]) == (404, "expired_url")
    assert headers["content-type"].startswith("application/json")
    with pytest.raises(AssertionError, match="1 of 2"):
        other = slack.new_response_url()
        post(other, json.dumps({"text": "one"}).encode(), {"Content-Type": "application/json"})
        slack.wait_for_response(other, count=2, timeout=0.2)
    with pytest.raises(ValueError):
        post("http://192.0.2.1/slack/events", b"", {})


def test_wait_for_call_times_out_with_the_calls_seen(slack: SlackStandIn, web: WebClient) -> None:
    web.auth_test()
    with pytest.raises(AssertionError, match=r"(?s)no matching chat.update call.*auth.test"):
        slack.wait_for_call("chat.update", timeout=0.2)


def test_sign_verifies_with_slack_sdk() -> None:
    body = slash_command_body("/lasthop", "status", user_id="U1", channel_id="C1", response_url="http://x/1")
    headers = sign(body, "s3cret")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    assert not SignatureVerifier("s3cret").is_valid_request(body + b"x", headers)
    old = sign(body, "s3cret", timestamp=int(time.time()) - 600)
    assert not SignatureVerifier("s3cret").is_valid_request(body, old)
    assert sign(b'{"type":"event_callback"}', "s")["Content-Type"] == "application/json"


def test_request_builders() -> None:
    body = slash_command_body(
        "/lasthop", "failover www-a", user_id="U1", channel_id="C1", response_url="http://r/1", user_name="ops"
    )
    fields = parse_qsl(body.decode())
    assert [k for k, _ in fields] == [
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    ]
    assert b"command=%2Flasthop" in body and b"text=failover+www-a" in body
    assert dict(fields) == slash_command_payload(
        "/lasthop", "failover www-a", user_id="U1", channel_id="C1", response_url="http://r/1", user_name="ops"
    )

    action = block_action_body(
        "approve", "chg-1", user_id="U2", channel_id="C1", message_ts="1700000000.000100", response_url="http://r/2"
    )
    (key, raw), *rest = parse_qsl(action.decode())
    assert key == "payload" and not rest
    payload = json.loads(raw)
    assert payload["type"] == "block_actions"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == "1700000000.000100" and payload["message"]["blocks"] == []
    assert payload["actions"][0] | {"action_ts": "-"} == {
        "action_id": "approve",
        "block_id": "b",
        "text": {"type": "plain_text", "text": "chg-1", "emoji": True},
        "value": "chg-1",
        "type": "button",
        "action_ts": "-",
    }
    assert payload["user"]["id"] == "U2" and payload["response_url"] == "http://r/2"
    as_dict = block_action_payload(
        "approve", "chg-1", user_id="U2", channel_id="C1", message_ts="1700000000.000100", response_url="http://r/2"
    )
    assert as_dict.keys() == payload.keys()

    values = {"reason": {"text": {"type": "plain_text_input", "value": "maintenance"}}}
    submission = json.loads(
        dict(parse_qsl(view_submission_body("confirm", values, user_id="U3", private_metadata="m").decode()))["payload"]
    )
    assert submission["type"] == "view_submission"
    assert submission["view"]["callback_id"] == "confirm"
    assert submission["view"]["private_metadata"] == "m"
    assert submission["view"]["state"]["values"] == values


def _bolt_headers(body: bytes, secret: str) -> dict[str, str | Sequence[str]]:
    return {**sign(body, secret)}


def test_signed_bodies_route_in_a_bolt_app(slack: SlackStandIn) -> None:
    from slack_bolt import App, BoltRequest

    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bolt-test")
    app = App(
        client=WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10),
        signing_secret="s3cret",
        process_before_response=True,
        listener_executor=executor,
    )
    seen: list[tuple[str, Any]] = []

    @app.command("/lasthop")
    def command(ack: Any, command: dict[str, Any]) -> None:
        ack()
        seen.append(("command", (command["text"], command["user_id"], command["channel_id"])))

    @app.action("approve")
    def approve(ack: Any, body: dict[str, Any]) -> None:
        ack()
        seen.append(("action", (body["actions"][0]["value"], body["container"]["message_ts"])))

    @app.view("confirm")
    def confirm(ack: Any, view: dict[str, Any]) -> None:
        ack()
        seen.append(("view", view["state"]["values"]["reason"]["text"]["value"]))

    url = slack.new_response_url()
    bodies = [
        slash_command_body("/lasthop", "status", user_id="U1", channel_id="C1", response_url=url),
        block_action_body("approve", "chg-1", user_id="U1", channel_id="C1", message_ts="1.000100", response_url=url),
        view_submission_body(
            "confirm", {"reason": {"text": {"type": "plain_text_input", "value": "mw"}}}, user_id="U1"
        ),
    ]
    try:
        for body in bodies:
            response = app.dispatch(BoltRequest(body=body.decode(), headers=_bolt_headers(body, "s3cret")))
            assert response.status == 200, response.body
        forged = app.dispatch(BoltRequest(body=bodies[0].decode(), headers=_bolt_headers(bodies[0], "wrong")))
        assert forged.status == 401
    finally:
        executor.shutdown(wait=True)
    assert seen == [("command", ("status", "U1", "C1")), ("action", ("chg-1", "1.000100")), ("view", "mw")]


def _socket_mode_client(slack: SlackStandIn) -> SocketModeClient:
    return SocketModeClient(app_token=slack.app_token, web_client=WebClient(base_url=slack.api_url, timeout=10))


def test_socket_mode_client_roundtrip(slack: SlackStandIn) -> None:
    received: list[SocketModeRequest] = []
    client = _socket_mode_client(slack)

    def listener(c: SocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "ok"}))

    client.socket_mode_request_listeners.append(listener)  # type: ignore[arg-type]
    try:
        client.connect()
        slack.socket_connected(timeout=5)
        payload = slash_command_payload(
            "/lasthop", "status", user_id="U1", channel_id="C1", response_url=slack.new_response_url()
        )
        envelope_id = slack.send_envelope("slash_commands", payload)
        ack = slack.wait_for_ack(envelope_id, timeout=5)
        assert ack.payload == {"text": "ok"}
        assert ack.at >= slack.calls_to("apps.connections.open")[0].at
        assert len(received) == 1
        assert (received[0].type, received[0].payload, received[0].accepts_response_payload) == (
            "slash_commands",
            payload,
            True,
        )
        assert received[0].retry_attempt == 0 and received[0].retry_reason == ""
        # slack_sdk pings right after the handshake (and again from its monitor): answered before the ack.
        assert slack.pings_received >= 1
        assert slack.calls_to("apps.connections.open")[0].token == "xapp-test"

        events_id = slack.send_envelope("events_api", {"type": "event_callback"}, retry_attempt=1, retry_reason="x")
        assert slack.wait_for_ack(events_id, timeout=5).payload == {"text": "ok"}
        assert received[1].accepts_response_payload is False and received[1].retry_attempt == 1
    finally:
        client.close()


def test_bolt_app_over_socket_mode(slack: SlackStandIn) -> None:
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bolt-test")
    app = App(client=WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10), listener_executor=executor)

    @app.command("/lasthop")
    def command(ack: Any, respond: Any, say: Any, command: dict[str, Any]) -> None:
        ack(f"working on {command['text']}")
        respond("done")
        say("posted to channel")

    handler = SocketModeHandler(app, app_token="xapp-test")
    try:
        handler.connect()  # type: ignore[no-untyped-call]
        slack.socket_connected(timeout=5)
        url = slack.new_response_url()
        envelope_id = slack.send_envelope(
            "slash_commands",
            slash_command_payload("/lasthop", "status", user_id="U1", channel_id="C1", response_url=url),
        )
        assert slack.wait_for_ack(envelope_id, timeout=5).payload == {"text": "working on status"}
        assert slack.wait_for_response(url, timeout=5)[0]["text"] == "done"
        posted = slack.wait_for_call("chat.postMessage", timeout=5)
        assert (posted.args["channel"], posted.args["text"]) == ("C1", "posted to channel")
        assert slack.calls[0].method == "auth.test"  # bolt verifies its token at App() time
    finally:
        handler.close()  # type: ignore[no-untyped-call]
        executor.shutdown(wait=True)


class _RawWebSocket:
    """A bare RFC 6455 client, to check the server side without slack_sdk's leniency."""

    def __init__(self, port: int, key: str = "dGhlIHNhbXBsZSBub25jZQ==") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(
            (
                "GET /link?ticket=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the handshake"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.head = head.decode()

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        b1, b2 = self._read(2)
        assert not b2 & 0x80, "server frames must not be masked"
        length = b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        return b1 & 0x0F, self._read(length)

    def send(self, opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> None:
        header = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        length = bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n)
        if not mask:
            self.sock.sendall(header + length + payload)
            return
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + bytes([length[0] | 0x80]) + length[1:] + key + masked)

    def close(self) -> None:
        self.sock.close()


def test_raw_websocket_protocol(slack: SlackStandIn) -> None:
    ws = _RawWebSocket(slack.port)
    try:
        assert ws.head.startswith("HTTP/1.1 101")
        expected = base64.b64encode(
            hashlib.sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        ).decode()
        assert expected == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's own example
        assert f"Sec-WebSocket-Accept: {expected}" in ws.head
        opcode, data = ws.frame()
        assert opcode == 0x1
        assert json.loads(data) == {
            "type": "hello",
            "num_connections": 1,
            "connection_info": {"app_id": "A1"},
            "debug_info": {"host": "standin"},
        }
        ws.send(0x9, b"are you there")
        opcode, data = ws.frame()
        while opcode == 0x9:  # a server ping may come first
            opcode, data = ws.frame()
        assert (opcode, data) == (0xA, b"are you there")

        big = {"payload": {"text": "x" * 70_000}}  # 64-bit length frame
        envelope_id = slack.send_envelope("interactive", big)
        opcode, data = ws.frame()
        while opcode == 0x9:
            opcode, data = ws.frame()
        envelope = json.loads(data)
        assert envelope["envelope_id"] == envelope_id and envelope["payload"] == big
        ws.send(0x1, json.dumps({"envelope_id": envelope_id}).encode())
        assert slack.wait_for_ack(envelope_id, timeout=5).payload is None

        ws.send(0x1, b'{"type": "not an ack"}')
        ws.send(0x8, struct.pack("!H", 1000) + b"bye")
        opcode, data = ws.frame()
        while opcode == 0x9:
            opcode, data = ws.frame()
        assert (opcode, data) == (0x8, struct.pack("!H", 1000))
        assert slack.socket_messages == [{"type": "not an ack"}]
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(0x1, b"{}", True, False)], 1002),  # unmasked client frame
        ([(0x1, b'{"a":', False, True)], 1003),  # fragmented message (fin=0)
        ([(0x2, b"\x00", True, True)], 1003),  # binary
    ],
)
def test_raw_websocket_rejects(slack: SlackStandIn, frames: list[tuple[int, bytes, bool, bool]], code: int) -> None:
    ws = _RawWebSocket(slack.port)
    try:
        assert ws.frame()[0] == 0x1  # hello
        for opcode, payload, fin, mask in frames:
            ws.send(opcode, payload, fin=fin, mask=mask)
        got, data = ws.frame()
        while got == 0x9:
            got, data = ws.frame()
        assert got == 0x8 and struct.unpack("!H", data[:2])[0] == code
        with pytest.raises(AssertionError, match="no Socket Mode connection"):
            slack.socket_connected(timeout=0.2)
    finally:
        ws.close()


def test_bad_upgrade_is_refused(slack: SlackStandIn) -> None:
    with socket.create_connection(("127.0.0.1", slack.port), timeout=5) as sock:
        sock.sendall(b"GET /link HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")


def test_close_ends_live_connections_and_threads() -> None:
    before = set(threading.enumerate())
    standin = SlackStandIn().start()
    ws = _RawWebSocket(standin.port)
    idle = socket.create_connection(("127.0.0.1", standin.port), timeout=5)  # an idle keep-alive connection
    try:
        standin.socket_connected(timeout=5)
        assert ws.frame()[0] == 0x1
        standin.close()
        opcode, data = ws.frame()
        while opcode == 0x9:
            opcode, data = ws.frame()
        assert (opcode, struct.unpack("!H", data[:2])[0]) == (0x8, 1001)
        assert set(threading.enumerate()) - before == set()
        standin.close()  # idempotent
    finally:
        ws.close()
        idle.close()


# -- the per-channel post limit ---------------------------------------------------------------------------------


def test_one_post_per_channel_per_second_by_default(slack: SlackStandIn, web: WebClient) -> None:
    assert web.chat_postMessage(channel="C1", text="first")["ok"]
    with pytest.raises(SlackApiError) as caught:
        web.chat_postMessage(channel="C1", text="too soon")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] == "1"  # whole seconds, never 0
    assert web.chat_postMessage(channel="C2", text="another channel")["ok"]
    assert web.chat_update(channel="C1", ts=slack.calls_to("chat.postMessage")[0].response["ts"], text="edit")["ok"]
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [200, 429, 200]
    assert [c.args["text"] for c in slack.rate_limited()] == ["too soon"]
    assert slack.rate_limited("chat.update") == []
    assert [m["text"] for m in slack.channel_messages("C1")] == ["edit"]  # the refused post is no message


def test_the_post_limit_clears_after_the_interval_and_a_retry_handler_waits_it_out() -> None:
    with SlackStandIn(post_interval=0.3) as slack:
        web = WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10)
        web.chat_postMessage(channel="C1", text="a")
        with pytest.raises(SlackApiError) as caught:
            web.chat_postMessage(channel="C1", text="b")
        assert caught.value.response.headers["Retry-After"] == "1"
        time.sleep(0.35)
        assert web.chat_postMessage(channel="C1", text="c")["ok"]
        patient = WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10,
                            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
        assert patient.chat_postMessage(channel="C1", text="d")["ok"]  # waited Retry-After, then went through
        assert [c.status for c in slack.calls_to("chat.postMessage")] == [200, 429, 200, 429, 200]
        assert len(slack.rate_limited("chat.postMessage")) == 2


def test_posts_racing_to_one_channel_get_one_through() -> None:
    with SlackStandIn() as slack:
        web = WebClient(token="xoxb-test", base_url=slack.api_url, timeout=10)

        def post(n: int) -> int:
            try:
                return int(web.chat_postMessage(channel="C1", text=f"n{n}").status_code)
            except SlackApiError as e:
                return int(e.response.status_code)

        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="racer") as pool:
            statuses = sorted(pool.map(post, range(4)))
        assert statuses == [200, 429, 429, 429]
        assert len(slack.channel_messages("C1")) == 1


def test_zero_post_interval_turns_the_limit_off(unlimited: SlackStandIn) -> None:
    web = WebClient(token="xoxb-test", base_url=unlimited.api_url, timeout=10)
    for n in range(5):
        web.chat_postMessage(channel="C1", text=f"n{n}")
    assert unlimited.rate_limited() == []


def test_scripted_rate_limits_count_as_rate_limited(slack: SlackStandIn, web: WebClient) -> None:
    slack.rate_limit("auth.test", 1)
    with pytest.raises(SlackApiError):
        web.auth_test()
    assert [(c.method, c.status) for c in slack.rate_limited()] == [("auth.test", 429)]


# -- what channels show --------------------------------------------------------------------------------------------


def test_channels_keep_their_messages_threads_and_updates(unlimited: SlackStandIn) -> None:
    slack, web = unlimited, WebClient(token="xoxb-test", base_url=unlimited.api_url, timeout=10)
    alert = web.chat_postMessage(channel="C1", text="web1 is down", blocks=BLOCKS)["ts"]
    other = web.chat_postMessage(channel="C1", text="www-b moved")["ts"]
    first = web.chat_postMessage(channel="C1", text="re-checked", thread_ts=alert)["ts"]
    second = web.chat_postMessage(channel="C1", text="moved www-a", thread_ts=alert)["ts"]
    web.chat_postMessage(channel="C2", text="elsewhere")

    assert [m["text"] for m in slack.channel_messages("C1")] == ["web1 is down", "www-b moved"]
    assert [m["ts"] for m in slack.thread("C1", alert)] == [first, second]
    assert all(m["thread_ts"] == alert for m in slack.thread("C1", alert))
    assert slack.thread("C1", other) == [] and slack.thread("C2", alert) == []

    web.chat_update(channel="C1", ts=alert, text="web1 is back", blocks=[])
    web.chat_update(channel="C1", ts=second, text="moved www-a to web2")
    now = slack.message("C1", alert)
    assert now is not None and (now["text"], now["blocks"], now["ts"]) == ("web1 is back", [], alert)
    reply = slack.message("C1", second)
    assert reply is not None and reply["text"] == "moved www-a to web2"
    assert slack.message("C2", alert) is None  # a ts names a message in one channel only
    now["text"] = "changed by the test"  # what the stand-in hands out are copies
    assert slack.message("C1", alert) == {**now, "text": "web1 is back"}


def test_an_update_keeps_what_it_leaves_out(unlimited: SlackStandIn) -> None:
    web = WebClient(token="xoxb-test", base_url=unlimited.api_url, timeout=10)
    ts = web.chat_postMessage(channel="C1", text="plan", blocks=BLOCKS)["ts"]
    web.api_call("chat.update", json={"channel": "C1", "ts": ts, "text": "plan (approved)"})
    now = unlimited.message("C1", ts)
    assert now is not None and (now["text"], now["blocks"]) == ("plan (approved)", BLOCKS)


def test_updating_an_unknown_message(slack: SlackStandIn, web: WebClient) -> None:
    ts = web.chat_postMessage(channel="C1", text="x")["ts"]
    for channel, missing in (("C1", "1.0"), ("C2", ts)):
        with pytest.raises(SlackApiError) as caught:
            web.chat_update(channel=channel, ts=missing, text="y")
        assert caught.value.response["error"] == "message_not_found"
    assert [c.response["error"] for c in slack.calls_to("chat.update")] == ["message_not_found"] * 2


def test_a_reply_to_no_message_is_taken_and_shows_nowhere(unlimited: SlackStandIn) -> None:
    web = WebClient(token="xoxb-test", base_url=unlimited.api_url, timeout=10)
    answer = web.chat_postMessage(channel="C1", text="lost", thread_ts="1600000000.000100")
    assert answer["ok"] and answer["message"]["thread_ts"] == "1600000000.000100"
    assert unlimited.channel_messages("C1") == []
    assert unlimited.message("C1", "1600000000.000100") is None
    assert [m["text"] for m in unlimited.thread("C1", "1600000000.000100")] == ["lost"]


# -- manifests and the installed app -------------------------------------------------------------------------------


def _manifest(**settings: Any) -> dict[str, Any]:
    commands: list[dict[str, Any]] = [
        {"command": "/lasthop", "description": "everything", "usage_hint": "status|failover", "should_escape": False},
        {"command": "/failover", "description": "move a service"},
    ]
    return {
        "display_information": {"name": "lasthop"},
        "features": {"bot_user": {"display_name": "lasthop"}, "slash_commands": commands},
        "oauth_config": {"scopes": {"bot": ["commands", "chat:write"]}},
        "settings": {"interactivity": {"is_enabled": True}, "socket_mode_enabled": True, **settings},
    }


def _http_manifest() -> dict[str, Any]:
    manifest = _manifest(socket_mode_enabled=False)
    for command in manifest["features"]["slash_commands"]:
        command["url"] = "https://lasthop.example.net/slack/events"
    manifest["settings"]["interactivity"]["request_url"] = "https://lasthop.example.net/slack/events"
    return manifest


def _broken(change: Any) -> dict[str, Any]:
    manifest = _manifest()
    change(manifest)
    return manifest


@pytest.mark.parametrize(
    ("manifest", "pointer", "message"),
    [
        (_broken(lambda m: m["features"]["slash_commands"][1].update(command="/status")),
         "/features/slash_commands/1/command", "the slash command has an invalid name"),
        (_broken(lambda m: m["features"]["slash_commands"][0].update(command="/help")),
         "/features/slash_commands/0/command", "the slash command has an invalid name"),
        (_broken(lambda m: m["features"]["slash_commands"][0].update(command="/LastHop")),
         "/features/slash_commands/0/command", "the slash command has an invalid name"),
        (_broken(lambda m: m["features"]["slash_commands"][0].update(command="lasthop")),
         "/features/slash_commands/0/command", "the slash command has an invalid name"),
        (_broken(lambda m: m["features"]["slash_commands"][0].update(command="/" + "x" * 32)),
         "/features/slash_commands/0/command", "the slash command has an invalid name"),
        (_broken(lambda m: m["features"]["slash_commands"][1].update(command="/lasthop")),
         "/features/slash_commands/1/command", "the slash command is already in the manifest"),
        (_broken(lambda m: m["features"]["slash_commands"][1].pop("command")),
         "/features/slash_commands/1/command", "the slash command needs a command"),
        (_broken(lambda m: m["features"]["slash_commands"][1].pop("description")),
         "/features/slash_commands/1/description", "the slash command needs a description"),
        (_broken(lambda m: m["display_information"].pop("name")),
         "/display_information/name", "the app needs a name of 1 to 35 characters"),
        (_broken(lambda m: m.pop("display_information")),
         "/display_information/name", "the app needs a name of 1 to 35 characters"),
        (_broken(lambda m: m["features"]["bot_user"].pop("display_name")),
         "/features/bot_user/display_name", "the bot user needs a display name of 1 to 80 characters"),
        (_broken(lambda m: m["oauth_config"]["scopes"]["bot"].remove("commands")),
         "/oauth_config/scopes/bot", "slash commands need the commands scope"),
        (_broken(lambda m: m["settings"].update(socket_mode_enabled=False)),
         "/features/slash_commands/0/url", "the slash command needs a Request URL when Socket Mode is off"),
        (_broken(lambda m: m["settings"].pop("socket_mode_enabled")),
         "/settings/interactivity", "Interactivity requires a Request URL"),
        (_broken(lambda m: m["features"]["slash_commands"][0].update(url="http://lasthop.example.net/slack/events")),
         "/features/slash_commands/0/url", "the Request URL must be an https:// URL"),
        ("not a manifest", "/", "the manifest must be a JSON object"),
    ],
)
def test_validate_manifest_objects_as_slack_does(manifest: Any, pointer: str, message: str) -> None:
    assert {"message": message, "pointer": pointer} in validate_manifest(manifest)


def test_validate_manifest_takes_good_manifests() -> None:
    assert validate_manifest(_manifest()) == []
    assert validate_manifest(_http_manifest()) == []
    no_commands = _broken(lambda m: m["features"].pop("slash_commands"))
    no_commands["oauth_config"]["scopes"]["bot"].remove("commands")
    assert validate_manifest(no_commands) == []
    http = _http_manifest()
    http["settings"]["interactivity"]["request_url"] = "http://lasthop.example.net/slack/events"
    assert validate_manifest(http) == [
        {"message": "the Request URL must be an https:// URL", "pointer": "/settings/interactivity/request_url"}
    ]


def test_apps_manifest_validate_over_the_web_api(slack: SlackStandIn) -> None:
    config = WebClient(token="xoxe.xoxp-any-config-token", base_url=slack.api_url, timeout=10)
    assert config.apps_manifest_validate(manifest=_manifest())["ok"]  # sent as a JSON string in a form
    assert config.api_call("apps.manifest.validate", json={"manifest": _http_manifest()})["ok"]
    reserved = _broken(lambda m: m["features"]["slash_commands"][0].update(command="/status"))
    with pytest.raises(SlackApiError) as caught:
        config.apps_manifest_validate(manifest=json.dumps(reserved))
    assert caught.value.response.data == {
        "ok": False,
        "error": "invalid_manifest",
        "errors": [
            {"message": "the slash command has an invalid name", "pointer": "/features/slash_commands/0/command"},
        ],
    }
    with pytest.raises(SlackApiError) as caught:
        config.apps_manifest_validate(manifest="{not json")
    assert caught.value.response["error"] == "invalid_manifest"
    with pytest.raises(SlackApiError) as caught:
        config.api_call("apps.manifest.validate", params={})
    assert caught.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as caught:
        WebClient(base_url=slack.api_url, timeout=10).apps_manifest_validate(manifest=_manifest())
    assert caught.value.response["error"] == "not_authed"
    assert slack.calls_to("apps.manifest.validate")[0].args["manifest"] == _manifest()


def test_install_and_the_commands_slack_sends(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    with pytest.raises(CommandRejected, match=r"^/lasthop is not a valid command$"):
        slack.slash_command_payload("/lasthop", "status", user_id="U1", channel_id="C1", response_url=url)
    slack.install(_manifest())
    assert slack.installed_commands == {"/lasthop", "/failover"}
    payload = slack.slash_command_payload("/failover", "www-a", user_id="U1", channel_id="C1", response_url=url)
    assert payload == slash_command_payload("/failover", "www-a", user_id="U1", channel_id="C1", response_url=url)
    body = slack.slash_command_body("/lasthop", "status", user_id="U1", channel_id="C1", response_url=url)
    assert body == slash_command_body("/lasthop", "status", user_id="U1", channel_id="C1", response_url=url)
    with pytest.raises(CommandRejected, match=r"^/status is one of Slack's own commands"):
        slack.slash_command_body("/status", "", user_id="U1", channel_id="C1", response_url=url)
    with pytest.raises(CommandRejected, match=r"^/vip-status is not a valid command$"):
        slack.slash_command_body("/vip-status", "", user_id="U1", channel_id="C1", response_url=url)
    assert isinstance(CommandRejected("x"), AssertionError)


def test_install_refuses_what_slack_refuses(slack: SlackStandIn) -> None:
    slack.install(_manifest())
    reserved = _broken(lambda m: m["features"]["slash_commands"][0].update(command="/status"))
    with pytest.raises(AssertionError, match=r"/features/slash_commands/0/command: the slash command has an invalid"):
        slack.install(reserved)
    assert slack.installed_commands == {"/lasthop", "/failover"}  # the refused manifest changed nothing
