"""Fault suite: anything typed in chat, through the parser, the workflow and the console, on memory devices.

Inputs are random text and text built from real command words and inventory names mixed with
shell injections (`;`, `|`, newlines, `$(...)`, backticks), Slack markup, control characters,
look-alike unicode and very long words. For every input: no exception but a UsageError leaves
the parser; a reply is short, and the only markup in it is lasthop's own (a mention of the
person acting, the alert channel, a date); the console prints no control character; and every
line a router receives is one of a fixed set built from the inventory alone (a route line for
an inventory prefix and host address, or a mode command), so no typed text reaches a device.

Deterministic (derandomized, no example database); the example counts are the constants below.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.ledger import Tally
from support.memory import Rig, memory_rig

from bot.chat import Actor, Answer, Buttons, Code, Message, Note, Recorder, Text
from bot.commands import (
    CommandNames,
    FailoverCommand,
    HelpCommand,
    MaintenanceCommand,
    StatusCommand,
    UsageError,
    help_text,
    parse,
)
from bot.console import Console, ConsoleOut
from bot.health.state import Health
from bot.views import Phrasing
from bot.workflow import Workflow

LEDGER_GROUP = "chat text"
PARSER_EXAMPLES = 7000
WORKFLOW_EXAMPLES = 1500
CONSOLE_EXAMPLES = 1500
TOTAL_EXAMPLES = PARSER_EXAMPLES + WORKFLOW_EXAMPLES + CONSOLE_EXAMPLES  # >= 10,000 chat inputs
REPLY_LIMIT = 3000  # one Slack section; lasthop's longest answers here (a status of 3 services) are far below

ALERTS = "C0ALERTS"
INVENTORY = THREE_HOSTS + f"""
slack:
  alert_channel: {ALERTS}
  channels: [{ALERTS}]
  roles:
    operators: [U0ALICE]
    approvers: [U0BOB]
"""
HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
ALICE, BOB = Actor("U0ALICE", "slack", ALERTS), Actor("U0BOB", "slack", ALERTS)
NAMES = CommandNames()

# lasthop's own markup: mentions of the people acting, the alert channel, Slack date tokens.
_OWN_MARKUP = re.compile(r"<@U0(?:ALICE|BOB)>|<#" + ALERTS + r">|<!date\^\d+\^\{[a-z_]+\}\|[^<>]*>")

WORDS = ["status", "failover", "maintenance", "help", "to", "dry-run", "--dry-run", "on", "off", "www-a", "www-b",
         "www-d", "web1", "web2", "web3", "WWW-A", "198.51.100.32/27", "198.51.100.33", "198.51.100.64/27",
         "192.0.2.2", "192.0.2.4", "2h", "30m", "1h30m", "10", "169h", '"kernel update"', '"<!channel> &"', "r1"]
INJECTIONS = [";", "|", "\n", "$(reboot)", "`id`", "&&", "<!channel>", "<!here>", "<@U123>", "<#C123>",
              "<https://x|y>", "&", "&lt;", "\x1b[2J", "\x00", "\u202e", "\u200b", "é", "ｗｗｗ-ａ", "web1;reload",
              "www-a|write erase", "web2\nreload", "198.51.100.32/27;no ip route", "ip route 0.0.0.0/0 192.0.2.9",
              "x" * 300, "%s%n", "{x}", "'", '"', "\\"]
SEPARATORS = [" ", "  ", "", "\t", " \u00a0"]

FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _built() -> st.SearchStrategy[str]:
    token = st.sampled_from(WORDS) | st.sampled_from(INJECTIONS)
    joined = st.lists(st.tuples(token, st.sampled_from(SEPARATORS)), max_size=7)
    return joined.map(lambda parts: "".join(t + s for t, s in parts))


def _grammar() -> st.SearchStrategy[str]:
    """Commands that parse, mostly: real names (some with an injection glued on) and free-text reasons."""
    plain = st.sampled_from(["www-a", "www-b", "www-d", "web1", "web2", "web3", "WWW-B", "198.51.100.32/27",
                             "198.51.100.65", "192.0.2.4", "198.51.100.200", "www-z"])
    name = plain | st.tuples(plain, st.sampled_from(INJECTIONS)).map("".join)
    host = st.sampled_from(["web1", "web2", "web3"])
    reason = st.text(st.sampled_from(list("ab <>!@#&|;$`'\\é\u202e")), max_size=30) | st.sampled_from(INJECTIONS)
    return st.one_of(
        name.map(lambda n: f"status {n}"),
        st.tuples(name, host, st.sampled_from(["", " dry-run"])).map(lambda t: f"failover {t[0]} to {t[1]}{t[2]}"),
        name.map(lambda n: f"failover {n}"),
        st.tuples(host, st.sampled_from(["", " 2h", " 30m"]), reason).map(
            lambda t: f'maintenance {t[0]} on{t[1]} "{t[2]}"'),
        host.map(lambda h: f"maintenance {h} on"),
        host.map(lambda h: f"maintenance {h} off"),
    )


GRAMMAR = _grammar()
TEXT = st.one_of(st.text(max_size=80), _built(), _built().map(lambda t: t + " " + "y" * 2000))
# Half of what the workflow gets parses, so that plans, approvals and moves are reached.
WORKFLOW_INPUT = st.one_of(GRAMMAR.map(lambda t: ("/lasthop", t)), GRAMMAR.map(lambda t: ("/lasthop", t)),
                           st.tuples(st.sampled_from(NAMES.all()), TEXT))
COMMAND = st.sampled_from([*NAMES.all(), "/status", "/lasthop\n", "/<!channel>", ""]) | st.text(max_size=10)


def device_lines(rig: Rig) -> frozenset[str]:
    """Every line the engine may send the FRR router, built from the inventory only."""
    prefixes = [str(s.prefix) for s in rig.inv.services.values()]
    addresses = [str(h.address) for h in rig.inv.hosts.values()]
    routes = {f"{no}ip route {p} {a}" for no in ("", "no ") for p in prefixes for a in addresses}
    return frozenset({"configure terminal", "end", "write memory", *routes})


def check_reply(message: Message) -> None:
    texts = [message.fallback, *(p.text for p in message.parts if isinstance(p, Text | Note | Code))]
    texts += [b.label for p in message.parts if isinstance(p, Buttons) for b in p.buttons]
    for text in texts:
        assert len(text) <= REPLY_LIMIT, f"a reply of {len(text)} characters"
        assert "<" not in _OWN_MARKUP.sub("", text), f"markup that is not lasthop's own: {text[:200]!r}"


def check_device(rig: Rig, before: int) -> None:
    allowed = device_lines(rig)
    sent = rig.routers["r1"].commands[before:]
    assert all(line in allowed for line in sent), [line for line in sent if line not in allowed]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-workflow")
    r = memory_rig(inventory_from_text(tmp, INVENTORY), tmp, HOME, {("www-a", "web1"): Health.DOWN})
    yield r
    r.close()


# ---------------------------------------------------------------- the parser


@settings(FUZZ, max_examples=PARSER_EXAMPLES)
@given(command=COMMAND, text=TEXT)
def test_the_parser_answers_anything_with_a_command_or_a_short_inert_usage_error(tally: Tally, command: str,
                                                                                text: str) -> None:
    tally.run()
    try:
        cmd = parse(NAMES, command, text)
    except UsageError as e:
        message = str(e)
        assert 0 < len(message) < 120 and "\n" not in message
        assert "<" not in message and ">" not in message and "&" not in message, message
        assert e.topic in (None, "status", "failover", "maintenance")
        return
    assert isinstance(cmd, StatusCommand | FailoverCommand | MaintenanceCommand | HelpCommand)
    if isinstance(cmd, MaintenanceCommand):
        assert all(c.isprintable() for c in cmd.reason) and len(cmd.reason) <= 200
    # Names are words: no separator, markup or shell character survives the parser.
    for name in (getattr(cmd, "target", None), getattr(cmd, "to_host", None), getattr(cmd, "host", None)):
        assert name is None or re.fullmatch(r"(?:--)?[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}", name), name


# ---------------------------------------------------------------- the workflow, as Slack drives it


@pytest.fixture(scope="module")
def chat(rig: Rig) -> tuple[Workflow, Recorder]:
    out = Recorder()
    return Workflow(rig.inv, rig.engine, rig.store, out=out, alert_channel=ALERTS,
                    phrasing=Phrasing(rig.inv.slack.commands)), out


def _run(wf: Workflow, cmd: object) -> Answer | None:
    if isinstance(cmd, StatusCommand):
        return wf.status(ALICE, cmd.target)
    if isinstance(cmd, FailoverCommand) and cmd.target is not None:
        return wf.request(ALICE, cmd)
    if isinstance(cmd, MaintenanceCommand):
        return wf.maintenance(ALICE, cmd)
    return None  # help, or the form a Slack client would open


@settings(FUZZ, max_examples=WORKFLOW_EXAMPLES)
@given(typed=WORKFLOW_INPUT, follow=st.sampled_from([True, True, True, False]))
def test_what_the_workflow_answers_is_short_inert_and_sends_routers_only_inventory_lines(
        rig: Rig, chat: tuple[Workflow, Recorder], tally: Tally, typed: tuple[str, str], follow: bool) -> None:
    tally.run()
    wf, out = chat
    command, text = typed
    lines, posted = len(rig.routers["r1"].commands), len(out.sent)
    try:
        cmd = parse(NAMES, command, text)
    except UsageError as e:
        check_reply(Message.of(f"{e}\n{help_text(NAMES, e.topic)}"))
        return
    answer = _run(wf, cmd)
    if answer is not None:
        check_reply(answer.message)
        if follow and answer.offer is not None:  # the button a person would press next
            if answer.offer.kind == "confirm" and isinstance(cmd, FailoverCommand):
                then = wf.confirm(ALICE, answer.offer.approval_id)
            elif answer.offer.kind == "confirm":
                then = wf.press(ALICE, "maintenance", answer.offer.approval_id)
            else:
                then = wf.decide(BOB, answer.offer.approval_id, "approved")
            if then is not None:
                check_reply(then.message)
        for h in rig.inv.hosts:  # so that later inputs can still move traffic to every host
            rig.store.clear_maintenance(h)
    for _, _, message in out.sent[posted:]:
        check_reply(message)
    check_device(rig, lines)


# ---------------------------------------------------------------- the console


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, Rig]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-console")
    r = memory_rig(inventory_from_text(tmp, INVENTORY), tmp, HOME, {("www-a", "web1"): Health.DOWN})
    out = ConsoleOut(io.StringIO())
    wf = Workflow(r.inv, r.engine, r.store, out=out, alert_channel=ALERTS)
    yield Console(wf, out, user="alice", sleep=lambda seconds: None), r
    r.close()


CONSOLE_LINE = st.one_of(
    GRAMMAR.map(lambda t: f"/lasthop {t}"),
    GRAMMAR.map(lambda t: f"/lasthop {t}"),
    st.tuples(st.sampled_from(NAMES.all()), TEXT).map(" ".join),
    st.sampled_from(["1", "approve 2", "as bob approve 3", "as <!channel> approve 1", "press <!channel>",
                     "press \x1b[2J", "user \x1b[2J", "auto on", "lab break web1", "help", "quit"]),
    TEXT,
).filter(lambda line: line.split(maxsplit=1)[:1] not in (["wait"], ["sleep"]))  # scripts' own, with real waits
# What a person types next: the button the answer offered, often.
PRESS = st.sampled_from(["", "press Confirm", "as bob press Approve", "press Drain", "press Cancel"])


@settings(FUZZ, max_examples=CONSOLE_EXAMPLES)
@given(line=CONSOLE_LINE, then=PRESS)
def test_the_console_prints_no_control_character_and_sends_routers_only_inventory_lines(
        console: tuple[Console, Rig], tally: Tally, line: str, then: str) -> None:
    tally.run()
    con, rig = console
    shown, lines = len(con.out.lines), len(rig.routers["r1"].commands)
    con.line(line)
    con.line(then)
    for printed in con.out.lines[shown:]:
        assert all(c.isprintable() for c in printed), f"unprintable in {printed[:200]!r}"
        assert len(printed) <= REPLY_LIMIT
    check_device(rig, lines)
    for h in rig.inv.hosts:
        rig.store.clear_maintenance(h)
