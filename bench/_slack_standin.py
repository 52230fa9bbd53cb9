"""A Slack stand-in for tests: Web API, response_url and Socket Mode on 127.0.0.1 only.

`SlackStandIn` serves, on one random loopback port:

* ``/api/<method>`` -- the Web API subset lasthop uses (pass ``api_url`` as ``WebClient(base_url=...)``);
* ``/response/<n>`` -- response_url endpoints made by ``new_response_url()``;
* ``/link`` -- a minimal RFC 6455 WebSocket server speaking Socket Mode (``apps.connections.open`` points here).

Module-level builders produce what Slack sends to an app: signed HTTP-mode bodies (``/slack/events``) and the
matching Socket Mode payloads.  Standard library only.

Behaviour worth knowing (see also each method's docstring):

* Every Web API request is recorded in ``calls`` in arrival order -- including the ones answered 429, with
  ``invalid_auth`` or ``unknown_method`` -- with the HTTP status and the JSON answer (``ApiCall.status`` /
  ``ApiCall.response``; e.g. the ``ts`` a message got).
* ``args`` merges the query string and the body (form-urlencoded, JSON or multipart).  Form values stay strings;
  ``blocks``, ``attachments``, ``view``, ``metadata`` and ``manifest`` are JSON-decoded when they arrive as JSON strings
  (as in form bodies; slack_sdk's chat.*/views.* methods send JSON bodies where they already are objects), so
  assertions see lists/dicts either way.  A ``token`` form/JSON field is taken as the token and removed from ``args``.
* Token check order: unknown method -> rate limit (consumes one of ``rate_limit``'s ``times``) -> token ->
  the per-channel limit of chat.postMessage.
* chat.postMessage allows one post per channel per ``post_interval`` seconds (default 1.0, Slack's "one
  message per second per channel"; 0 turns it off): a post sooner answers HTTP 429 ``ratelimited`` with a
  whole-second ``Retry-After``, and is not a message.  ``rate_limited()`` lists every 429 answered.
* ``usergroups.users.list`` answers the members of a user group set in ``usergroups`` (group ID -> user IDs);
  an unknown group answers ``no_such_subteam``, a request naming none ``invalid_arguments``.
* Channels keep what they show: ``channel_messages()``, ``thread()`` and ``message()`` (as last updated by
  chat.update; an unknown ``ts`` answers ``message_not_found``).
* ``apps.manifest.validate`` checks an app manifest the way Slack does (``validate_manifest``), and
  ``install()`` installs one: ``slash_command_body()`` / ``slash_command_payload()`` on the stand-in then
  refuse, as Slack does, a command the app does not have or one Slack keeps for itself (``CommandRejected``).
* A response_url accepts 5 posts (as Slack does); the 6th and later answer 404
  ``{"ok": false, "error": "used_too_many_times"}`` and are not recorded.  Unknown response URLs answer 404
  ``expired_url``; bodies that are not JSON objects answer 400 ``invalid_payload``.
* Socket Mode: the server answers pings with pongs and, by default, pings the client every
  ``server_ping_interval`` seconds (this also makes slack_sdk's ``SocketModeClient.close()`` return quickly:
  it otherwise waits for its 3 s receive timeout).  ``close()`` sends a close frame (1001) to clients; close
  the apps' Socket Mode clients *before* the stand-in or they will try to reconnect.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import hmac
import itertools
import json
import math
import re
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = [
    "Ack",
    "ApiCall",
    "CommandRejected",
    "SlackStandIn",
    "block_action_body",
    "block_action_payload",
    "post",
    "sign",
    "slash_command_body",
    "slash_command_payload",
    "validate_manifest",
    "view_submission_body",
    "view_submission_payload",
]

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata", "manifest")
_RESPONSE_URL_LIMIT = 5
_MAX_FRAME = 4 * 1024 * 1024
_POLL = 0.1  # seconds: how often blocking loops look at the stop flag
_IO_TIMEOUT = 10.0  # seconds: any single socket operation
_JOIN_TIMEOUT = 5.0  # seconds: waiting for a server thread in close()
_FIRST_TS_US = 1_700_000_000_000_100  # "1700000000.000100"

APP_ID = "A1"
BOT_ID = "B1"
TEAM_NAME = "lab"
BOT_NAME = "lasthop"
VERIFICATION_TOKEN = "verification-token"

# Slack's own commands, kept here apart from lasthop's list: the stand-in plays Slack, not the app.
BUILT_IN_COMMANDS = frozenset(
    f"/{name}"
    for name in [
        "status", "me", "join", "away", "dnd", "shrug", "remind", "msg", "feed", "who", "collapse", "expand",
        "leave", "open", "search", "topic", "mute", "pro", "shortcuts", "help",
    ]
)
_COMMAND_CHARS = re.compile(r"/[a-z0-9_-]+")


@dataclass(frozen=True)
class ApiCall:
    """One Web API request as the stand-in saw it.

    ``at`` is ``time.monotonic()`` on arrival; ``status`` the HTTP status answered (200, or 429 when rate
    limited); ``response`` the JSON body answered.
    """

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ack:
    """A Socket Mode acknowledgement: ``payload`` is None for a bare ack; ``at`` is ``time.monotonic()``."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float


class CommandRejected(AssertionError):
    """Slack would not send this slash command to the app: str() is what Slack tells the person."""


class _WsClosed(Exception):
    """The WebSocket connection is over (peer closed, protocol error answered, or the stand-in is closing)."""


class _WsConn:
    """One server-side WebSocket connection: framing over a raw socket, with its own read buffer."""

    def __init__(self, sock: socket.socket, number: int, stopping: threading.Event) -> None:
        self.sock = sock
        self.number = number
        self.stopping = stopping
        self.send_lock = threading.Lock()
        self.buffer = bytearray()
        self.open = True
        self.hello_sent = False
        self.close_sent = False

    # -- sending (server frames are never masked) --
    def send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self.send_lock:
            if opcode == 0x8:
                if self.close_sent:
                    return
                self.close_sent = True
            elif self.close_sent:
                raise _WsClosed("close frame already sent")
            self.sock.sendall(header + payload)

    def send_text(self, obj: Any) -> None:
        self.send_frame(0x1, json.dumps(obj).encode("utf-8"))

    def send_close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(OSError):
            self.send_frame(0x8, struct.pack("!H", code) + reason.encode("utf-8")[:120])

    def fail(self, code: int, reason: str) -> _WsClosed:
        self.send_close(code, reason)
        return _WsClosed(f"{code} {reason}")

    # -- receiving --
    def _read(self, n: int, wake: Callable[[], None]) -> bytes:
        while len(self.buffer) < n:
            if self.stopping.is_set():
                raise _WsClosed("stand-in closing")
            ready, _, _ = select.select([self.sock], [], [], _POLL)
            if not ready:
                wake()
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _WsClosed("peer closed the TCP connection")
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_frame(self, wake: Callable[[], None]) -> tuple[bool, int, bytes]:
        """(fin, opcode, unmasked payload) of the next client frame; protocol errors close the connection."""
        b1, b2 = self._read(2, wake)
        fin, rsv, opcode = bool(b1 & 0x80), b1 & 0x70, b1 & 0x0F
        masked, length = bool(b2 & 0x80), b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2, wake))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8, wake))
        if rsv:
            raise self.fail(1002, "reserved bits set")
        if not masked:
            raise self.fail(1002, "client frames must be masked")
        if length > _MAX_FRAME:
            raise self.fail(1009, "frame too big")
        if opcode >= 0x8 and (not fin or length > 125):
            raise self.fail(1002, "bad control frame")
        mask = self._read(4, wake)
        data = self._read(length, wake)
        if length:
            key = (mask * (length // 4 + 1))[:length]
            data = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        return fin, opcode, data


class _Server(HTTPServer):
    """HTTPServer with one tracked thread per connection, so close() can end and join every one of them."""

    standin: SlackStandIn

    def __init__(self, standin: SlackStandIn) -> None:
        self.standin = standin
        self.conn_threads: dict[threading.Thread, socket.socket] = {}
        self.conn_lock = threading.Lock()
        self.numbers = itertools.count(1)
        super().__init__(("127.0.0.1", 0), _Handler)
        self.timeout = _POLL  # handle_request() returns after this when idle

    def server_bind(self) -> None:
        # HTTPServer.server_bind() would call socket.getfqdn(), which may ask DNS: loopback only here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return bool(client_address and client_address[0] in _LOOPBACK)

    def process_request(self, request: Any, client_address: Any) -> None:
        sock = cast(socket.socket, request)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(sock, client_address),
            name=f"slack-standin-conn-{next(self.numbers)}",
            daemon=True,
        )
        with self.conn_lock:
            self.conn_threads[thread] = sock
        thread.start()

    def _serve_connection(self, sock: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(sock, client_address)
        except Exception:
            if not self.standin._stopping.is_set():
                self.handle_error(sock, client_address)
        finally:
            self.shutdown_request(sock)
            with self.conn_lock:
                self.conn_threads.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection resets from clients going away are routine here; anything else shows in the test output.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, _WsClosed)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # unbuffered: after a WebSocket upgrade no client bytes may hide in a read buffer
    timeout = _IO_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def standin(self) -> SlackStandIn:
        return self.server.standin

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/link":
            self._websocket()
        elif path.startswith("/api/"):
            self._api(path[len("/api/") :])
        else:
            self.send_json(404, {"ok": False, "error": "not_found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            self._api(path[len("/api/") :])
        elif path.startswith("/response/"):
            self._response_url(path)
        else:
            self._read_body()
            self.send_json(404, {"ok": False, "error": "not_found"})

    # -- plumbing --
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        chunks: list[bytes] = []
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(remaining)
            if not chunk:
                raise ConnectionError("client closed mid-body")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    # -- Web API --
    def _api(self, method: str) -> None:
        at = time.monotonic()
        body = self._read_body() if self.command == "POST" else b""
        args: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        try:
            args.update(_parse_body(body, self.headers.get("Content-Type", "")))
            unparsable = False
        except (ValueError, UnicodeDecodeError):
            args["_raw"] = body.decode("utf-8", "replace")
            unparsable = True
        for name in _JSON_FIELDS:
            value = args.get(name)
            if isinstance(value, str) and value[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    args[name] = json.loads(value)
        token: str | None = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[len("bearer ") :].strip()
        body_token = args.pop("token", None)
        if token is None and isinstance(body_token, str):
            token = body_token
        headers: dict[str, str]
        if unparsable:
            status, answer, headers = 200, {"ok": False, "error": "invalid_json"}, {}
        else:
            status, answer, headers = self.standin._answer_api(method, args, token)
        self.standin._record_call(ApiCall(method, args, token, at, status, answer))
        self.send_json(status, answer, headers)

    # -- response_url --
    def _response_url(self, path: str) -> None:
        raw = self._read_body()
        url = self.standin._base_url + path
        payload: Any = None
        content_type = self.headers.get("Content-Type", "")
        with contextlib.suppress(ValueError):
            if "x-www-form-urlencoded" in content_type:
                payload = json.loads(dict(parse_qsl(raw.decode("utf-8"))).get("payload", ""))
            else:
                payload = json.loads(raw.decode("utf-8"))
        status, answer = self.standin._record_response(url, payload)
        self.send_json(status, answer)

    # -- Socket Mode WebSocket --
    def _websocket(self) -> None:
        key = (self.headers.get("Sec-WebSocket-Key") or "").strip()
        upgrade = (self.headers.get("Upgrade") or "").lower()
        if upgrade != "websocket" or not key or (self.headers.get("Sec-WebSocket-Version") or "").strip() != "13":
            self.send_json(400, {"ok": False, "error": "websocket_upgrade_required"})
            return
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode("ascii")).digest()).decode("ascii")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        self.standin._serve_websocket(self.connection)


def _parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "application/json":
        decoded = json.loads(body.decode("utf-8"))
        return decoded if isinstance(decoded, dict) else {"_json": decoded}
    if ctype == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        out: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            data = part.get_payload(decode=True)
            raw = data if isinstance(data, bytes) else b""
            out[name] = raw if part.get_filename() else raw.decode("utf-8", "replace")
        return out
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


class SlackStandIn:
    """A Slack Web API + response_url + Socket Mode stand-in on 127.0.0.1 (random port).

    Use as a context manager (``with SlackStandIn() as slack: ...``) or ``start()`` / ``close()``.
    """

    app_token: str

    def __init__(
        self,
        *,
        bot_user_id: str = "UBOT",
        team_id: str = "T1",
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        server_ping_interval: float | None = 0.5,
        post_interval: float = 1.0,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        self.bot_token = bot_token
        self.app_token = app_token
        self.server_ping_interval = server_ping_interval
        self.post_interval = post_interval
        self.installed_commands: frozenset[str] = frozenset()
        self.calls: list[ApiCall] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.acks: list[Ack] = []
        self.envelopes: list[dict[str, Any]] = []
        self.socket_messages: list[Any] = []  # client text frames that were not acks
        self.pings_received = 0
        self.pongs_received = 0
        self.users: dict[str, dict[str, Any]] = {}  # extra fields merged into users.info answers
        self.channels: dict[str, dict[str, Any]] = {}  # extra fields merged into conversations.info answers
        self.usergroups: dict[str, list[str]] = {}  # user group ID (S...) -> its members, for usergroups.users.list
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._rate_limits: dict[str, list[int]] = {}
        self._last_post: dict[str, float] = {}  # channel -> when its last post was accepted
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> the message as it is now
        self._top: dict[str, list[str]] = {}  # channel -> ts of its top-level messages, in order
        self._replies: dict[tuple[str, str], list[str]] = {}  # (channel, thread_ts) -> ts of replies, in order
        self._ts = _FIRST_TS_US
        self._view_ids = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._ws_numbers = itertools.count(1)
        self._ws: list[_WsConn] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle --
    def start(self) -> SlackStandIn:
        if self._server is not None:
            raise RuntimeError("SlackStandIn already started")
        self._server = _Server(self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._accept_loop, name="slack-standin-accept", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        while not self._stopping.is_set():
            server.handle_request()

    def close(self) -> None:
        """Stop serving: close WebSockets (1001), end every connection, join every server thread."""
        server = self._server
        if server is None or self._stopping.is_set():
            return
        self._stopping.set()
        with self._cond:
            conns = list(self._ws)
            self._cond.notify_all()
        for conn in conns:
            conn.send_close(1001, "stand-in closing")
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT)
        with server.conn_lock:
            threads = dict(server.conn_threads)
        for sock in threads.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()
        stuck = [t.name for t in [self._thread, *threads] if t is not None and t.is_alive()]
        if stuck:
            raise RuntimeError(f"SlackStandIn threads still running after close(): {stuck}")

    def __enter__(self) -> SlackStandIn:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SlackStandIn not started")
        return self._port

    @property
    def _base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: WebClient(base_url=...) / SLACK_API_URL."""
        return f"{self._base_url}/api/"

    @property
    def socket_url(self) -> str:
        """The WebSocket URL ``apps.connections.open`` hands out."""
        return f"ws://127.0.0.1:{self.port}/link"

    # -- Web API --
    def calls_to(self, method: str) -> list[ApiCall]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for_call(
        self, method: str, predicate: Callable[[ApiCall], bool] = lambda c: True, timeout: float = 10.0
    ) -> ApiCall:
        """The first call (already made or yet to come) to ``method`` matching ``predicate``.

        Rate-limited and failed calls count too; filter on ``c.status`` / ``c.response`` if that matters.
        Raises AssertionError listing the calls seen on timeout.
        """

        def find() -> ApiCall | None:
            return next((c for c in self.calls if c.method == method and predicate(c)), None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
            if found is None:
                seen = "\n".join(f"  {_describe_call(c)}" for c in self.calls) or "  (none)"
                raise AssertionError(f"no matching {method} call within {timeout}s; calls seen:\n{seen}")
            return found

    def rate_limit(self, method: str, times: int, retry_after: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer HTTP 429 ``ratelimited`` with ``Retry-After``."""
        with self._cond:
            self._rate_limits[method] = [times, retry_after]

    def rate_limited(self, method: str | None = None) -> list[ApiCall]:
        """The calls answered HTTP 429 (scripted by ``rate_limit`` or by the per-channel post limit)."""
        with self._cond:
            return [c for c in self.calls if c.status == 429 and method in (None, c.method)]

    # -- what channels show --
    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message ``ts`` in ``channel`` as it reads now (after any chat.update), or None."""
        with self._cond:
            found = self._messages.get((channel, ts))
            return deepcopy(found) if found is not None else None

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies to ``ts`` in ``channel``, in arrival order."""
        with self._cond:
            return [deepcopy(self._messages[(channel, r)]) for r in self._replies.get((channel, ts), [])]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        """The top-level messages of ``channel``, in arrival order."""
        with self._cond:
            return [deepcopy(self._messages[(channel, t)]) for t in self._top.get(channel, [])]

    # -- the app as installed --
    def install(self, manifest: Mapping[str, Any]) -> None:
        """Install the app from ``manifest`` (AssertionError listing Slack's objections if it would refuse it)."""
        errors = validate_manifest(manifest)
        if errors:
            raise AssertionError("Slack refuses the manifest: " + "; ".join(f"{e['pointer']}: {e['message']}"
                                                                           for e in errors))
        commands = manifest.get("features", {}).get("slash_commands", [])
        with self._cond:
            self.installed_commands = frozenset(c["command"] for c in commands)

    def slash_command_payload(self, command: str, text: str, **fields: Any) -> dict[str, Any]:
        """``slash_command_payload()`` for a command the installed app has; CommandRejected otherwise."""
        self._check_command(command)
        return slash_command_payload(command, text, **fields)

    def slash_command_body(self, command: str, text: str, **fields: Any) -> bytes:
        """``slash_command_body()`` for a command the installed app has; CommandRejected otherwise."""
        self._check_command(command)
        return slash_command_body(command, text, **fields)

    def _check_command(self, command: str) -> None:
        if command in BUILT_IN_COMMANDS:
            raise CommandRejected(f"{command} is one of Slack's own commands: Slack answers it, the app never sees it")
        with self._cond:
            installed = command in self.installed_commands
        if not installed:
            raise CommandRejected(f"{command} is not a valid command")

    def _record_call(self, call: ApiCall) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _next_ts(self) -> str:
        with self._cond:
            value = self._ts
            self._ts += 100
        return f"{value // 1_000_000}.{value % 1_000_000:06d}"

    def _answer_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = _API_METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        with self._cond:
            limit = self._rate_limits.get(method)
            if limit is not None and limit[0] > 0:
                limit[0] -= 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(limit[1])}
        if method == "apps.manifest.validate":
            # It takes an app configuration token, which the stand-in does not model: any will do.
            if not token:
                return 200, {"ok": False, "error": "not_authed"}, {}
            return 200, handler(self, args), {}
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token is None or not hmac.compare_digest(token, expected):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method != "chat.postMessage":
            return 200, handler(self, args), {}
        with self._cond:  # the check and the post as one step: two posts at once are still one after the other
            wait = self._post_wait(args.get("channel"))
            if wait > 0:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(max(1, math.ceil(wait)))}
            return 200, handler(self, args), {}

    def _post_wait(self, channel: object) -> float:
        """Seconds until ``channel`` takes another post (0: now)."""
        last = self._last_post.get(channel) if isinstance(channel, str) else None
        if not self.post_interval or last is None:
            return 0.0
        return last + self.post_interval - time.monotonic()

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_NAME}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.team_id,
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "ts": ts,
        }
        thread_ts = str(args["thread_ts"]) if args.get("thread_ts") else None
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        with self._cond:
            self._last_post[channel] = time.monotonic()
            self._messages[(channel, ts)] = deepcopy(message)
            if thread_ts is None:
                self._top.setdefault(channel, []).append(ts)
            else:
                # Slack answers ok to a thread_ts that names no message, and the reply shows nowhere in the
                # channel (python-slack-sdk#840, jolicode/slack-php-api#40): so here too, kept only in
                # thread(channel, thread_ts), where a test can find it beside message(...) being None.
                self._replies.setdefault((channel, thread_ts), []).append(ts)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel or not ts:
            return {"ok": False, "error": "cant_update_message"}
        with self._cond:
            stored = self._messages.get((str(channel), str(ts)))
            if stored is None:
                return {"ok": False, "error": "message_not_found"}
            # Fields left out of an update keep their old value, as in Slack.
            if "text" in args:
                stored["text"] = args["text"]
            if "blocks" in args:
                stored["blocks"] = args["blocks"] or []
            message = {k: deepcopy(stored[k]) for k in ("text", "blocks", "user", "bot_id")}
        return {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "channel_not_found" if not args.get("channel") else "user_not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _view(self, args: dict[str, Any], kind: str) -> dict[str, Any]:
        view = args.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        view_id = args.get("view_id") if kind == "update" and args.get("view_id") else None
        if view_id is None:
            view_id = f"V{next(self._view_ids):06d}"
        answer_view = {
            "type": "home" if kind == "publish" else "modal",
            "callback_id": "",
            "private_metadata": "",
            "external_id": "",
            "state": {"values": {}},
            "blocks": [],
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "hash": f"{view_id}.hash",
            "root_view_id": view_id,
        }
        return {"ok": True, "view": answer_view}

    def _conversation(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        info: dict[str, Any] = {
            "id": channel,
            "name": str(channel).lower(),
            "is_channel": not str(channel).startswith(("D", "G")),
            "is_im": str(channel).startswith("D"),
            "is_private": str(channel).startswith("G"),
            "is_member": True,
            "is_archived": False,
        }
        info.update(self.channels.get(str(channel), {}))
        return {"ok": True, "channel": info}

    def _user(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user")
        if not user:
            return {"ok": False, "error": "user_not_found"}
        name = BOT_NAME if user == self.bot_user_id else str(user).lower()
        info: dict[str, Any] = {
            "id": user,
            "team_id": self.team_id,
            "name": name,
            "real_name": name,
            "deleted": False,
            "is_bot": user == self.bot_user_id,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": name},
        }
        info.update(self.users.get(str(user), {}))
        return {"ok": True, "user": info}

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        group = args.get("usergroup")
        if not group:
            return {"ok": False, "error": "invalid_arguments"}
        with self._cond:
            members = self.usergroups.get(str(group))
            if members is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(members)}

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_url}

    # -- response_url --
    def new_response_url(self) -> str:
        """A fresh ``http://127.0.0.1:PORT/response/<n>`` accepting up to 5 posts."""
        url = f"{self._base_url}/response/{next(self._response_ids)}"
        with self._cond:
            self.responses[url] = []
        return url

    def _record_response(self, url: str, payload: Any) -> tuple[int, dict[str, Any]]:
        with self._cond:
            bodies = self.responses.get(url)
            if bodies is None:
                return 404, {"ok": False, "error": "expired_url"}
            if not isinstance(payload, dict):
                return 400, {"ok": False, "error": "invalid_payload"}
            if len(bodies) >= _RESPONSE_URL_LIMIT:
                return 404, {"ok": False, "error": "used_too_many_times"}
            bodies.append(payload)
            self._cond.notify_all()
        return 200, {"ok": True}

    def wait_for_response(self, url: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The bodies posted to ``url`` once there are at least ``count``; AssertionError on timeout."""
        with self._cond:
            if url not in self.responses:
                raise AssertionError(f"{url} was not made by new_response_url(); known: {list(self.responses)}")
            if not self._cond.wait_for(lambda: len(self.responses[url]) >= count, timeout):
                raise AssertionError(
                    f"{url} got {len(self.responses[url])} of {count} posts within {timeout}s: "
                    f"{_short(self.responses[url])}"
                )
            return list(self.responses[url])

    # -- Socket Mode --
    def _serve_websocket(self, sock: socket.socket) -> None:
        conn = _WsConn(sock, next(self._ws_numbers), self._stopping)
        last_ping = time.monotonic()

        def wake() -> None:  # called while idle: server-side pings
            nonlocal last_ping
            interval = self.server_ping_interval
            if interval is not None and time.monotonic() - last_ping >= interval:
                last_ping = time.monotonic()
                conn.send_frame(0x9, f"standin:{last_ping}".encode())

        with self._cond:
            self._ws.append(conn)
            active = sum(1 for c in self._ws if c.open)
        try:
            conn.send_text(
                {
                    "type": "hello",
                    "num_connections": active,
                    "connection_info": {"app_id": APP_ID},
                    "debug_info": {"host": "standin"},
                }
            )
            with self._cond:
                conn.hello_sent = True
                self._cond.notify_all()
            while True:
                fin, opcode, data = conn.read_frame(wake)
                if opcode == 0x8:
                    code = data[:2] if len(data) >= 2 else struct.pack("!H", 1000)
                    with contextlib.suppress(OSError):
                        conn.send_frame(0x8, code)
                    return
                if opcode == 0x9:
                    with self._cond:
                        self.pings_received += 1
                    conn.send_frame(0xA, data)
                elif opcode == 0xA:
                    with self._cond:
                        self.pongs_received += 1
                elif opcode == 0x0 or not fin:
                    raise conn.fail(1003, "fragmented frames are not supported")
                elif opcode == 0x2:
                    raise conn.fail(1003, "binary frames are not supported")
                elif opcode == 0x1:
                    self._on_socket_text(data)
                else:
                    raise conn.fail(1002, f"unknown opcode {opcode}")
        except (_WsClosed, OSError):
            pass
        finally:
            with self._cond:
                conn.open = False
                self._cond.notify_all()

    def _on_socket_text(self, data: bytes) -> None:
        try:
            message: Any = json.loads(data.decode("utf-8"))
        except ValueError:
            message = data.decode("utf-8", "replace")
        with self._cond:
            if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
                payload = message.get("payload")
                self.acks.append(
                    Ack(message["envelope_id"], payload if isinstance(payload, dict) else None, time.monotonic())
                )
            else:
                self.socket_messages.append(message)
            self._cond.notify_all()

    def _live_connection(self) -> _WsConn | None:
        return next((c for c in reversed(self._ws) if c.open and c.hello_sent and not c.close_sent), None)

    def socket_connected(self, timeout: float = 10.0) -> None:
        """Wait until a client has opened the WebSocket and been sent ``hello``."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._live_connection() is not None, timeout):
                raise AssertionError(
                    f"no Socket Mode connection within {timeout}s "
                    f"(apps.connections.open calls: {sum(c.method == 'apps.connections.open' for c in self.calls)})"
                )

    def send_envelope(
        self, type: str, payload: dict[str, Any], *, retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Send a Socket Mode envelope on the newest live connection (waiting up to 10 s for one)."""
        self.socket_connected()
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": type != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        with self._cond:
            conn = self._live_connection()
            self.envelopes.append(envelope)
        if conn is None:
            raise AssertionError("the Socket Mode connection went away")
        conn.send_text(envelope)
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The first ack for ``envelope_id``; AssertionError listing the acks seen on timeout."""

        def find() -> Ack | None:
            return next((a for a in self.acks if a.envelope_id == envelope_id), None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
            if found is None:
                raise AssertionError(f"no ack for {envelope_id} within {timeout}s; acks seen: {_short(self.acks)}")
            return found


_API_METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": SlackStandIn._auth_test,
    "chat.postMessage": SlackStandIn._post_message,
    "chat.update": SlackStandIn._update,
    "chat.postEphemeral": SlackStandIn._post_ephemeral,
    "views.open": lambda s, a: s._view(a, "open"),
    "views.update": lambda s, a: s._view(a, "update"),
    "views.publish": lambda s, a: s._view(a, "publish"),
    "conversations.info": SlackStandIn._conversation,
    "users.info": SlackStandIn._user,
    "usergroups.users.list": SlackStandIn._usergroup_users,
    "apps.connections.open": SlackStandIn._connections_open,
    "apps.manifest.validate": lambda s, a: _manifest_answer(a),
}


# ---------------------------------------------------------------------------------------------------------------
# App manifests, checked as Slack checks them (slackapi/manifest-schema and the answers Slack gives)


def validate_manifest(manifest: object) -> list[dict[str, str]]:
    """Slack's objections to ``manifest`` as ``{"message", "pointer"}`` items; empty if Slack would take it."""
    errors: list[dict[str, str]] = []

    def fail(pointer: str, message: str) -> None:
        errors.append({"message": message, "pointer": pointer})

    if not isinstance(manifest, Mapping):
        fail("/", "the manifest must be a JSON object")
        return errors
    display = _mapping(manifest.get("display_information"))
    name = display.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 35:
        fail("/display_information/name", "the app needs a name of 1 to 35 characters")
    features = _mapping(manifest.get("features"))
    if "bot_user" in features:
        shown = _mapping(features["bot_user"]).get("display_name")
        if not isinstance(shown, str) or not 1 <= len(shown) <= 80:
            fail("/features/bot_user/display_name", "the bot user needs a display name of 1 to 80 characters")
    settings = _mapping(manifest.get("settings"))
    http = settings.get("socket_mode_enabled") is not True
    commands = features.get("slash_commands", [])
    if not isinstance(commands, list):
        fail("/features/slash_commands", "slash_commands must be a list")
        commands = []
    seen: set[str] = set()
    for i, command in enumerate(commands):
        at = f"/features/slash_commands/{i}"
        entry = _mapping(command)
        name = entry.get("command")
        if not isinstance(name, str):
            fail(f"{at}/command", "the slash command needs a command")
        elif not _COMMAND_CHARS.fullmatch(name) or len(name) > 32 or name in BUILT_IN_COMMANDS:
            fail(f"{at}/command", "the slash command has an invalid name")
        elif name in seen:
            fail(f"{at}/command", "the slash command is already in the manifest")
        else:
            seen.add(name)
        description = entry.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 2000:
            fail(f"{at}/description", "the slash command needs a description")
        url = entry.get("url")
        if url is None and http:
            fail(f"{at}/url", "the slash command needs a Request URL when Socket Mode is off")
        elif url is not None and not _https(url):
            fail(f"{at}/url", "the Request URL must be an https:// URL")
    interactivity = _mapping(settings.get("interactivity"))
    if interactivity.get("is_enabled") is True:
        request_url = interactivity.get("request_url")
        if request_url is None and http:
            fail("/settings/interactivity", "Interactivity requires a Request URL")
        elif request_url is not None and not _https(request_url):
            fail("/settings/interactivity/request_url", "the Request URL must be an https:// URL")
    scopes = _mapping(_mapping(manifest.get("oauth_config")).get("scopes")).get("bot", [])
    if commands and (not isinstance(scopes, list) or "commands" not in scopes):
        fail("/oauth_config/scopes/bot", "slash commands need the commands scope")
    return errors


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _https(url: object) -> bool:
    return isinstance(url, str) and url.startswith("https://") and len(url) > len("https://")


def _manifest_answer(args: dict[str, Any]) -> dict[str, Any]:
    manifest = args.get("manifest")
    if manifest is None:
        return {"ok": False, "error": "invalid_arguments"}
    errors = validate_manifest(manifest)
    if errors:
        return {"ok": False, "error": "invalid_manifest", "errors": errors}
    return {"ok": True}


def _short(value: Any, limit: int = 2000) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe_call(call: ApiCall) -> str:
    return f"{call.method} [{call.status} {call.response.get('error', 'ok')}] {_short(call.args, 300)}"


# ---------------------------------------------------------------------------------------------------------------
# What Slack sends to the app


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request-signing headers for ``body`` (v0 HMAC-SHA256), plus its Content-Type.

    Content-Type is ``application/json`` when the body is a JSON object (Events API), else form-urlencoded.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), b"v0:" + str(ts).encode("ascii") + b":" + body, hashlib.sha256)
    is_json = body.lstrip()[:1] == b"{"
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/json" if is_json else "application/x-www-form-urlencoded",
    }


def _channel_name(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "directmessage"
    if channel_id.startswith("G"):
        return "privategroup"
    return channel_id.lower()


def _user(user_id: str, team_id: str, user_name: str = "") -> dict[str, str]:
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def slash_command_payload(
    command: str,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str = "T.1",
    team_id: str = "T1",
    user_name: str = "",
) -> dict[str, Any]:
    """A slash command's fields as Slack sends them (all strings); ``user_name`` defaults to the lowercased id."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_NAME,
        "channel_id": channel_id,
        "channel_name": _channel_name(channel_id),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def slash_command_body(
    command: str,
    text: str,
    *,
    user_id: str,
    channel_id: str,
    response_url: str,
    trigger_id: str = "T.1",
    team_id: str = "T1",
    user_name: str = "",
) -> bytes:
    """The form-urlencoded body Slack POSTs to ``/slack/events`` for a slash command."""
    payload = slash_command_payload(
        command,
        text,
        user_id=user_id,
        channel_id=channel_id,
        response_url=response_url,
        trigger_id=trigger_id,
        team_id=team_id,
        user_name=user_name,
    )
    return urlencode(payload).encode("utf-8")


def block_action_payload(
    action_id: str,
    value: str,
    *,
    user_id: str,
    channel_id: str,
    message_ts: str,
    response_url: str,
    block_id: str = "b",
    trigger_id: str = "T.2",
    team_id: str = "T1",
    is_ephemeral: bool = False,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button click on a bot message (``is_ephemeral``: one only the
    clicker saw, such as an answer posted to a response_url)."""
    return {
        "type": "block_actions",
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                      "is_ephemeral": is_ephemeral},
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": TEAM_NAME},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": _channel_name(channel_id)},
        "message": {"type": "message", "ts": message_ts, "text": "", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": value, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def block_action_body(
    action_id: str,
    value: str,
    *,
    user_id: str,
    channel_id: str,
    message_ts: str,
    response_url: str,
    block_id: str = "b",
    trigger_id: str = "T.2",
    team_id: str = "T1",
    is_ephemeral: bool = False,
) -> bytes:
    """The form-urlencoded ``payload=<json>`` body Slack POSTs for a button click."""
    payload = block_action_payload(
        action_id,
        value,
        user_id=user_id,
        channel_id=channel_id,
        message_ts=message_ts,
        response_url=response_url,
        block_id=block_id,
        trigger_id=trigger_id,
        team_id=team_id,
        is_ephemeral=is_ephemeral,
    )
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def view_submission_payload(
    callback_id: str,
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    user_id: str,
    private_metadata: str = "",
    trigger_id: str = "T.3",
    team_id: str = "T1",
    view_id: str = "VSUBMIT",
) -> dict[str, Any]:
    """A ``view_submission`` payload; ``values`` is ``state.values`` ({block_id: {action_id: {...}}})."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_NAME},
        "user": _user(user_id, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": f"{view_id}.hash",
            "title": {"type": "plain_text", "text": "lasthop"},
            "blocks": [],
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "root_view_id": view_id,
            "previous_view_id": None,
            "external_id": "",
            "clear_on_close": False,
            "notify_on_close": False,
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    user_id: str,
    private_metadata: str = "",
    trigger_id: str = "T.3",
    team_id: str = "T1",
    view_id: str = "VSUBMIT",
) -> bytes:
    """The form-urlencoded ``payload=<json>`` body Slack POSTs when a modal is submitted."""
    payload = view_submission_payload(
        callback_id,
        values,
        user_id=user_id,
        private_metadata=private_metadata,
        trigger_id=trigger_id,
        team_id=team_id,
        view_id=view_id,
    )
    return urlencode({"payload": json.dumps(payload)}).encode("utf-8")


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` to a loopback URL, ignoring proxy settings: (status, lowercased headers, body), 4xx/5xx too."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in _LOOPBACK:
        raise ValueError(f"post() only talks to http://127.0.0.1 / localhost, not {url!r}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()
