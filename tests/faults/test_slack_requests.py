"""Fault suite: what reaches lasthop's Slack endpoint that Slack did not send, or sent twice.

The real Bolt app, wired as `lasthop serve` wires it (handlers.app.http_handler behind
bot.web), over a real workflow and engine on memory devices, against the Slack stand-in.
Requests go over raw sockets on 127.0.0.1, so a dropped connection is seen as one. Every
request must get an HTTP answer, never a 500; a bad signature is a 401, a malformed signed
body a 4xx; no log line carries a traceback; and nothing runs: no router command, no audit
record, no Slack call, no background work.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.ledger import Tally
from support.memory import Rig, memory_rig
from support.slack_fakes import ALERTS, ALICE, BOB, OPS, ROLES, WAIT, RecordingExecutor
from support.slack_standin import (
    VERIFICATION_TOKEN,
    SlackStandIn,
    block_action_payload,
    sign,
    slash_command_payload,
)

from bot.chat import Actor
from bot.commands import FailoverCommand
from bot.health.state import Health
from bot.manifest import build_manifest
from bot.metrics import Metrics
from bot.views import Phrasing
from bot.web import make_server, serve_in_background
from bot.workflow import Workflow
from handlers.app import build_app, http_handler, poster_client, settings_from_env, web_client
from handlers.context import SlackAccess, SlackContext
from handlers.poster import Poster

LEDGER_GROUP = "Slack requests"
SECRET = "fault-suite-signing-secret-0123"
GARBAGE_EXAMPLES = 300  # hypothesis bodies per garbage property (two properties: unsigned and signed)
FIXED_CASES = 44  # hand-written cases below (parametrized ones counted one by one), replays included
READ_TIMEOUT = 0.5  # the server's, so the slow-client case is answered quickly
FORM = "application/x-www-form-urlencoded"
HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
GARBAGE = settings(max_examples=GARBAGE_EXAMPLES, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large])


@dataclass
class Front:
    port: int
    standin: SlackStandIn
    rig: Rig
    workflow: Workflow
    executor: RecordingExecutor

    def footprint(self) -> tuple[int, int, int, int, int]:
        """What running something leaves: router lines, audit records, Slack calls, answers, background jobs."""
        slack_calls = sum(1 for c in self.standin.calls if c.method != "auth.test")
        answers = sum(len(v) for v in self.standin.responses.values())
        return (len(self.rig.routers["r1"].commands), len(self.rig.store.history(1000)), slack_calls, answers,
                len(self.executor.futures))

    def exchange(self, raw: bytes, *, close_write: bool = True) -> tuple[int, bytes]:
        """Send `raw` as it is; the status and body of the answer. Fails if the connection gives none."""
        data = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=WAIT) as s:
            try:
                s.sendall(raw)
                if close_write:
                    s.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and len(data) < 1 << 20:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError as e:
                pytest.fail(f"connection broke ({type(e).__name__}) after {len(data)} bytes of answer")
        assert data.startswith(b"HTTP/1."), f"no HTTP answer: the connection was dropped ({data[:60]!r})"
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"traceback" not in data.lower()
        return int(head.split(b" ", 2)[1]), body

    def post(self, body: bytes, headers: dict[str, str], *, length: int | None = None,
             close_write: bool = True) -> tuple[int, bytes]:
        lines = [b"POST /slack/events HTTP/1.1", b"Host: 127.0.0.1"]
        lines += [f"{k}: {v}".encode("latin-1") for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}".encode())
        return self.exchange(b"\r\n".join(lines) + b"\r\n\r\n" + body, close_write=close_write)

    def send(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        return self.post(body, headers, length=len(body))


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    tmp: Path = tmp_path_factory.mktemp("faults-slack")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            mp.delenv(name, raising=False)  # loopback only
        with SlackStandIn() as standin:
            inv = inventory_from_text(tmp, THREE_HOSTS + ROLES)
            standin.install(build_manifest(inv.slack.commands, mode="http",
                                           request_url="https://lasthop.example.net/slack/events"))
            settings_ = settings_from_env({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                           "SLACK_API_URL": standin.api_url})
            assert settings_ is not None
            rig = memory_rig(inv, tmp, HOME, {("www-a", "web1"): Health.DOWN})
            client = web_client(settings_)
            access = SlackAccess(inv.slack, client)
            poster = Poster(poster_client(settings_))
            workflow = Workflow(inv, rig.engine, rig.store, access=access, out=poster, alert_channel=ALERTS,
                                phrasing=Phrasing(inv.slack.commands))
            executor = RecordingExecutor()
            ctx = SlackContext(workflow, client, poster, access, executor=executor)
            app = build_app(ctx, settings_)
            server = make_server("127.0.0.1", 0, Metrics(), lambda: True,
                                 {"/slack/events": http_handler(app, SECRET)}, read_timeout=READ_TIMEOUT)
            serve_in_background(server)
            try:
                yield Front(server.server_address[1], standin, rig, workflow, executor)
            finally:
                server.shutdown()
                server.server_close()
                ctx.close()
                rig.close()


@pytest.fixture(autouse=True)
def _case(tally: Tally) -> Iterator[None]:
    """Every test here is a case of the figures; one request unless it counts its own."""
    yield
    if tally.runs == 0:
        tally.run()


@pytest.fixture
def quiet(front: Front, tally: Tally, caplog: pytest.LogCaptureFixture,
          capsys: pytest.CaptureFixture[str]) -> Iterator[Front]:
    """`front`, checked after the test: nothing ran, nothing logged a traceback."""
    caplog.set_level(logging.INFO)
    before, applies = front.footprint(), front.rig.routers["r1"].applies
    yield front
    tally.unauthorised += front.rig.routers["r1"].applies - applies  # a move for a request Slack never sent
    assert front.footprint() == before, "a refused request left a trace (router, audit, Slack or work)"
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in capsys.readouterr().err
    assert SECRET not in caplog.text


def signed(body: bytes, content_type: str | None = None, *, age: int = 0) -> dict[str, str]:
    headers = sign(body, SECRET, timestamp=int(time.time()) - age)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def command_body(text: str = "www-a to web2", **fields: Any) -> bytes:
    payload = slash_command_payload("/failover", text, user_id=ALICE, channel_id=OPS,
                                    response_url="http://127.0.0.1:9/nowhere")
    payload.update(fields)
    return urlencode({k: v for k, v in payload.items() if v is not None}).encode()


def click_payload(action_id: str = "lh.approve.0", value: str = "apr-none", **response: str) -> dict[str, Any]:
    return block_action_payload(action_id, value, user_id=BOB, channel_id=ALERTS, message_ts="1.0",
                                response_url=response.get("url", "http://127.0.0.1:9/nowhere"))


def payload_body(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize("how", ["forged", "stale", "future", "no signature", "no timestamp", "nothing",
                                 "timestamp not a number", "signature not hex", "non-ascii signature"])
def test_a_request_slack_did_not_sign_now_is_a_401(quiet: Front, how: str) -> None:
    body = command_body()
    good = signed(body)
    headers = {
        "forged": sign(body, "not-the-secret"),
        "stale": signed(body, age=301),
        "future": signed(body, age=-301),
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "nothing": {"Content-Type": FORM},
        "timestamp not a number": {**good, "X-Slack-Request-Timestamp": "12e9"},
        "signature not hex": {**good, "X-Slack-Signature": "v0=" + "z" * 64},
        "non-ascii signature": {**good, "X-Slack-Signature": "v0=" + "é" * 64},
    }[how]
    status, answer = quiet.send(body, headers)
    assert status == 401 and len(answer) < 80


def test_the_unsigned_body_that_broke_the_connection_is_a_401(quiet: Front) -> None:
    assert quiet.send(b"payload=%7B", {"Content-Type": FORM})[0] == 401


def test_a_signature_over_other_bytes_is_a_401(quiet: Front) -> None:
    body = command_body()
    assert quiet.send(body.replace(b"web2", b"web3"), signed(body))[0] == 401


# ---------------------------------------------------------------- bodies that are not what Slack sends


@pytest.mark.parametrize("body, content_type", [
    (b"payload=%7B", FORM),
    (b"payload=" + quote("[1, 2]").encode(), FORM),
    (b"payload=" + quote('"a string"').encode(), FORM),
    (payload_body({"type": "block_actions"}), FORM),  # no user, no actions
    (payload_body({**click_payload(), "actions": "lh.approve.0"}), FORM),
    (payload_body({**click_payload(), "user": "U0BOB"}), FORM),
    (payload_body({**click_payload(), "channel": ["C0ALERTS"]}), FORM),
    (payload_body({**click_payload(), "type": "no_such_type"}), FORM),
    (payload_body({"type": "view_submission", "user": {"id": ALICE}, "view": {"state": []}}), FORM),
    (command_body(user_id=None), FORM),
    (command_body(command="failover"), FORM),
    (command_body() + b"&command=/lasthop", FORM),  # which command is it?
    (b"just=a&form=", FORM),
    (b"%ZZ=1", FORM),
    (b"\xff\xfe payload", FORM),
    (b"[1, 2, 3]", "application/json"),
    (b'{"challenge": "x"}', "application/json"),
    (b'{"type": "url_verification"}', "application/json"),
    (b"[" * 100_000, "application/json"),
    (b"payload=" + quote("[" * 100_000).encode(), FORM),
    (command_body(), "text/plain"),
    (payload_body({**click_payload(), "token": "x" * 900_000}), "application/json"),
])
def test_a_signed_body_slack_never_sends_is_a_4xx(quiet: Front, body: bytes, content_type: str) -> None:
    status, answer = quiet.send(body, signed(body, content_type))
    assert 400 <= status < 500 and len(answer) < 80
    assert b"x" * 40 not in answer and b"U0BOB" not in answer  # nothing of the body is echoed


def test_the_refusal_is_logged_in_one_line_without_the_body(quiet: Front, caplog: pytest.LogCaptureFixture) -> None:
    body = command_body(text="<!channel> secret-looking-text", user_id=None)
    assert quiet.send(body, signed(body))[0] == 400
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "\n" not in line and "secret-looking-text" not in line and "channel>" not in line
    assert VERIFICATION_TOKEN not in line and "fields token," in line and ",command," in line


# ---------------------------------------------------------------- broken HTTP


def test_a_body_shorter_than_its_content_length_is_a_400(quiet: Front) -> None:
    body = command_body()
    assert quiet.post(body[:20], signed(body), length=len(body))[0] == 400


def test_a_client_that_stops_sending_is_answered_408(quiet: Front) -> None:
    body = command_body()
    assert quiet.post(body[:20], signed(body), length=len(body), close_write=False)[0] == 408


@pytest.mark.parametrize("length, status", [(None, 411), ("-1", 400), ("ten", 400), ("2000000", 413)])
def test_a_missing_or_bad_content_length_is_a_4xx(quiet: Front, length: str | None, status: int) -> None:
    body = command_body()
    headers = signed(body) | ({"Content-Length": length} if length is not None else {})
    assert quiet.post(body, headers)[0] == status


def test_two_different_content_lengths_are_a_400(quiet: Front) -> None:
    body = command_body()
    assert quiet.post(body, signed(body) | {"Content-Length": "3"}, length=len(body))[0] == 400


# ---------------------------------------------------------------- garbage, generated


def _form_garbage() -> st.SearchStrategy[bytes]:
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                               | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=4)
                               | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
    wrong = st.none() | st.booleans() | st.integers() | st.lists(st.integers(), max_size=2) | st.just("")

    def corrupt(field: str, value: Any) -> bytes:
        payload = click_payload()
        if field == "action_id":
            payload["actions"][0]["action_id"] = value
        elif field == "user.id":
            payload["user"]["id"] = value
        else:
            payload[field] = value
        return payload_body(payload)

    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.text(max_size=200).map(lambda t: b"payload=" + quote(t, safe="").encode()),
        json_values.map(lambda v: b"payload=" + quote(json.dumps(v)).encode()),
        st.tuples(st.sampled_from(["actions", "user", "channel", "container", "action_id", "user.id", "type"]),
                  wrong).map(lambda fv: corrupt(*fv)),
        st.dictionaries(st.sampled_from(["command", "text", "user_id", "team_id", "token"]),
                        st.text(max_size=30), max_size=5).map(lambda d: urlencode(d).encode()),
        st.integers(1, 200_000).map(lambda n: b"payload=" + b"%5B" * n),
    )


@GARBAGE
@given(body=_form_garbage(), content_type=st.sampled_from([FORM, "application/json", "text/plain", ""]))
def test_unsigned_garbage_is_a_401(quiet: Front, tally: Tally, body: bytes, content_type: str) -> None:
    tally.run()
    headers = {"Content-Type": content_type} if content_type else {}
    assert quiet.send(body, headers)[0] == 401


@GARBAGE
@given(body=_form_garbage(), content_type=st.sampled_from([FORM, "application/json", "text/plain", ""]))
def test_signed_garbage_is_a_4xx_and_never_a_500(quiet: Front, tally: Tally, body: bytes, content_type: str) -> None:
    tally.run()
    headers = signed(body)
    if content_type:
        headers["Content-Type"] = content_type
    else:
        del headers["Content-Type"]
    status, _ = quiet.send(body, headers)
    assert 400 <= status < 500, status  # 404 is Bolt's "no listener": a shape Slack sends, for nothing of ours


# ---------------------------------------------------------------- replays


def test_a_replayed_approval_click_moves_once(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    """The same signed bytes twice, within the window: the approval runs once, the replay is told so."""
    caplog.set_level(logging.INFO)
    answer = front.workflow.request(Actor(ALICE, "slack", OPS), FailoverCommand("www-b", "web3"))  # risky
    assert answer.offer is not None and answer.offer.kind == "approval"
    applies = front.rig.routers["r1"].applies
    url = front.standin.new_response_url()
    body = payload_body(click_payload("lh.approve.0", answer.offer.approval_id, url=url))
    headers = signed(body)
    jobs = len(front.executor.futures)
    assert front.send(body, headers)[0] == 200
    _wait_for_work(front, jobs + 1)
    assert front.send(body, headers)[0] == 200  # Slack never sends this; the idempotency answers it
    _wait_for_work(front, jobs + 2)
    [again] = front.standin.wait_for_response(url, count=1, timeout=WAIT)
    assert "Already approved" in json.dumps(again)
    assert front.rig.routers["r1"].applies == applies + 1 and front.rig.serving("www-b") == {"web3"}
    assert "Traceback" not in caplog.text


def test_a_replayed_confirm_click_moves_once(front: Front) -> None:
    answer = front.workflow.request(Actor(ALICE, "slack", OPS), FailoverCommand("www-a", "web2"))  # web1 is down
    assert answer.offer is not None and answer.offer.kind == "confirm"
    applies = front.rig.routers["r1"].applies
    url = front.standin.new_response_url()
    payload = block_action_payload("lh.confirm.0", answer.offer.approval_id, user_id=ALICE, channel_id=OPS,
                                   message_ts="2.0", response_url=url, is_ephemeral=True)
    body = payload_body(payload)
    headers = signed(body)
    jobs = len(front.executor.futures)
    for n in (1, 2):
        assert front.send(body, headers)[0] == 200
        _wait_for_work(front, jobs + n)
    said = json.dumps(front.standin.wait_for_response(url, count=3, timeout=WAIT))  # moving, done, not again
    assert "not run again" in said
    assert front.rig.routers["r1"].applies == applies + 1 and front.rig.serving("www-a") == {"web2"}


def test_a_replay_older_than_five_minutes_is_a_401(front: Front) -> None:
    answer = front.workflow.request(Actor(ALICE, "slack", OPS), FailoverCommand("www-d", "web2"))  # risky
    assert answer.offer is not None
    before = front.footprint()
    body = payload_body(click_payload("lh.approve.0", answer.offer.approval_id))
    assert front.send(body, signed(body, age=301))[0] == 401
    assert front.footprint() == before and front.rig.serving("www-d") == {"web1"}


def _wait_for_work(front: Front, count: int) -> None:
    """`count` jobs have been handed off by the listeners (after their ack) and all have finished."""
    def done() -> bool:
        futures = list(front.executor.futures)
        return len(futures) >= count and all(f.done() for f in futures)

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and not done():
        time.sleep(0.02)
    assert done(), f"{len(front.executor.futures)} of {count} jobs, or some still running, after {WAIT}s"
