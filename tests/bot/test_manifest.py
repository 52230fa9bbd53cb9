"""The Slack app manifest: written from the command table, taken by (a stand-in for) Slack, committed as made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.slack_standin import SlackStandIn, validate_manifest

from bot.cli import main
from bot.commands import CommandNames, slash_commands
from bot.manifest import build_manifest, manifest_yaml

ROOT = Path(__file__).parents[2]
URL = "https://lasthop.example.net/slack/events"
CUSTOM = CommandNames(umbrella="/lh", failover="/move", status="/who-serves")


def test_the_committed_manifest_is_the_one_made_from_the_table() -> None:
    # Regenerate with: lasthop slack-manifest > config/slack-manifest.yaml
    assert (ROOT / "config" / "slack-manifest.yaml").read_text() == manifest_yaml(CommandNames())


@pytest.mark.parametrize("names", [CommandNames(), CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize(("mode", "url"), [("socket", None), ("http", URL)])
def test_slack_takes_the_manifest(names: CommandNames, mode: Any, url: str | None) -> None:
    manifest = build_manifest(names, mode=mode, request_url=url)
    assert validate_manifest(manifest) == []
    assert yaml.safe_load(manifest_yaml(names, mode=mode, request_url=url)) == manifest
    with SlackStandIn() as slack:
        slack.install(manifest)
        assert slack.installed_commands == set(names.all())
        for command in names.all():
            slack.slash_command_payload(command, "help", user_id="U1", channel_id="C1", response_url="http://r/1")


def test_the_manifest_lists_the_table_and_what_the_mode_needs() -> None:
    socket = build_manifest(CommandNames())
    assert socket["features"]["slash_commands"] == [
        {"command": c.command, "description": c.description, "usage_hint": c.usage_hint, "should_escape": False}
        for c in slash_commands(CommandNames())
    ]
    assert socket["settings"] == {
        "interactivity": {"is_enabled": True},
        "org_deploy_enabled": False,
        "socket_mode_enabled": True,
        "token_rotation_enabled": False,
    }
    assert socket["oauth_config"] == {"scopes": {"bot": ["commands", "chat:write", "usergroups:read"]}}
    assert socket["display_information"]["name"] == socket["features"]["bot_user"]["display_name"] == "lasthop"
    http = build_manifest(CommandNames(), mode="http", request_url=URL)
    assert all(c["url"] == URL for c in http["features"]["slash_commands"])
    assert http["settings"]["interactivity"] == {"is_enabled": True, "request_url": URL}
    assert http["settings"]["socket_mode_enabled"] is False
    assert build_manifest(CommandNames(), app_name="lasthop-lab")["display_information"]["name"] == "lasthop-lab"


def test_the_yaml_says_how_to_use_it_and_why_each_scope() -> None:
    text = manifest_yaml(CommandNames())
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("From a manifest" in line for line in header) and any("Socket Mode" in line for line in header)
    assert "- chat:write" in text and "# alerts, approval requests, their outcomes" in text
    assert "/status" not in text.replace("/vip-status", "")
    assert f"HTTP mode: Slack posts to {URL}" in manifest_yaml(CommandNames(), mode="http", request_url=URL)


def test_the_old_manifest_with_status_is_refused() -> None:
    old = build_manifest(CommandNames())
    old["features"]["slash_commands"][0]["command"] = "/status"
    assert validate_manifest(old) == [
        {"message": "the slash command has an invalid name", "pointer": "/features/slash_commands/0/command"}
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": "http"}, "HTTP mode needs the request URL: https://YOUR-HOST/slack/events"),
        ({"mode": "http", "request_url": "http://lasthop.example.net/slack/events"}, "Slack sends to HTTPS only"),
        ({"mode": "http", "request_url": "https:///slack/events"}, "Slack sends to HTTPS only"),
        ({"mode": "http", "request_url": "https://lasthop.example.net/"}, "must end in /slack/events"),
        ({"mode": "http", "request_url": URL + "?x=1"}, "must end in /slack/events"),
        ({"mode": "http", "request_url": "https://lasthop.example.net/a b/slack/events"}, "one printable word"),
        ({"mode": "socket", "request_url": URL}, "a request URL is for HTTP mode only"),
        ({"mode": "pigeon"}, "the mode is socket or http, not 'pigeon'"),
        ({"app_name": ""}, "the app name must be 1 to 35 characters"),
        ({"app_name": "x" * 36}, "the app name must be 1 to 35 characters"),
    ],
)
def test_bad_options_are_one_clear_line(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("?", r"\?")) as caught:
        build_manifest(CommandNames(), **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (CommandNames(status="/status"), "/status is one of Slack's own commands"),
        (CommandNames(failover="/Failover"), "use lowercase letters"),
        (CommandNames(failover="/lasthop"), "two slash commands have the same name"),
    ],
)
def test_names_slack_would_refuse_are_refused_here(names: CommandNames, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build_manifest(names)


def test_the_command_takes_the_names_from_the_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "config" / "lab.yaml").read_text() + "slack:\n  commands: {umbrella: /lh, status: /who-serves}\n"
    path = tmp_path / "lasthop.yaml"
    path.write_text(text)
    monkeypatch.setenv("LASTHOP_CONFIG", str(path))
    assert main(["slack-manifest"]) == 0
    out, err = capsys.readouterr()
    assert out == manifest_yaml(CommandNames(umbrella="/lh", status="/who-serves")) and err == ""
    assert main(["--config", str(path), "slack-manifest", "--mode", "http", "--url", URL]) == 0
    assert capsys.readouterr().out == manifest_yaml(
        CommandNames(umbrella="/lh", status="/who-serves"), mode="http", request_url=URL
    )


def test_secrets_the_inventory_needs_are_not_needed_for_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LASTHOP_EDGE_PASSWORD", raising=False)
    text = (ROOT / "config" / "example.yaml").read_text().replace("umbrella: /lasthop", "umbrella: /lh")
    path = tmp_path / "example.yaml"
    path.write_text(text)
    assert main(["--config", str(path), "slack-manifest"]) == 0
    out, err = capsys.readouterr()
    assert "command: /lh\n" in out and err == ""


def test_without_an_inventory_the_defaults_are_used_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "missing.yaml"), "slack-manifest"]) == 0
    out, err = capsys.readouterr()
    assert out == manifest_yaml(CommandNames())
    assert err.count("\n") == 1 and "does not exist" in err and "using the default command names" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("routers: []\n")
    assert main(["--config", str(broken), "slack-manifest"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "problems" in err and "using the default command names" in err


def test_bad_options_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.yaml")
    assert main(["--config", missing, "slack-manifest", "--mode", "http"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "lasthop slack-manifest: HTTP mode needs the request URL: https://YOUR-HOST/slack/events\n"
    assert main(["--config", missing, "slack-manifest", "--url", URL]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as caught:
        main(["slack-manifest", "--mode", "pigeon"])
    assert caught.value.code == 2
