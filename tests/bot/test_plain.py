"""The common markup as terminal text (bot.plain): what the console, the log and the CLI show."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.chat import Button, Buttons, Code, Message, Note, Text, escape, when
from bot.plain import render, text

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def plus_five_thirty(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local zone is UTC+5:30 (a POSIX TZ string: no time zone database needed)."""
    monkeypatch.setenv("TZ", "XST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("markup", "shown"), [
    ("*OPEN* web1 is down", "OPEN web1 is down"),
    ("a *bold* word and *another*", "a bold word and another"),
    ("2*3*4 stays arithmetic", "2*3*4 stays arithmetic"),
    ("_apply 120 ms, total 900 ms_", "apply 120 ms, total 900 ms"),
    ("www_a_b keeps its underscores", "www_a_b keeps its underscores"),
    ("asked by <@U0ALICE>", "asked by @U0ALICE"),
    ("asked by <@U0ALICE|alice>", "asked by @U0ALICE"),
    ("asked in <#C0ALERTS>", "asked in #C0ALERTS"),
    ("asked in <#C0ALERTS|alerts>", "asked in #alerts"),
    (":red_circle: *OPEN*", "[DOWN] OPEN"),
    (":white_check_mark: Done", "[ok] Done"),
    (":rotating_light: FAILED", "[ALERT] FAILED"),
    (":tada: unknown emoji stay", ":tada: unknown emoji stay"),
    ("at 12:30:45 UTC", "at 12:30:45 UTC"),
])
def test_markup_becomes_plain_text(markup: str, shown: str) -> None:
    assert text(markup) == shown


def test_date_tokens_become_the_local_time(plus_five_thirty: None) -> None:
    assert text(f"since {when(T0)}") == "since 08:34"
    assert text(f"{when(T0, '{time_secs}')} web1 is back up") == "08:34:05 web1 is back up"


def test_escaped_text_is_unescaped_last_so_it_stays_inert() -> None:
    said = escape("<@U0BOSS> & <!channel> *not news*")
    # Unescaped after the mention rule ran: the terminal shows what was typed, not "@U0BOSS".
    assert text(said) == "<@U0BOSS> & <!channel> not news"
    assert text(escape("&lt;")) == "&lt;"  # unescaped once, not twice


def message() -> Message:
    return Message("Approval needed", (
        Text("*Plan* (www-a):\n• www-a: web1 -> web2"),
        Note("Commands on r1:"),
        Code("ip route 198.51.100.32/27 192.0.2.3\n*raw* &lt;as sent&gt;"),
        Buttons((Button("Approve", "approve", "a1"), Button("Deny", "deny", "a1"),
                 Button("Open in Slack", "link", ""))),
    ))


def test_render_numbers_the_buttons_that_can_be_pressed_here() -> None:
    numbers = {"Approve": 1, "Deny": 2}
    assert render(message(), lambda b: numbers.get(b.label)).splitlines() == [
        "Plan (www-a):",
        "• www-a: web1 -> web2",
        "  Commands on r1:",
        "    ip route 198.51.100.32/27 192.0.2.3",
        "    *raw* &lt;as sent&gt;",  # code is shown as it is sent, never reformatted
        "[1] Approve  [2] Deny  [Open in Slack]",
    ]


def test_render_without_buttons_and_with_an_indent() -> None:
    lines = render(message(), indent="| ", buttons=False).splitlines()
    assert lines[0] == "| Plan (www-a):" and all(line.startswith("| ") for line in lines)
    assert not any("Approve" in line for line in lines)
    assert render(message()).splitlines()[-1] == "[Approve]  [Deny]  [Open in Slack]"  # no numbering given


def test_a_message_without_parts_renders_its_fallback() -> None:
    assert render(Message(":x: *Failed*")) == "[x] Failed"
