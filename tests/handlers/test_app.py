"""handlers/app.py: start-up settings, the two Slack clients, and the real Bolt app served over HTTP.

The app is built as `lasthop serve` builds it, against the Slack stand-in (auth.test, the
response URLs, usergroups), served by bot.web with handlers.app.http_handler, and sent requests
built and signed as Slack does, for the commands the generated manifest installed. The workflow
behind it is a stub (tests/support/slack_fakes.py): what is tested is that each request reaches
the right listener, and that forged or stale ones reach none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.slack_fakes import (
    ALERTS,
    ALICE,
    BOB,
    OPS,
    ROLES,
    WAIT,
    RecordingExecutor,
    StubWorkflow,
)
from support.slack_standin import (
    CommandRejected,
    SlackStandIn,
    block_action_body,
    post,
    sign,
    view_submission_body,
)

from bot.chat import Actor, MessageRef
from bot.commands import CommandNames, FailoverCommand
from bot.inventory import Inventory
from bot.manifest import build_manifest
from bot.metrics import Metrics
from bot.state import redact
from bot.web import make_server, serve_in_background
from handlers.app import (
    DEFAULT_API_URL,
    SlackSettingsEnv,
    SlackSetupError,
    build_app,
    http_handler,
    poster_client,
    settings_from_env,
    slack_context,
    web_client,
)
from handlers.context import SlackAccess, SlackContext
from handlers.forms import CALLBACK, failover_form
from handlers.poster import Poster

SECRET = "signing-secret-for-tests-0123"
REQUEST_URL = "https://lasthop.example.net/slack/events"
CUSTOM = "  commands: {umbrella: /lh, failover: /move, status: /vips}\n"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)  # only loopback, never through a proxy
    with SlackStandIn() as s:
        yield s


def settings_for(standin: SlackStandIn, token: str = "xoxb-test") -> SlackSettingsEnv:
    settings = settings_from_env({"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": SECRET,
                                  "SLACK_API_URL": standin.api_url})
    assert settings is not None
    return settings


def context_for(inv: Inventory, settings: SlackSettingsEnv, workflow: Any = None) -> SlackContext:
    client = web_client(settings)
    return SlackContext(workflow or StubWorkflow(inv), client, Poster(poster_client(settings)),  # type: ignore[arg-type]
                        SlackAccess(inv.slack, client), executor=RecordingExecutor())


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"SLACK_SIGNING_SECRET": "x"}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xapp-wrong-kind", "SLACK_SIGNING_SECRET": "x"}, "does not look like a bot token"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "HTTP mode needs SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "does not look like an app-level token"),
    ],
)
def test_bad_settings_are_one_clear_line(env: dict[str, str], error: str) -> None:
    with pytest.raises(SlackSetupError, match=error) as e:
        settings_from_env(env)
    assert "\n" not in str(e.value) and "xoxb-1" not in str(e.value)


def test_no_settings_means_no_slack() -> None:
    assert settings_from_env({}) is None
    assert settings_from_env({"SLACK_BOT_TOKEN": "  ", "SLACK_SIGNING_SECRET": ""}) is None


def test_good_settings_pick_the_mode_and_hide_the_secrets() -> None:
    http = settings_from_env({"SLACK_BOT_TOKEN": " xoxb-1 ", "SLACK_SIGNING_SECRET": SECRET,
                              "SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert http == SlackSettingsEnv("xoxb-1", SECRET, None, "http://127.0.0.1:9/api/")
    assert not http.socket_mode
    socket = settings_from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1-socket-token"})
    assert socket is not None and socket.socket_mode and socket.api_url == DEFAULT_API_URL
    assert socket.signing_secret is None
    assert SECRET not in redact(f"secret={SECRET} app=xapp-1-socket-token") and "xapp-1-socket-token" not in redact(
        "token xapp-1-socket-token")


def test_a_refused_token_is_one_line_at_start_up(standin: SlackStandIn, inv: Inventory) -> None:
    settings = settings_for(standin, token="xoxb-wrong")
    ctx = context_for(inv, settings)
    try:
        with pytest.raises(SlackSetupError) as e:
            build_app(ctx, settings)
    finally:
        ctx.close()
    assert "invalid_auth" in str(e.value) and "\n" not in str(e.value) and "xoxb-wrong" not in str(e.value)
    assert [(c.method, c.token) for c in standin.calls] == [("auth.test", "xoxb-wrong")]


# ---------------------------------------------------------------- one layer waits out a 429


def test_the_poster_client_retries_nothing_and_bolts_client_waits_out_429s_once(standin: SlackStandIn) -> None:
    settings = settings_for(standin)
    bolt, poster = web_client(settings), poster_client(settings)
    assert poster.retry_handlers == []  # the poster waits out Retry-After itself (handlers/poster.py)
    [handler] = bolt.retry_handlers
    assert type(handler) is RateLimitErrorRetryHandler

    standin.rate_limit("chat.postMessage", times=1, retry_after=0)
    with pytest.raises(SlackApiError) as e:
        poster.chat_postMessage(channel=OPS, text="from the poster")
    assert e.value.response.status_code == 429  # handed to the poster as it came
    standin.rate_limit("chat.postMessage", times=1, retry_after=0)
    assert bolt.chat_postMessage(channel=ALERTS, text="from bolt")["ok"]
    assert [(c.args["channel"], c.status) for c in standin.calls_to("chat.postMessage")] == [
        (OPS, 429), (ALERTS, 429), (ALERTS, 200)]


def test_serve_wires_bolts_client_and_the_posters_apart(standin: SlackStandIn, inv: Inventory) -> None:
    settings = settings_for(standin)
    poster = Poster(poster_client(settings))
    daemon = SimpleNamespace(engine=object(), store=object())
    ctx = slack_context(inv, daemon, poster, settings)  # type: ignore[arg-type]
    try:
        assert [type(h) for h in ctx.client.retry_handlers] == [RateLimitErrorRetryHandler]
        assert ctx.poster is poster and ctx.poster.client.retry_handlers == []
        wf = ctx.workflow
        assert wf.out is poster and wf.access is ctx.access and wf.incidents is daemon
        assert wf.alert_channel == ALERTS and ctx.access.client is ctx.client  # group lookups wait out 429s
    finally:
        ctx.close()


# ---------------------------------------------------------------- the manifest Slack installs


@pytest.mark.parametrize("names", [CommandNames(), CommandNames("/lh", "/move", "/vips")])
@pytest.mark.parametrize("mode", ["http", "socket"])
def test_the_generated_manifest_installs_with_every_command(standin: SlackStandIn, names: CommandNames,
                                                            mode: str) -> None:
    manifest = build_manifest(names, mode=mode, request_url=REQUEST_URL if mode == "http" else None)  # type: ignore[arg-type]
    standin.install(manifest)
    assert standin.installed_commands == set(names.all())
    valid = WebClient(token="xoxe-config", base_url=standin.api_url).apps_manifest_validate(manifest=manifest)
    assert valid["ok"]


def test_a_reserved_command_name_is_refused_by_lasthop_and_by_slack(standin: SlackStandIn) -> None:
    with pytest.raises(ValueError, match="/status is one of Slack's own commands"):
        build_manifest(CommandNames(status="/status"), mode="http", request_url=REQUEST_URL)
    manifest = build_manifest(CommandNames(), mode="http", request_url=REQUEST_URL)
    manifest["features"]["slash_commands"][2]["command"] = "/status"
    with pytest.raises(AssertionError, match="slash_commands/2/command: the slash command has an invalid name"):
        standin.install(manifest)
    assert standin.installed_commands == frozenset()


# ---------------------------------------------------------------- the app over HTTP


@dataclass
class Served:
    standin: SlackStandIn
    workflow: StubWorkflow
    url: str

    def send(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        status, _, data = post(self.url, body, headers or sign(body, SECRET), timeout=WAIT)
        return status, data

    def command(self, command: str, text: str, user: str = ALICE) -> tuple[str, int, bytes]:
        response_url = self.standin.new_response_url()
        body = self.standin.slash_command_body(command, text, user_id=user, channel_id=OPS,
                                               response_url=response_url)
        status, data = self.send(body)
        return response_url, status, data

    def wait_for_calls(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.workflow.calls) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.workflow.calls) >= count, self.workflow.calls


@pytest.fixture
def serve(standin: SlackStandIn, tmp_path: Path) -> Iterator[Callable[[str], Served]]:
    """lasthop's HTTP face for an inventory (YAML added to the three-host network), the app installed."""
    closers: list[Callable[[], None]] = []

    def start(extra: str = "") -> Served:
        inv = inventory_from_text(tmp_path, THREE_HOSTS + ROLES + extra)
        standin.install(build_manifest(inv.slack.commands, mode="http", request_url=REQUEST_URL))
        settings = settings_for(standin)
        workflow = StubWorkflow(inv)
        ctx = context_for(inv, settings, workflow)
        app = build_app(ctx, settings)
        server = make_server("127.0.0.1", 0, Metrics(), lambda: True, {"/slack/events": http_handler(app, SECRET)})
        serve_in_background(server)

        def close() -> None:
            server.shutdown()
            server.server_close()
            ctx.close()

        closers.append(close)
        return Served(standin, workflow, f"http://127.0.0.1:{server.server_address[1]}/slack/events")

    yield start
    for close in closers:
        close()


def test_the_app_checks_its_token_when_it_starts(serve: Callable[[str], Served], standin: SlackStandIn) -> None:
    serve("")
    [auth] = standin.calls_to("auth.test")
    assert auth.token == "xoxb-test" and auth.status == 200


@pytest.mark.parametrize("extra", ["", CUSTOM])
def test_every_installed_command_reaches_its_listener_and_is_answered(serve: Callable[[str], Served],
                                                                     extra: str) -> None:
    app = serve(extra)
    names = app.workflow.inv.slack.commands
    sent = [(names.umbrella, "status www-a", "status", "Reading the routers…"),
            (names.status, "web1", "status", "Reading the routers…"),
            (names.failover, "www-a to web2", "request", "Planning…")]
    assert {c for c, *_ in sent} == app.standin.installed_commands
    for n, (command, text, method, working) in enumerate(sent, start=1):
        response_url, status, data = app.command(command, text)
        assert status == 200 and data.decode() == working  # Bolt sends a text-only ack as the body itself
        [answer] = app.standin.wait_for_response(response_url, timeout=WAIT)
        assert answer["text"] == "the answer" and answer["replace_original"] is True
        app.wait_for_calls(n)
        call = app.workflow.calls[-1]
        assert call.method == method and call.args[0] == Actor(ALICE, "slack", OPS)
    assert app.workflow.calls[2].args[1] == FailoverCommand("www-a", "web2")


def test_a_usage_error_is_answered_in_the_ack_over_http(serve: Callable[[str], Served]) -> None:
    app = serve("")
    response_url, status, data = app.command("/failover", "<!channel>")
    assert status == 200
    text = data.decode()
    assert text.startswith("a word is not a name, prefix or keyword") and "<!channel>" not in text
    assert app.workflow.calls == [] and app.standin.responses[response_url] == []


@pytest.mark.parametrize("how", ["forged", "stale", "unsigned"])
def test_forged_or_stale_requests_are_refused_with_401_and_reach_no_listener(
        serve: Callable[[str], Served], how: str) -> None:
    app = serve("")
    response_url = app.standin.new_response_url()
    body = app.standin.slash_command_body("/failover", "www-a", user_id=ALICE, channel_id=OPS,
                                          response_url=response_url)
    headers = {"forged": sign(body, "not-the-secret"),
               "stale": sign(body, SECRET, timestamp=int(time.time()) - 600),
               "unsigned": {"Content-Type": "application/x-www-form-urlencoded"}}[how]
    status, _ = app.send(body, headers)
    assert status == 401
    assert app.send(body)[0] == 200  # the same body, signed now with the secret, is taken
    app.wait_for_calls(1)
    assert len(app.workflow.calls) == 1


def test_slack_never_sends_a_reserved_or_uninstalled_command(serve: Callable[[str], Served]) -> None:
    app = serve(CUSTOM)
    url = app.standin.new_response_url()
    for name in ("/status", "/failover", "/lasthop"):  # Slack's own; then the default names this app renamed
        with pytest.raises(CommandRejected):
            app.standin.slash_command_body(name, "", user_id=ALICE, channel_id=OPS, response_url=url)


def test_a_click_over_http_reaches_press_and_a_foreign_action_id_reaches_nothing(
        serve: Callable[[str], Served]) -> None:
    app = serve("")
    ts = "1700000000.000300"

    def click(action_id: str) -> int:
        body = block_action_body(action_id, "apr-1", user_id=BOB, channel_id=ALERTS, message_ts=ts,
                                 response_url=app.standin.new_response_url())
        return app.send(body)[0]

    assert click("approve") == 404  # not lasthop's: Bolt finds no listener
    assert click("lh.approve.0") == 200
    app.wait_for_calls(1)
    [call] = app.workflow.calls
    assert call.args == (Actor(BOB, "slack", ALERTS), "approve", "apr-1")
    assert call.kwargs["clicked"] == MessageRef(ALERTS, ts)


def test_a_form_submission_over_http_reaches_request(serve: Callable[[str], Served]) -> None:
    app = serve("")
    form = failover_form(app.workflow.inv, OPS)
    option = next(o for o in form["blocks"][0]["element"]["options"] if o["value"] == "www-b")
    values = {"service": {"service": {"type": "static_select", "selected_option": option}}}
    status, _ = app.send(view_submission_body(CALLBACK, values, user_id=ALICE,
                                              private_metadata=form["private_metadata"]))
    assert status == 200
    app.wait_for_calls(1)
    assert app.workflow.calls[0].args == (Actor(ALICE, "slack", OPS), FailoverCommand("www-b"))
    app.standin.wait_for_call("chat.postEphemeral", lambda c: c.args.get("user") == ALICE, timeout=WAIT)
