"""handlers.gate: the signature first (raw bytes, five minutes either side), then the shape, then Bolt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

import pytest
from support.slack_standin import block_action_body, sign, slash_command_body

from handlers.gate import MAX_AGE, Route, guarded, shape_refusal

SECRET = "gate-secret"
NOW = 1_800_000_000


class Bolt:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, body: bytes, headers: Mapping[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        self.seen.append(body)
        return 200, {}, b"ok"


def gate() -> tuple[Bolt, Route]:
    bolt = Bolt()
    return bolt, guarded(bolt, SECRET, clock=lambda: float(NOW))


COMMAND = slash_command_body("/lasthop", "status", user_id="U1", channel_id="C1", response_url="http://x/")
CLICK = block_action_body("lh.approve.0", "apr-1", user_id="U1", channel_id="C1", message_ts="1.0",
                          response_url="http://x/")


@pytest.mark.parametrize("age", [0, MAX_AGE, -MAX_AGE])
def test_a_request_signed_within_the_window_reaches_bolt(age: int) -> None:
    bolt, handle = gate()
    assert handle(COMMAND, sign(COMMAND, SECRET, NOW - age), "")[0] == 200
    assert bolt.seen == [COMMAND]


@pytest.mark.parametrize("age", [MAX_AGE + 1, -MAX_AGE - 1])
def test_a_request_signed_outside_the_window_is_a_401(age: int) -> None:
    bolt, handle = gate()
    status, _, body = handle(COMMAND, sign(COMMAND, SECRET, NOW - age), "")
    assert (status, body, bolt.seen) == (401, b"stale request timestamp\n", [])


def test_the_signature_covers_bytes_that_are_not_utf8_and_then_the_shape_refuses_them() -> None:
    bolt, handle = gate()
    body = b"payload=\xff"
    assert handle(body, sign(body, SECRET, NOW), "")[:1] == (400,)
    assert handle(body, sign(b"payload=?", SECRET, NOW), "")[:1] == (401,)
    assert bolt.seen == []


def test_an_empty_secret_is_refused_when_the_gate_is_built() -> None:
    with pytest.raises(ValueError, match="signing secret is empty"):
        guarded(Bolt(), "")


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("body, content_type", [
    (COMMAND, FORM),
    (CLICK, "application/x-www-form-urlencoded; charset=utf-8"),
    (b'{"type": "url_verification", "challenge": "c"}', "application/json"),
    (b'{"type": "event_callback", "event": {}}', "application/json"),
    (urlencode({"payload": json.dumps({"type": "view_closed", "user": {"id": "U1"}})}).encode(), FORM),
])
def test_what_slack_sends_passes(body: bytes, content_type: str) -> None:
    assert shape_refusal(body, content_type) is None


@pytest.mark.parametrize("body, content_type, reason", [
    (b"payload=%7B", FORM, "payload is not a JSON object"),
    (COMMAND, "text/plain", "unexpected content type"),
    (COMMAND + b"&text=again", FORM, "a form field is repeated"),
    (b"a=1", FORM, "form is neither a slash command nor an interaction"),
    (b"a=1&&", FORM, "body is not a form"),
    (b'{"type": 3}', "application/json", "event has no type"),
    (b"[" * 50_000, "application/json", "body nests too deep"),
    (b"payload=" + b"1" * 5000, FORM, "payload is not a JSON object"),  # past int()'s digit limit
    (CLICK.replace(b"block_actions", b"block_actionz"), FORM, "payload has no known type"),
])
def test_what_slack_never_sends_is_named_in_a_short_reason(body: bytes, content_type: str, reason: str) -> None:
    refusal = shape_refusal(body, content_type)
    assert refusal is not None and (refusal.status, refusal.reason) == (400, reason)
