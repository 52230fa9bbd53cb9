"""lasthop's Slack endpoint as `lasthop serve` wires it in HTTP mode, for the Slack benchmarks.

The real Bolt app (handlers.app.build_app) behind the real gate (http_handler) and HTTP server
(bot.web.make_server) on 127.0.0.1, over a Workflow on the engine the benchmark gives, against
the Slack stand-in (bench/_slack_standin.py) for the Web API and response URLs. Requests are
signed as Slack signs them and sent over raw sockets, one connection each, as Slack does.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench._burst import exchange
from bench._slack_standin import SlackStandIn, block_action_payload, sign, slash_command_payload
from bot.chat import Actor
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.manifest import build_manifest
from bot.metrics import Metrics
from bot.state import StateStore
from bot.views import Phrasing
from bot.web import Activity, make_server, serve_in_background
from bot.workflow import Workflow
from handlers.app import SlackSetupError, build_app, http_handler, poster_client, settings_from_env, web_client
from handlers.context import SlackAccess, SlackContext
from handlers.poster import Poster

SECRET = "bench-signing-secret-0123456789"
OPERATOR, APPROVER = "U0ALICE", "U0BOB"
OPS, ALERTS = "C0OPS", "C0ALERTS"
# Appended to an inventory that has no Slack section (the lab's): who may do what, and where.
ROLES = f"""
slack:
  alert_channel: {ALERTS}
  channels: [{OPS}]
  roles:
    operators: [{OPERATOR}]
    approvers: [{APPROVER}]
"""
WAIT = 10.0  # seconds: the bound on every wait for an answer
_PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@dataclass
class Received:
    """When the endpoint's handler got a request and when it answered (monotonic), server side."""

    start: float
    end: float
    status: int


@dataclass
class Front:
    port: int
    standin: SlackStandIn
    workflow: Workflow
    ctx: SlackContext
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, body: bytes) -> tuple[int, float]:
        """POST a signed body to /slack/events on a new connection; (status, seconds to the whole answer)."""
        status, took = exchange(self.port, signed_request(body))
        if status == 0:
            raise RuntimeError("no HTTP answer from lasthop's endpoint")
        return status, took

    def click(self, action_id: str, value: str, response_url: str) -> tuple[int, float]:
        """The operator's click on a button of an ephemeral message only they saw (a plan to confirm)."""
        payload = block_action_payload(action_id, value, user_id=OPERATOR, channel_id=OPS, message_ts="2.0",
                                       response_url=response_url, is_ephemeral=True)
        return self.send(urlencode({"payload": json.dumps(payload)}).encode())

    def command(self, command: str, text: str, response_url: str) -> tuple[int, float]:
        return self.send(command_body(command, text, response_url))

    @property
    def operator(self) -> Actor:
        return Actor(OPERATOR, "slack", OPS)


def command_body(command: str, text: str, response_url: str) -> bytes:
    """A slash command by the operator in the ops channel, as Slack POSTs it."""
    payload = slash_command_payload(command, text, user_id=OPERATOR, channel_id=OPS, response_url=response_url)
    return urlencode(payload).encode()


def signed_request(body: bytes) -> bytes:
    """The whole HTTP request Slack sends to /slack/events for `body`, signed now."""
    head = [b"POST /slack/events HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close",
            f"Content-Length: {len(body)}".encode()]
    head += [f"{k}: {v}".encode("latin-1") for k, v in sign(body, SECRET).items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@contextmanager
def front(inv: Inventory, engine: Engine, store: StateStore) -> Iterator[Front]:
    """The endpoint over `engine`, served until the block ends; the caller closes engine and store."""
    saved = {k: os.environ.pop(k) for k in _PROXIES if k in os.environ}  # loopback only
    try:
        with SlackStandIn() as standin:
            standin.install(build_manifest(inv.slack.commands, mode="http",
                                           request_url="https://lasthop.example.net/slack/events"))
            settings = settings_from_env({"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                          "SLACK_API_URL": standin.api_url})
            assert settings is not None
            client = web_client(settings)
            access = SlackAccess(inv.slack, client)
            poster = Poster(poster_client(settings))
            workflow = Workflow(inv, engine, store, access=access, out=poster, alert_channel=ALERTS,
                                phrasing=Phrasing(inv.slack.commands))
            activity = Activity()  # as `lasthop serve` wires it: work after an ack lets other acks go first
            ctx = SlackContext(workflow, client, poster, access, activity=activity)
            try:
                app = build_app(ctx, settings)
            except SlackSetupError as e:
                ctx.close()
                raise RuntimeError(str(e)) from None
            handler = http_handler(app, SECRET)
            box: list[Front] = []

            def timed(body: bytes, headers: Mapping[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
                start = time.monotonic()
                out = handler(body, headers, query)
                with box[0].lock:
                    box[0].received.append(Received(start, time.monotonic(), out[0]))
                return out

            server = make_server("127.0.0.1", 0, Metrics(), lambda: True, {"/slack/events": timed},
                                 activity=activity)
            box.append(Front(server.server_address[1], standin, workflow, ctx))
            serve_in_background(server)
            try:
                yield box[0]
            finally:
                server.shutdown()
                server.server_close()
                ctx.close()
    finally:
        os.environ.update(saved)


def wait_until(done: Callable[[], bool], timeout: float = WAIT, what: str = "the work") -> None:
    """Poll `done` every 5 ms for at most `timeout` seconds; RuntimeError naming `what` if it never holds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not finish within {timeout:g} s")
        time.sleep(0.005)


def answers(standin: SlackStandIn, url: str) -> list[dict[str, Any]]:
    """What lasthop has posted to a response URL so far."""
    return list(standin.responses.get(url, []))
