"""Chat command grammar: what parses, what is refused, help and Slack commands written from the same table."""

from __future__ import annotations

import re

import pytest

from bot.commands import (
    RESERVED_COMMANDS,
    TOPICS,
    CommandNames,
    FailoverCommand,
    HelpCommand,
    MaintenanceCommand,
    StatusCommand,
    UsageError,
    check_command_name,
    help_text,
    parse,
    slash_commands,
)

NAMES = CommandNames()
CUSTOM = CommandNames(umbrella="/lh", failover="/move", status="/who-serves")


@pytest.mark.parametrize(
    ("command", "text", "want"),
    [
        ("/lasthop", "", HelpCommand()),
        ("/lasthop", "  HELP ", HelpCommand()),
        ("/lasthop", "help failover", HelpCommand("failover")),
        ("/lasthop", "help help", HelpCommand()),
        ("/lasthop", "status", StatusCommand()),
        ("/lasthop", "Status web1", StatusCommand("web1")),
        ("/lasthop", "status help", HelpCommand("status")),
        ("/lasthop", "failover", FailoverCommand()),
        ("/lasthop", "failover www-a to web2", FailoverCommand("www-a", "web2")),
        ("/lasthop", "maintenance help", HelpCommand("maintenance")),
        ("/vip-status", "", StatusCommand()),
        ("/vip-status", "www-a", StatusCommand("www-a")),
        ("/vip-status", "help", HelpCommand("status")),
        ("/failover", "", FailoverCommand()),
        ("/failover", "help", HelpCommand("failover")),
        ("/failover", "www-a", FailoverCommand("www-a")),
        ("/failover", "www-a to web2", FailoverCommand("www-a", "web2")),
        ("/failover", "  www-a   TO web2 dry-run ", FailoverCommand("www-a", "web2", True)),
        ("/failover", "198.51.100.32/27 dryrun", FailoverCommand("198.51.100.32/27", dry_run=True)),
        ("/failover", "web1 --dry-run", FailoverCommand("web1", dry_run=True)),
        ("/failover", "www-a\u00a0to\u00a0web2", FailoverCommand("www-a", "web2")),  # a phone's no-break spaces
    ],
)
def test_parses(command: str, text: str, want: object) -> None:
    assert parse(NAMES, command, text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("web3 on", MaintenanceCommand("web3", True)),
        ("web3 ON 2h", MaintenanceCommand("web3", True, 7200.0)),
        ("web3 on 1h30m", MaintenanceCommand("web3", True, 5400.0)),
        ("web3 on 90s", MaintenanceCommand("web3", True, 90.0)),
        ("web3 on 168h", MaintenanceCommand("web3", True, 7 * 24 * 3600.0)),
        ('web3 on 2h "kernel update"', MaintenanceCommand("web3", True, 7200.0, "kernel update")),
        ("web3 on “kernel update”", MaintenanceCommand("web3", True, None, "kernel update")),  # a phone's quotes
        ('web3 on 30m “BIOS 1.2: it\'s <late> & slow "', MaintenanceCommand("web3", True, 1800.0,
                                                                           "BIOS 1.2: it's <late> & slow")),
        ("web3 off", MaintenanceCommand("web3", False)),
    ],
)
def test_maintenance_parses(text: str, want: MaintenanceCommand) -> None:
    assert parse(NAMES, "/lasthop", f"maintenance {text}") == want


@pytest.mark.parametrize(
    ("command", "text", "error"),
    [
        ("/failover", "www-a to", "'to' needs a host name after it"),
        ("/failover", "www-a web2", "unexpected 'web2'"),
        ("/failover", "www-a to web2 to web3", "unexpected 'to'"),
        ("/failover", "www-a dry-run dry-run", "unexpected 'dry-run'"),
        ("/failover", "to web2", "failover needs a service, prefix or host first"),
        ("/failover", "www-a;reboot", "a word is not a name, prefix or keyword"),
        ("/failover", "$(reload)", "a word is not a name, prefix or keyword"),
        ("/failover", "help me", "help takes no more words"),
        ("/failover", "www-a to `web2`", "a word is not a name, prefix or keyword"),
        ("/failover", "-x", "'-x' is not a name, prefix or keyword"),
        ("/vip-status", "web1 web2", "status takes at most one name"),
        ("/lasthop", "reboot", "'reboot' is not a lasthop command: try status, failover, maintenance or help"),
        ("/lasthop", "help reboot", "there is no help on 'reboot': try status, failover or maintenance"),
        ("/lasthop", "help status failover", "help takes one topic at most"),
        ("/lasthop", "<!channel>", "that word is not a lasthop command"),
        ("/status", "", "'/status' is not a lasthop command"),
        ("/failover", "www-a " + "x" * 41, "unexpected word"),  # a name, but too long to echo
    ],
)
def test_refuses_with_a_short_reason(command: str, text: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(NAMES, command, text)
    assert str(caught.value) == error or str(caught.value).startswith(error), str(caught.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "maintenance needs a host, then on or off"),
        ("web3", "maintenance needs a host, then on or off"),
        ("on web3", "maintenance needs a host, then on or off"),
        ("web3 maybe", "maintenance needs a host, then on or off"),
        ("web3 on 10", "a duration needs a unit: 10m, 2h, 30s"),
        ("web3 on 1.5", "a duration needs a unit: 10m, 2h, 30s"),
        ("web3 on 10x", "'10x' is not a duration: write e.g. 30m, 2h or 1h30m"),
        ("web3 on 30s", "a maintenance window lasts from 1m to 7 days (168h)"),
        ("web3 on 169h", "a maintenance window lasts from 1m to 7 days (168h)"),
        ("web3 on 2h 3h", "give one duration"),
        ("web3 on kernel update", 'a reason goes in double quotes, e.g. "kernel update"'),
        ("web3 on 2h kernel", 'a reason goes in double quotes, e.g. "kernel update"'),
        ('web3 on "kernel update', "the reason goes last, between double quotes"),
        ('web3 on "kernel" 2h', "the reason goes last, between double quotes"),
        ('web3 on "a" "b"', "a reason cannot hold double quotes"),
        ('web3 on ""', "the reason is empty: leave out the quotes"),
        ('web3 on "   "', "the reason is empty: leave out the quotes"),
        ('web3 on "' + "x" * 201 + '"', "the reason is longer than 200 characters"),
        ('web3 on "two\nlines"', "the reason must be one line of plain text"),
        ('web3 on "bell\x07"', "the reason must be one line of plain text"),
        ('web3 on "abc\u202edcba"', "the reason must be one line of plain text"),
        ('web3 off "done"', "off takes no duration or reason"),
        ("web3 off 2h", "off takes no duration or reason"),
        ('<!channel> on "x"', "a word is not a name, prefix or keyword"),
    ],
)
def test_maintenance_refuses_with_a_short_reason(text: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(NAMES, "/lasthop", f"maintenance {text}")
    assert str(caught.value) == error
    assert caught.value.topic == "maintenance"  # so the reply can follow with the right help


def test_a_reason_of_200_characters_is_kept_whole() -> None:
    reason = "é" * 200
    assert parse(NAMES, "/lasthop", f'maintenance web3 on "{reason}"') == MaintenanceCommand("web3", True, None, reason)


@pytest.mark.parametrize(
    "text",
    ["<!channel>", "<@U0ALICE>", "<https://example.net|click>", "www-a\x1b[2J", "x" * 70, "www-a\u202e"],
)
def test_what_is_not_a_safe_name_is_never_echoed(text: str) -> None:
    for command, words in (("/failover", text), ("/vip-status", text), ("/lasthop", text), ("/lasthop", f"help {text}"),
                           ("/lasthop", f"maintenance {text} on"), ("/failover", f"www-a {text}")):
        with pytest.raises(UsageError) as caught:
            parse(NAMES, command, words)
        message = str(caught.value)
        assert text not in message and "<" not in message and "\x1b" not in message, message
        assert "\n" not in message and len(message) < 100


# Every usage error that could quote a word, with the word in that place.
_ECHO_PLACES = [
    ("/lasthop", "{x}"), ("/lasthop", "help {x}"), ("/lasthop", "status {x}"), ("/lasthop", "failover {x}"),
    ("/vip-status", "{x}"), ("/vip-status", "web1 {x}"), ("/failover", "{x}"), ("/failover", "www-a {x}"),
    ("/failover", "www-a to {x}"), ("/failover", "{x} to web2"), ("/failover", "www-a dry-run {x}"),
    ("/lasthop", "maintenance {x} on"), ("/lasthop", "maintenance web3 {x}"), ("/lasthop", "maintenance web3 on {x}"),
    ("/lasthop", "maintenance web3 on 2h {x}"), ("/lasthop", "maintenance web3 off {x}"), ("{x}", "status"),
]


@pytest.mark.parametrize("markup", ["<!channel>", "<@U123>", "<#C123>", "<https://x|y>", "&", "a&b", "&lt;"])
@pytest.mark.parametrize(("command", "template"), _ECHO_PLACES)
def test_slack_markup_is_never_echoed_by_a_usage_error(command: str, template: str, markup: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(NAMES, command.format(x=markup), template.format(x=markup))
    message = str(caught.value)
    # Nothing to escape was echoed: no markup opens, no entity starts, and the line stays short.
    assert "<" not in message and ">" not in message and "&" not in message, message
    assert "\n" not in message and len(message) < 120


def test_usage_errors_name_the_help_to_show() -> None:
    topics = []
    for command, text in (("/failover", "www-a to"), ("/vip-status", "a b"), ("/lasthop", "failover to"),
                          ("/lasthop", "reboot"), ("/lasthop", "status help me")):
        with pytest.raises(UsageError) as caught:
            parse(NAMES, command, text)
        topics.append(caught.value.topic)
    assert topics == ["failover", "status", "failover", None, "status"]


def test_the_names_come_from_the_config() -> None:
    assert parse(CUSTOM, "/move", "www-a") == FailoverCommand("www-a")
    assert parse(CUSTOM, "/who-serves", "") == StatusCommand()
    assert parse(CUSTOM, "/lh", "maintenance web3 off") == MaintenanceCommand("web3", False)
    with pytest.raises(UsageError, match="'/failover' is not a lasthop command"):
        parse(CUSTOM, "/failover", "www-a")
    assert CUSTOM.all() == ("/lh", "/move", "/who-serves")
    assert NAMES.all() == ("/lasthop", "/failover", "/vip-status")


def _examples(text: str) -> list[str]:
    return re.findall(r"^• `([^`]+)`$", text, flags=re.MULTILINE)


@pytest.mark.parametrize("names", [NAMES, CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize("topic", [None, "status", "failover", "maintenance"])
def test_every_example_in_the_help_parses(names: CommandNames, topic: str | None) -> None:
    text = help_text(names, topic)
    examples = _examples(text)
    assert examples
    for example in examples:
        command, _, words = example.partition(" ")
        parsed = parse(names, command, words)
        assert not isinstance(parsed, HelpCommand), example
        if topic is not None:
            assert type(parsed).__name__.lower().startswith(topic), example


def test_help_is_written_from_the_table() -> None:
    failover = help_text(NAMES, "failover").splitlines()
    assert failover[:2] == [
        "`/lasthop failover SERVICE|PREFIX|HOST [to HOST] [dry-run]`",
        "or `/failover SERVICE|PREFIX|HOST [to HOST] [dry-run]`",
    ]
    assert "• `/failover www-a to web2`" in failover
    maintenance = help_text(NAMES, "maintenance")
    assert '`/lasthop maintenance HOST on [DURATION] ["REASON"]`\n`/lasthop maintenance HOST off`' in maintenance
    assert "double quotes" in maintenance and "at most 7 days" in maintenance
    overview = help_text(NAMES)
    assert overview.startswith("`/lasthop status|failover|maintenance|help …`")
    assert "(or `/vip-status …`)" in overview and "(or `/failover …`)" in overview
    for t in TOPICS:
        assert t.description in overview and t.description in help_text(NAMES, t.word)
    assert "/status" not in overview.replace("/vip-status", "")
    with pytest.raises(ValueError, match="no help topic 'reboot'"):
        help_text(NAMES, "reboot")


def test_slash_commands_share_the_table() -> None:
    commands = slash_commands(NAMES)
    assert [c.command for c in commands] == ["/lasthop", "/vip-status", "/failover"]
    by_name = {c.command: c for c in commands}
    assert by_name["/failover"].usage_hint == "SERVICE|PREFIX|HOST [to HOST] [dry-run]"
    assert by_name["/failover"].description == next(t.description for t in TOPICS if t.word == "failover")
    assert by_name["/lasthop"].usage_hint == "status|failover|maintenance|help …"
    assert sorted(c.command for c in slash_commands(CUSTOM)) == sorted(CUSTOM.all())
    for c in commands:
        assert check_command_name(c.command) is None
        assert 0 < len(c.description) <= 100 and 0 < len(c.usage_hint) <= 100  # short enough for a phone


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/lasthop", None),
        ("/vip-status", None),
        ("/a_b-9", None),
        ("/" + "x" * 31, None),
        ("/" + "x" * 32, "a command name is at most 32 characters, the '/' included"),
        ("lasthop", "a command name starts with '/'"),
        ("", "a command name starts with '/'"),
        ("/", "use lowercase letters, digits, '-' or '_' after the '/'"),
        ("/LastHop", "use lowercase letters, digits, '-' or '_' after the '/'"),
        ("/last hop", "use lowercase letters, digits, '-' or '_' after the '/'"),
        ("/lasthop/", "use lowercase letters, digits, '-' or '_' after the '/'"),
        ("/status", "/status is one of Slack's own commands, and Slack refuses an app that lists it"),
        ("/help", "/help is one of Slack's own commands, and Slack refuses an app that lists it"),
    ],
)
def test_check_command_name(name: str, reason: str | None) -> None:
    assert check_command_name(name) == reason


def test_the_reserved_names_are_slack_built_ins() -> None:
    built_in = {"/status", "/me", "/join", "/away", "/dnd", "/shrug", "/remind", "/msg", "/feed", "/who", "/collapse",
                "/expand", "/leave", "/open", "/search", "/topic", "/mute", "/pro", "/shortcuts", "/help"}
    assert built_in <= RESERVED_COMMANDS
    assert all(check_command_name(n) is not None for n in RESERVED_COMMANDS)
    assert not set(NAMES.all()) & RESERVED_COMMANDS
