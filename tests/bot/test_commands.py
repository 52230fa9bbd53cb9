"""Chat command grammar: what parses, what is refused, and help written from the same definition."""

from __future__ import annotations

import pytest

from bot.commands import FAILOVER, STATUS, FailoverCommand, StatusCommand, UsageError, parse_failover, parse_status


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", FailoverCommand()),
        ("help", FailoverCommand(help=True)),
        ("www-a", FailoverCommand("www-a")),
        ("www-a to web2", FailoverCommand("www-a", "web2")),
        ("  www-a   TO web2 dry-run ", FailoverCommand("www-a", "web2", True)),
        ("198.51.100.32/27 dryrun", FailoverCommand("198.51.100.32/27", dry_run=True)),
        ("web1 --dry-run", FailoverCommand("web1", dry_run=True)),
    ],
)
def test_failover_parses(text: str, want: FailoverCommand) -> None:
    assert parse_failover(text) == want


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("www-a to", "'to' needs a host name after it"),
        ("www-a web2", "unexpected 'web2'"),
        ("www-a to web2 to web3", "unexpected 'to'"),
        ("www-a dry-run dry-run", "unexpected 'dry-run'"),
        ("www-a;reboot", "'www-a;reboot' is not a name, prefix or keyword"),
        ("$(reload)", "is not a name, prefix or keyword"),
        ("help me", "help takes no more words"),
        ("www-a to `web2`", "is not a name"),
    ],
)
def test_failover_refuses_with_a_short_reason(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        parse_failover(text)


def test_status_parses() -> None:
    assert parse_status("") == StatusCommand()
    assert parse_status("HELP") == StatusCommand(help=True)
    assert parse_status("web1") == StatusCommand("web1")
    with pytest.raises(UsageError, match="at most one name"):
        parse_status("web1 web2")


def test_help_is_written_from_the_grammar() -> None:
    assert FAILOVER.help().splitlines()[0] == "`/failover SERVICE|PREFIX|HOST [to HOST] [dry-run]`"
    assert "• `/failover www-a to web2`" in FAILOVER.help()
    for example in FAILOVER.examples:
        parse_failover(example)  # every example in the help parses
    for example in STATUS.examples:
        parse_status(example)
