"""Incidents told in chat (bot.announce): one parent message kept current, everything else in its thread."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.fakes import ManualClock, inventory_from_text
from support.lan import THREE_HOSTS

from bot.announce import Announcer
from bot.chat import Buttons, Message, MessageRef, Note, Recorder
from bot.health.machine import Transition
from bot.health.state import Health
from bot.incidents import IncidentTracker, IncidentUpdate
from bot.inventory import Inventory
from bot.notify import LogOut
from bot.situation import Situation
from bot.state import StateStore, utcnow

CHANNEL = "C0ALERTS"


@dataclass
class Chat(Recorder):
    """A Recorder that also notes which thread each post went to."""

    threads: list[MessageRef | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.on_send = lambda how, ref, message, parent: self.threads.append(parent) if how == "post" else None

    def posts(self) -> list[tuple[MessageRef, MessageRef | None, str]]:
        """(where, in which thread, fallback) of every post, in order."""
        refs = [(ref, m.fallback) for how, ref, m in self.sent if how == "post"]
        return [(ref, parent, text) for (ref, text), parent in zip(refs, self.threads, strict=True)]

    def updates(self) -> list[tuple[MessageRef, Message]]:
        return [(ref, m) for how, ref, m in self.sent if how == "update"]


@dataclass
class World:
    """What the parent message is rendered against: health and routes now."""

    health: dict[tuple[str, str], Health]
    serving: dict[str, str | None]

    def __call__(self) -> Situation:
        return Situation(dict(self.health), dict(self.serving))


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory_from_text(tmp_path, THREE_HOSTS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(f"sqlite:///{tmp_path}/s.db") as s:
        yield s


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tracker(store: StateStore, inv: Inventory, clock: ManualClock) -> IncidentTracker:
    return IncidentTracker(store, inv, clock=clock)


@pytest.fixture
def world(inv: Inventory) -> World:
    return World({(s.name, h): Health.UP for s in inv.services.values() for h in s.hosts},
                 {"www-a": "web1", "www-b": "web2"})


def announcer(inv: Inventory, store: StateStore, chat: Recorder, world: World) -> Announcer:
    return Announcer(inv, store, chat, CHANNEL, situation=world, now=utcnow)


def text_of(message: Message) -> str:
    return "\n".join(p.text for p in message.parts if not isinstance(p, Buttons))


def change(tracker: IncidentTracker, world: World, service: str, host: str, new: Health) -> IncidentUpdate:
    old = world.health[(service, host)]
    world.health[(service, host)] = new
    (update,) = tracker.on_transition(Transition((service, host), old, new, 0.0, "test"), serving=world.serving)
    return update


def test_an_opened_incident_posts_its_parent_then_a_thread_line(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World
) -> None:
    chat = Chat()
    update = change(tracker, world, "www-a", "web1", Health.DOWN)
    announcer(inv, store, chat, world).incident(update)
    (parent, in_thread, head), (line, thread, text) = chat.posts()
    assert in_thread is None and parent.channel == CHANNEL
    assert head.startswith("web1 is down: :red_circle: *OPEN* web1 is down since")
    assert (line.channel, thread, text) == (CHANNEL, parent, "web1 is down for www-a (www-a: test)")
    assert chat.updates() == []  # the parent was rendered with this event already
    record = store.get_incident(update.incident_id)
    assert record is not None and (record.channel, record.thread_ts) == (parent.channel, parent.ts)
    (_, _, posted) = chat.sent[0]
    assert [b.label for b in posted.buttons] == ["Fail over www-a to web3", "Acknowledge", "Maintenance 1h"]
    assert any(isinstance(p, Note) and "`/failover www-a to web3`" in p.text for p in posted.parts)


def test_later_updates_go_to_the_thread_and_re_render_the_parent(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World
) -> None:
    chat = Chat()
    tell = announcer(inv, store, chat, world)
    tell.incident(change(tracker, world, "www-a", "web1", Health.DOWN))
    parent = chat.posts()[0][0]
    tell.incident(change(tracker, world, "www-b", "web1", Health.DOWN))
    assert chat.posts()[-1][1:] == (parent, "web1 is down for www-a and www-b (www-b: test)")
    ((ref, rendered),) = chat.updates()
    assert ref == parent and "*www-b* → web2" in text_of(rendered)

    tell.incident(change(tracker, world, "www-a", "web1", Health.UP))
    resolved = change(tracker, world, "www-b", "web1", Health.UP)
    assert resolved.kind == "resolved"
    tell.incident(resolved)
    assert chat.posts()[-1][1] == parent and chat.posts()[-1][2].startswith("web1 is back up; all clear")
    assert chat.updates()[-1][0] == parent and "*RESOLVED*" in chat.updates()[-1][1].fallback
    assert len([p for p in chat.posts() if p[1] is None]) == 1  # one parent, ever


def test_a_new_announcer_continues_the_same_thread_after_load(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World
) -> None:
    first = Chat()
    announcer(inv, store, first, world).incident(change(tracker, world, "www-a", "web1", Health.DOWN))
    parent = first.posts()[0][0]

    # A restart: a new process, a new poster, the same store.
    again = Chat()
    later = announcer(inv, store, again, world)
    later.load()
    later.refresh_open()
    assert [ref for ref, _ in again.updates()] == [parent]
    later.incident(change(tracker, world, "www-b", "web1", Health.DOWN))
    assert [thread for _, thread, _ in again.posts()] == [parent]  # a thread line, no second parent
    later_parent = later.parent_of(store.open_incidents()[0].id)
    assert later_parent is not None and later_parent.result() == parent


def test_refresh_open_re_renders_only_open_parents_with_the_routes_now(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World, clock: ManualClock
) -> None:
    chat = Chat()
    tell = announcer(inv, store, chat, world)
    tell.incident(change(tracker, world, "www-a", "web1", Health.DOWN))
    clock.now += 60  # past the group window: web2 is an incident of its own
    tell.incident(change(tracker, world, "www-b", "web2", Health.DOWN))
    web1_parent, web2_parent = (ref for ref, thread, _ in chat.posts() if thread is None)
    tell.incident(change(tracker, world, "www-b", "web2", Health.UP))  # web2's incident resolves
    before = len(chat.updates())

    world.serving["www-a"] = "web3"  # moved, by whoever
    tell.refresh_open()
    ((ref, rendered),) = chat.updates()[before:]
    assert ref == web1_parent != web2_parent
    assert "*www-a* → web3 :white_check_mark:" in text_of(rendered)


def test_alarm_over_answers_in_the_alarm_s_thread(inv: Inventory, store: StateStore, world: World) -> None:
    chat = Chat()
    tell = announcer(inv, store, chat, world)
    tell.alarm("drift:www-a", "r1 198.51.100.32/27 points at web2, but lasthop last set web1")
    tell.alarm_over("drift:www-a", "r1 matches what lasthop expects again")
    tell.alarm_over("drift:www-a", "said again")  # the alarm is over: no thread left to answer in
    (alarm, none, said), (_, thread, text), (_, last_thread, _) = chat.posts()
    assert none is None and said == ":warning: r1 198.51.100.32/27 points at web2, but lasthop last set web1"
    assert (thread, text) == (alarm, ":white_check_mark: r1 matches what lasthop expects again")
    assert last_thread is None


def test_info_goes_to_the_incident_thread_or_the_channel(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World
) -> None:
    chat = Chat()
    tell = announcer(inv, store, chat, world)
    update = change(tracker, world, "www-a", "web1", Health.DOWN)
    tell.incident(update)
    parent = chat.posts()[0][0]
    tell.info("automatic failover is off for www-a", update.incident_id)
    tell.info("lasthop started")
    assert chat.posts()[-2:] == [(chat.posts()[-2][0], parent, "automatic failover is off for www-a"),
                                 (chat.posts()[-1][0], None, "lasthop started")]


def test_a_follower_waits_for_the_leaders_parent_and_never_posts_one_of_its_own(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World
) -> None:
    update = change(tracker, world, "www-a", "web1", Health.DOWN)  # opened; the leader's parent not posted yet
    chat = Chat()
    follower = Announcer(inv, store, chat, CHANNEL, situation=world, now=utcnow, opens_threads=lambda: False)
    said = threading.Thread(target=follower.info, args=("acknowledged by bob", update.incident_id))
    said.start()
    time.sleep(0.3)  # the line waits meanwhile (joined below, bounded)
    store.set_incident_thread(update.incident_id, channel=CHANNEL, ts="1700000000.000100")  # the leader's post
    said.join(15)
    ((_, thread, text),) = chat.posts()
    assert (thread, text) == (MessageRef(CHANNEL, "1700000000.000100"), "acknowledged by bob")


def test_a_follower_whose_leader_never_posts_a_parent_says_it_in_the_channel(
    inv: Inventory, store: StateStore, tracker: IncidentTracker, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.announce.THREAD_WAIT_S", 0.3)
    update = change(tracker, world, "www-a", "web1", Health.DOWN)
    out = LogOut(io.StringIO())  # as Slack's poster does: a thread that never came means the channel
    follower = Announcer(inv, store, out, CHANNEL, situation=world, now=utcnow, opens_threads=lambda: False)
    follower.info("acknowledged by bob", update.incident_id)
    assert [(kind, text, parent) for kind, _, text, parent in out.sent] == [("post", "acknowledged by bob", None)]
    record = store.get_incident(update.incident_id)
    assert record is not None and not record.thread_ts  # the leader's parent, when it comes, is the only one
