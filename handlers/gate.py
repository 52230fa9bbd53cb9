"""The door in front of Bolt: a Slack request is verified, then checked for shape, before Bolt parses it.

Bolt parses a body when it builds its request, before its signature middleware runs, so an
unsigned `payload=%7B` reached the JSON parser and broke the connection. Here the signature
comes first (HMAC over the raw bytes, five-minute window), then the body must be one of the
shapes Slack sends, with the fields lasthop's listeners read. Anything else is answered
with a short 401 or 400 and one log line that names the problem and the field names, never
a value: Slack's bodies carry a verification token and user text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

# body, headers, query string -> status, headers, body (bot.web's PostRoute)
Route = Callable[[bytes, Mapping[str, str], str], tuple[int, dict[str, str], bytes]]

log = logging.getLogger("lasthop.slack")
MAX_AGE = 300  # seconds either side of now, as Slack's own verifier allows
MAX_FIELDS = 64
_TIMESTAMP = re.compile(r"\d{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_FIELD_NAME = re.compile(r"[a-z_]{1,32}")
# What Slack posts as `payload`; Bolt answers the ones lasthop has no listener for with a 404.
_INTERACTIONS = frozenset({"block_actions", "view_submission", "view_closed", "shortcut", "message_action",
                           "block_suggestion", "interactive_message", "dialog_submission"})
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # short, safe to log and to send: it never holds a value from the body


def guarded(dispatch: Route, signing_secret: str, *, clock: Callable[[], float] = time.time) -> Route:
    """`dispatch` (Bolt), reached only by requests signed with `signing_secret` and shaped as Slack's."""
    if not signing_secret:
        raise ValueError("the Slack signing secret is empty")
    key = signing_secret.encode("utf-8")

    def handle(body: bytes, headers: Mapping[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        refusal = signature_refusal(key, body, lower, clock())
        if refusal is None:
            refusal = shape_refusal(body, lower.get("content-type", ""))
        if refusal is not None:
            log.warning("slack request refused (%d): %s; %d bytes%s", refusal.status, refusal.reason, len(body),
                        _fields(body))
            return refusal.status, dict(_TEXT), (refusal.reason + "\n").encode()
        return dispatch(body, headers, query)

    return handle


def signature_refusal(key: bytes, body: bytes, headers: Mapping[str, str], now: float) -> Refusal | None:
    """None when Slack signed this body with `key` within the window; `headers` have lowercase names.

    Slack's v0 scheme, over the raw bytes (slack_sdk's verifier decodes the body as UTF-8 first,
    and raises on bytes that are not)."""
    timestamp = headers.get("x-slack-request-timestamp", "").strip()
    signature = headers.get("x-slack-signature", "").strip()
    if not timestamp or not signature:
        return Refusal(401, "unsigned request")
    # Their form first: the timestamp goes through int(), the signature through compare_digest.
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return Refusal(401, "malformed signature headers")
    if abs(now - int(timestamp)) > MAX_AGE:
        return Refusal(401, "stale request timestamp")
    expected = "v0=" + hmac.new(key, b"v0:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return Refusal(401, "bad signature")
    return None


def shape_refusal(body: bytes, content_type: str) -> Refusal | None:
    """None when the body is a shape Slack sends and lasthop's listeners can read."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "body is not UTF-8")
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        if kind == "application/json":
            return _json_refusal(text)
        if kind == "application/x-www-form-urlencoded":
            return _form_refusal(text)
    except RecursionError:
        return Refusal(400, "body nests too deep")
    return Refusal(400, "unexpected content type")


def _json_refusal(text: str) -> Refusal | None:
    """Events API: a JSON object with a type (url_verification, event_callback, ...)."""
    data = _json_object(text)
    if data is None:
        return Refusal(400, "body is not a JSON object")
    if not _short_str(data.get("type")):
        return Refusal(400, "event has no type")
    if data["type"] == "url_verification" and not isinstance(data.get("challenge"), str):
        return Refusal(400, "url_verification has no challenge")
    return None


def _form_refusal(text: str) -> Refusal | None:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        return Refusal(400, "body is not a form")
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            return Refusal(400, "a form field is repeated")  # which one counts would be Bolt's guess
        form[name] = value
    if "payload" in form:
        return _payload_refusal(form["payload"])
    if "command" in form:
        return _command_refusal(form)
    return Refusal(400, "form is neither a slash command nor an interaction")


def _command_refusal(form: Mapping[str, str]) -> Refusal | None:
    """A slash command: handlers/commands.py reads these fields."""
    if not form["command"].startswith("/"):
        return Refusal(400, "command does not start with /")
    if any(not form.get(name) for name in ("user_id", "channel_id", "trigger_id")):
        return Refusal(400, "slash command without user_id, channel_id or trigger_id")
    return None


def _payload_refusal(payload: str) -> Refusal | None:
    """An interaction (a button, a form): the fields handlers/actions.py and handlers/forms.py read."""
    data = _json_object(payload)
    if data is None:
        return Refusal(400, "payload is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _INTERACTIONS:
        return Refusal(400, "payload has no known type")
    user = data.get("user")
    if not isinstance(user, dict) or not _short_str(user.get("id")):
        return Refusal(400, "payload has no user id")
    if kind == "block_actions":
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions or not all(_action_ok(a) for a in actions):
            return Refusal(400, "block_actions without readable actions")
        for name in ("channel", "container", "message"):
            if name in data and not isinstance(data[name], dict):
                return Refusal(400, f"{name} is not an object")
    if kind == "view_submission":
        view = data.get("view")
        state = view.get("state") if isinstance(view, dict) else None
        if not isinstance(state, dict) or not isinstance(state.get("values"), dict):
            return Refusal(400, "view_submission without view state")
        if not isinstance(view, dict) or not isinstance(view.get("private_metadata", ""), str):
            return Refusal(400, "view_submission with unreadable metadata")
    return None


def _action_ok(action: Any) -> bool:
    return (isinstance(action, dict) and _short_str(action.get("action_id"))
            and isinstance(action.get("value", ""), str))


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:  # JSONDecodeError, and ints past Python's digit limit
        return None
    return data if isinstance(data, dict) else None


def _short_str(value: Any, limit: int = 255) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _fields(body: bytes) -> str:
    """The names of a form's fields, for the log line: never their values."""
    names = []
    for chunk in body[:4096].split(b"&")[:MAX_FIELDS]:
        name = chunk.split(b"=", 1)[0].decode("ascii", "replace")
        if _FIELD_NAME.fullmatch(name) and name not in names:
            names.append(name)
    return f"; fields {','.join(names[:12])}" if names else ""
