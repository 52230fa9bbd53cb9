"""Start-up settings, the poster's rate limits and Block Kit limits, against the Slack stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from slack_sdk import WebClient
from support.slack_standin import SlackStandIn

from bot.engine.model import MoveRequest, Plan, PlannedMove, RiskReason
from bot.inventory import Inventory
from handlers import blocks
from handlers.app import SlackSetupError, build_app, settings_from_env
from handlers.context import SlackContext
from handlers.poster import Poster


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        yield s


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


def test_a_refused_token_is_one_line_at_start_up(standin: SlackStandIn, tmp_path: Path) -> None:
    settings = settings_from_env({"SLACK_BOT_TOKEN": "xoxb-wrong", "SLACK_SIGNING_SECRET": "s",
                                  "SLACK_API_URL": standin.api_url})
    assert settings is not None
    client = WebClient(token=settings.bot_token, base_url=settings.api_url)
    ctx = SlackContext(Inventory(routers={}, hosts={}, services={}), None, None, client,  # type: ignore[arg-type]
                       Poster(client))
    with pytest.raises(SlackSetupError) as e:
        build_app(ctx, settings)
    assert "invalid_auth" in str(e.value) and "\n" not in str(e.value) and "xoxb-wrong" not in str(e.value)
    ctx.close()


def test_poster_waits_out_429_and_never_drops(standin: SlackStandIn) -> None:
    client = WebClient(token="xoxb-test", base_url=standin.api_url)  # no client-side retries: the poster's job
    poster = Poster(client, interval=0.01)
    standin.rate_limit("chat.postMessage", times=2, retry_after=1)
    futures = [poster.post("C1", f"alert {i}") for i in range(3)]
    assert [f.result(timeout=20)["ok"] for f in futures] == [True, True, True]
    calls = standin.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 429, 200, 200, 200]
    assert [c.args["text"] for c in calls if c.status == 200] == ["alert 0", "alert 1", "alert 2"]  # in order
    poster.close()


def test_poster_coalesces_updates_of_one_message(standin: SlackStandIn) -> None:
    client = WebClient(token="xoxb-test", base_url=standin.api_url)
    poster = Poster(client, interval=0.3)
    first = poster.post("C1", "opening")  # keeps the channel's worker busy for 0.3 s
    updates = [poster.update("C1", "1.0", f"state {i}") for i in range(5)]
    first.result(timeout=10)
    for u in updates:
        u.result(timeout=10)
    sent = [c.args["text"] for c in standin.calls_to("chat.update")]
    assert sent[-1] == "state 4" and len(sent) < 5
    poster.close()


def test_buttons_fit_a_phone() -> None:
    req = MoveRequest(kind="service", target="www-a", actor="U1", source="slack", to_host="web2")
    move = PlannedMove("www-a", "r1", IPv4Network("198.51.100.32/27"), "web1", IPv4Address("198.51.100.2"),
                       "web2", IPv4Address("198.51.100.3"), (IPv4Address("198.51.100.33"),))
    plan = Plan(req, (move,), ("www-a (198.51.100.32/27 on r1): web1 -> web2",), {"r1": ["end"]},
                (RiskReason("moves_from_healthy_host", "moves www-a away from web1, which is healthy"),))
    for bs in (blocks.confirm_blocks(plan, "id1"), blocks.approval_blocks(plan, "id1", "U1", 15)):
        buttons = [e for b in bs if b["type"] == "actions" for e in b["elements"]]
        assert buttons and all(len(b["text"]["text"]) <= 30 for b in buttons)
        assert all(b["value"] == "id1" for b in buttons)
    assert "Approve" in json.dumps(blocks.approval_blocks(plan, "id1", "U1", 15))
