"""What every chat back end shares (bot.chat): actors, times, escaping, button values, messages, the Recorder."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.chat import (
    Actor,
    Button,
    Buttons,
    Message,
    MessageRef,
    Note,
    Recorder,
    Text,
    decode,
    encode,
    escape,
    when,
    who,
)

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
EPOCH = int(T0.timestamp())


def test_an_actor_is_named_by_back_end_and_id() -> None:
    assert Actor("U0ALICE", "slack", "C0ALERTS").ref == "slack:U0ALICE"
    assert Actor("root", "cli").ref == "cli:root"


@pytest.mark.parametrize(("ref", "shown"), [
    ("slack:U0ALICE", "<@U0ALICE>"),
    ("console:alice", "<@alice>"),
    ("cli:root", "root (CLI)"),
    ("lasthop", "lasthop (automatic)"),
    ("auto", "lasthop (automatic)"),
    ("auto:lasthop", "lasthop (automatic)"),
    ("slack:", "slack:"),
    ("reconcile", "reconcile"),
])
def test_who_shows_an_actor_reference(ref: str, shown: str) -> None:
    assert who(ref) == shown


def test_when_is_a_date_token_with_a_utc_fallback() -> None:
    assert when(T0) == f"<!date^{EPOCH}^{{time}}|03:04 UTC>"
    assert when(T0, "{time_secs}") == f"<!date^{EPOCH}^{{time_secs}}|03:04:05 UTC>"
    assert when(T0, "{date_short} {time}") == f"<!date^{EPOCH}^{{date_short}} {{time}}|03:04 UTC>"


def test_when_falls_back_to_utc_whatever_the_zone_of_the_time() -> None:
    two_hours_east = T0.astimezone(timezone(timedelta(hours=2)))
    assert when(two_hours_east) == when(T0)


@pytest.mark.parametrize(("raw", "inert"), [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<@U0BOSS|boss> & co", "&lt;@U0BOSS|boss&gt; &amp; co"),
    ("&lt;", "&amp;lt;"),  # the ampersand first, so an escape is never undone
    ("web1: connect timeout 'x' \"y\"", "web1: connect timeout 'x' \"y\""),
])
def test_escape_makes_text_inert(raw: str, inert: str) -> None:
    assert escape(raw) == inert


def test_a_button_value_is_compact_sorted_json_and_reads_back() -> None:
    value = encode(s="www-a", i=7, h=["web1"])
    assert value == '{"h":["web1"],"i":7,"s":"www-a"}'
    assert decode(value) == {"h": ["web1"], "i": 7, "s": "www-a"}


@pytest.mark.parametrize("garbage", ["", "{", "not json", "null", "[1, 2]", "7", '"text"', "NaN"])
def test_a_value_that_is_no_json_object_decodes_to_nothing(garbage: str) -> None:
    assert decode(garbage) == {}


def test_decode_of_no_string_at_all_is_nothing() -> None:
    assert decode(None) == {}  # type: ignore[arg-type]


def test_message_buttons_are_every_button_in_order() -> None:
    a, b, c = (Button(x, "press", x) for x in "abc")
    m = Message("fallback", (Text("t"), Buttons((a, b)), Note("n"), Buttons((c,))))
    assert m.buttons == (a, b, c)
    assert Message.of("hello") == Message("hello", (Text("hello"),)) and Message.of("hello").buttons == ()


def test_the_recorder_keeps_what_was_sent_in_order_and_resolves_threads() -> None:
    seen: list[tuple[str, MessageRef, str, MessageRef | None]] = []
    chat = Recorder(on_send=lambda how, ref, m, parent: seen.append((how, ref, m.fallback, parent)))
    first = chat.post("C0ALERTS", Message.of("parent"))
    assert first.done() and first.result() == MessageRef("C0ALERTS", "1")
    pending: Future[MessageRef] = Future()
    pending.set_result(first.result())
    reply = chat.post("C0ALERTS", Message.of("in the thread"), thread=pending).result()
    direct = chat.post("C0OPS", Message.of("also threaded"), thread=first.result()).result()
    updated = chat.update(first.result(), Message.of("parent, now")).result()
    assert (reply, direct, updated) == (MessageRef("C0ALERTS", "2"), MessageRef("C0OPS", "3"), first.result())
    assert [(how, ref, m.fallback) for how, ref, m in chat.sent] == [
        ("post", MessageRef("C0ALERTS", "1"), "parent"),
        ("post", MessageRef("C0ALERTS", "2"), "in the thread"),
        ("post", MessageRef("C0OPS", "3"), "also threaded"),
        ("update", MessageRef("C0ALERTS", "1"), "parent, now"),
    ]
    assert [parent for *_, parent in seen] == [None, first.result(), first.result(), None]
