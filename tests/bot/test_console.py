"""The console's own commands, over a real (not started) daemon and store: the automatic failover switch.

The lab test (test_console_lab.py) shows the switch moving traffic; here, what each line says and
changes, and that bad input changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS

from bot.console import CHANNEL, Console, ConsoleOut
from bot.health.state import Health
from bot.serve import Daemon
from bot.state import StateStore
from bot.workflow import Workflow

INVENTORY = THREE_HOSTS.replace("vips: [198.51.100.33]}", "vips: [198.51.100.33], auto_failover: true}") + """
policy:
  auto_failover: {enabled: true}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    inv = inventory_from_text(tmp_path, INVENTORY)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    d = Daemon(inv, store, ConsoleOut(io.StringIO()), channel=CHANNEL)
    yield d
    d.engine.close()
    store.close()


@pytest.fixture
def console(daemon: Daemon) -> Console:
    out = daemon.announcer.out
    assert isinstance(out, ConsoleOut)
    workflow = Workflow(daemon.inv, daemon.engine, daemon.store, out=out, alert_channel=CHANNEL, incidents=daemon)
    return Console(workflow, out, user="alice", auto=daemon)


def said(console: Console, line: str) -> str:
    before = len(console.out.lines)
    assert console.line(line)
    return "\n".join(console.out.lines[before:])


def test_auto_shows_the_inventorys_choice_and_how_to_switch(console: Console) -> None:
    assert said(console, "auto").startswith("automatic failover: on for www-a (`auto off`")


def test_auto_off_and_on_switch_the_daemon_and_are_audited(console: Console, daemon: Daemon) -> None:
    assert "alice switched automatic failover off. automatic failover: off" in said(console, "auto off")
    held = daemon.auto.decide("www-a", health={("www-a", "web1"): Health.DOWN}, serving={"www-a": "web1"},
                              flapping=set(), maintenance=set())
    assert daemon.auto.auto_on() == [] and (held.action, held.routine) == ("hold", True)
    assert "on for www-a, www-b, www-d" in said(console, "/lasthop auto on")
    assert "automatic failover: on for www-a, www-d" in said(console, "as bob auto off www-b")
    audit = [(r.actor, r.action, r.target, r.result) for r in daemon.store.history()]
    assert audit == [
        ("console:bob", "auto-failover", "www-b", "off"),
        ("console:alice", "auto-failover", "all services", "on"),
        ("console:alice", "auto-failover", "all services", "off"),
    ]


@pytest.mark.parametrize(("line", "says"), [
    ("auto maybe", "console: auto on|off [SERVICE], e.g. auto on; 'maybe' is not that. Nothing changed."),
    ("auto on www-a now", "'on www-a now' is not that. Nothing changed."),
    ("/lasthop auto off www-z", "console: unknown service 'www-z' (known: www-a, www-b, www-d). Nothing changed."),
    # The terminal shows markup as the text it is; control characters never reach it, nor a screenful.
    ("auto on <!channel>", "console: unknown service '<!channel>' (known:"),
    ("auto on www\x1b[2J", "console: unknown service 'www?[2J' (known:"),
    ("auto on " + "x" * 300, "console: unknown service '" + "x" * 40 + "…' (known:"),
    ("auto \x1b]0;pwned\x07", "e.g. auto on; '?]0;pwned?' is not that."),
])
def test_bad_input_says_what_is_wrong_and_changes_nothing(console: Console, daemon: Daemon, line: str,
                                                          says: str) -> None:
    assert says in said(console, line)
    assert daemon.auto.auto_on() == ["www-a"]
    assert daemon.store.history() == []


def test_a_script_can_wait_for_a_button_that_a_later_update_brings() -> None:
    import threading

    from bot.chat import Button, Buttons, Message, Text
    from bot.console import ConsoleError

    out = ConsoleOut(io.StringIO())
    with pytest.raises(ConsoleError, match=r"waited 0\.05s and saw no button 'Fail over all'"):
        out.wait_button("Fail over all", 0.05)
    later = Message("down", (Text("web1 is down"), Buttons((Button("Fail over all", "failover_all", "x"),))))
    threading.Timer(0.1, lambda: out.post("alerts", later)).start()
    out.wait_button("fail over all", 10)  # returns once the post shows it, whatever came before
    assert out.by_label("Fail over all") is not None
