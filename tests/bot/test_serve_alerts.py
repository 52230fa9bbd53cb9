"""What the serve daemon says, from check results fed in: one alert per outage, recovery, flapping.

No root and no lab: the daemon's own result handler gets results the test chooses
(`support.daemon`), over memory routers and a real SQLite store. The lab versions
(test_serve_lab.py) prove the same with real checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import DaemonRig, daemon_rig, serve_inventory

from bot import incident_view as iv
from bot.health.state import Health

HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
# rise above 2: with 2, DOWN -> RISING -> UP would pass even if `rise` were never counted.
FALL, RISE = 3, 3


@pytest.fixture
def d(tmp_path: Path) -> Iterator[DaemonRig]:
    # Automatic failover off everywhere: what is said, not what moves.
    inv = serve_inventory(tmp_path, check=f"{{fall: {FALL}, rise: {RISE}}}")
    yield from daemon_rig(inv, tmp_path, HOME)


def test_a_host_failing_fall_checks_goes_down_once_and_opens_one_incident_with_one_alert(d: DaemonRig) -> None:
    d.down("web1")
    d.rounds(FALL - 1)
    assert d.state("www-a", "web1") is Health.FALLING
    assert d.chat.sent == [] and d.all_incidents() == []  # in doubt is not news

    d.round()
    assert {d.state(s, "web1") for s in HOME} == {Health.DOWN}
    (alert,) = d.chat.parents()
    assert alert.text.startswith("[DOWN] OPEN web1 is down")
    (record,) = d.incidents()
    assert record.title == "web1 is down" and (record.channel, record.thread_ts) == (alert.ref.channel, alert.ref.ts)
    downs = [e.member for e in record.events if e.kind == iv.DOWN]
    assert downs == ["host:web1"] * 3  # one event per service of the host, all in the one incident

    before = list(d.chat.sent)
    d.rounds(5)  # still failing: nothing new to say
    assert d.chat.sent == before
    assert len(d.all_incidents()) == 1


def test_fewer_than_fall_failures_are_a_blip_nobody_hears_of(d: DaemonRig) -> None:
    d.down("web1")
    d.rounds(FALL - 1)
    d.heal("web1")
    d.round()
    assert d.state("www-a", "web1") is Health.UP
    assert d.chat.sent == [] and d.all_incidents() == []


def test_two_hosts_failing_together_are_one_incident(d: DaemonRig) -> None:
    # web1 and web2 fail in the same round: one alert for both, not one each.
    d.down("web1", "web2")
    d.rounds(FALL + 2)
    assert len(d.chat.parents()) == 1
    (record,) = d.incidents()
    assert {e.member for e in record.events if e.kind == iv.DOWN} == {"host:web1", "host:web2"}


def test_with_auto_failover_off_the_alert_offers_the_move_and_nothing_moves(d: DaemonRig) -> None:
    d.down("web1")
    d.rounds(FALL + 3)
    (alert,) = d.chat.parents()
    now = d.chat.last_version(alert.ref)
    # www-a and www-d are both on web1: one button moves both, and each move can be typed.
    assert [b.label for b in now.message.buttons] == ["Fail over all", "Acknowledge", "Maintenance 1h"]
    assert "Or type: `/failover www-a to web3` · `/failover www-d to web2`" in now.text
    assert d.rig.serving("www-a") == d.rig.serving("www-d") == {"web1"}
    assert d.store.recent_changes() == [] and [r.action for r in d.store.history()] == []
    # Off is the normal case, which the buttons answer: no "automatic failover is off" line.
    assert not any("automatic" in line for line in d.chat.thread_lines())


def test_recovery_rises_then_resolves_the_incident_after_rise_passes(d: DaemonRig) -> None:
    d.down("web1")
    d.rounds(FALL)
    d.heal("web1")
    for _ in range(RISE - 1):
        d.round()
        assert d.state("www-a", "web1") is Health.RISING
        assert len(d.incidents()) == 1  # not trusted yet

    d.round()
    assert {d.state(s, "web1") for s in HOME} == {Health.UP}
    assert d.incidents() == []
    view = d.incident()
    assert view.status == "resolved" and view.events[-1].kind == iv.RESOLVED
    (alert,) = d.chat.parents()
    assert d.chat.last_version(alert.ref).text.startswith("[ok] RESOLVED web1 was down")
    # Down for as long as the rising took: one round (a second) per pass.
    assert d.chat.thread_lines()[-1].endswith(f"web1 is back up; all clear after {RISE}s")


def test_a_failure_while_rising_is_down_again_without_a_second_alert(d: DaemonRig) -> None:
    d.down("web1")
    d.rounds(FALL)
    d.heal("web1")
    d.round()
    assert d.state("www-a", "web1") is Health.RISING
    said = len(d.chat.sent)
    d.down("web1")
    d.round()
    assert d.state("www-a", "web1") is Health.DOWN
    assert len(d.chat.sent) == said and len(d.incidents()) == 1


def test_a_flapping_host_is_said_once_then_left_quiet_and_never_moved(d: DaemonRig) -> None:
    # The policy's default: flapping at 4 changes in 5 minutes, i.e. the second time back up.
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert d.daemon.flapping() == {"web2"}
    flapping = [line for line in d.chat.thread_lines() if "web2 is flapping" in line]
    assert len(flapping) == 1
    said = len(d.chat.sent)

    d.flap("web2", 3, fall=FALL, rise=RISE)
    assert len(d.chat.sent) == said  # no alert, no thread line, no parent update
    # Its incident stays open while it flaps: it is not over.
    assert [r.title for r in d.incidents()] == ["web2 is down"]
    assert d.store.recent_changes() == []


def test_changes_spread_wider_than_the_flapping_window_are_not_flapping(d: DaemonRig) -> None:
    for _ in range(2):
        d.flap("web2", 1, fall=FALL, rise=RISE)
        d.advance(301)  # the default window is 5 minutes
    assert d.daemon.flapping() == set()
    assert not any("flapping" in s.text for s in d.chat.sent)
    assert len(d.chat.parents()) == 2  # two separate outages, each said


def test_a_flapping_host_that_settles_resolves_its_incident(d: DaemonRig) -> None:
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert len(d.incidents()) == 1
    d.advance(299)
    d.housekeeping()
    assert len(d.incidents()) == 1  # still inside the window: not yet stable
    d.advance(2)
    d.housekeeping()
    assert d.incidents() == [] and d.daemon.flapping() == set()
