"""The poster against the Slack stand-in: Slack's pace per channel, 429s waited out, nothing lost, order kept.

The stand-in enforces Slack's rule, one chat.postMessage per channel per `post_interval`,
answering 429 with Retry-After. Most tests run it and the poster at Slack's own one second;
the twenty-incident burst runs both at a quarter of a second, the same rule four times faster.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.slack_standin import SlackStandIn

from bot.announce import Announcer
from bot.chat import Buttons, Message, MessageRef, Text
from bot.incident_view import DOWN
from bot.incidents import IncidentUpdate
from bot.state import StateStore
from handlers.app import SlackSettingsEnv, poster_client
from handlers.poster import Poster

C1 = "C0ALERTS"


def client_for(standin: SlackStandIn):  # type: ignore[no-untyped-def]
    return poster_client(SlackSettingsEnv("xoxb-test", None, None, standin.api_url))


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as s:
        yield s


def test_a_429_is_waited_out_and_every_message_arrives_in_order(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    standin.rate_limit("chat.postMessage", times=2, retry_after=1)
    futures = [poster.post(C1, Message.of(f"alert {i}")) for i in range(3)]
    refs = [f.result(timeout=30) for f in futures]
    calls = standin.calls_to("chat.postMessage")
    # Two refusals, each waited out once: the client itself retries nothing.
    assert [c.status for c in calls] == [429, 429, 200, 200, 200]
    assert [m["text"] for m in standin.channel_messages(C1)] == ["alert 0", "alert 1", "alert 2"]
    assert [r.ts for r in refs] == [m["ts"] for m in standin.channel_messages(C1)]
    poster.close()


def test_the_poster_keeps_to_slacks_pace_so_slack_never_says_429(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    for f in [poster.post(C1, Message.of(f"line {i}")) for i in range(4)]:
        f.result(timeout=30)
    assert standin.rate_limited() == []
    poster.close()


def test_updates_of_one_message_are_coalesced_to_the_newest(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    ref = poster.post(C1, Message.of("opening")).result(timeout=10)
    poster.post(C1, Message.of("keeps the worker busy"))
    updates = [poster.update(ref, Message.of(f"state {i}")) for i in range(5)]
    for u in updates:
        u.result(timeout=20)
    sent = [c.args["text"] for c in standin.calls_to("chat.update")]
    assert sent == ["state 4"]
    assert standin.message(C1, ref.ts)["text"] == "state 4"  # type: ignore[index]
    poster.close()


def test_a_reply_waits_for_its_parent_and_lines_for_one_thread_become_one_message(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    poster.post(C1, Message.of("something else first"))
    parent = poster.post(C1, Message.of("the parent"))
    lines = [poster.post(C1, Message.of(f"line {i}"), thread=parent) for i in range(3)]
    button = poster.post(C1, Message("ask", (Text("ask"), Buttons(()))), thread=parent)
    ts = parent.result(timeout=20).ts
    assert {f.result(timeout=20).ts for f in lines} == {lines[0].result().ts}  # one message for the three
    button.result(timeout=20)
    replies = standin.thread(C1, ts)
    assert [r["text"] for r in replies] == ["line 0\nline 1\nline 2", "ask"]  # a message with buttons stays apart
    assert [m["text"] for m in standin.channel_messages(C1)] == ["something else first", "the parent"]
    poster.close()


def test_a_reply_whose_parent_failed_goes_to_the_channel_rather_than_nowhere(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    failed: Future[MessageRef] = Future()
    failed.set_exception(RuntimeError("the parent was never posted"))
    poster.post(C1, Message.of("still said"), thread=failed).result(timeout=10)
    assert [m["text"] for m in standin.channel_messages(C1)] == ["still said"]
    poster.close()


def test_a_message_slack_can_never_take_fails_alone(standin: SlackStandIn) -> None:
    poster = Poster(client_for(standin))
    gone = poster.update(MessageRef(C1, "1.0"), Message.of("no such message"))
    after = poster.post(C1, Message.of("next"))
    with pytest.raises(Exception, match="message_not_found"):
        gone.result(timeout=10)
    assert after.result(timeout=10).ts
    poster.close()


def test_twenty_incidents_in_one_second_arrive_in_order_with_none_lost_and_no_burst_of_429s(
        tmp_path: Path) -> None:
    with SlackStandIn(post_interval=0.25) as standin:
        poster = Poster(client_for(standin), interval=0.25)
        store = StateStore(f"sqlite:///{tmp_path}/s.db")
        announcer = Announcer(inventory_from_text(tmp_path, THREE_HOSTS), store, poster, C1)
        for n in range(20):
            record = store.open_incident(key=f"host:h{n}", title=f"h{n} is down")
            event = store.add_incident_event(record.id, f"h{n} is down for www-a", kind=DOWN, member="host:web1",
                                             data={"failing": ["www-a"]})
            announcer.incident(IncidentUpdate("opened", record.id, record.key, record.title, event))
        poster.close(timeout=60)
        parents = standin.channel_messages(C1)
        assert len(parents) == 20
        for n, parent in enumerate(parents):
            (line,) = standin.thread(C1, parent["ts"])
            assert f"h{n} is down for www-a" in line["text"]
        # Every thread known to the store, so a restart continues them.
        assert sorted(i.thread_ts for i in store.open_incidents()) == sorted(p["ts"] for p in parents)
        assert len(standin.rate_limited()) <= 1
        store.close()
