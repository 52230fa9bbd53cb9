"""SSH sessions to routers and hosts, with host keys always checked and every call bounded.

Both paramiko and netmiko accept unknown host keys by default; here a key must
be in the device's known_hosts file and match it, or the connection fails with
an error that names the device. Errors are translated into `bot.drivers.errors`
so that callers never see a library traceback, and never see a secret.

Every login and every command runs under a hard deadline (`bot.drivers.deadline`):
`connect_timeout` covers the TCP connect, banner, key exchange and authentication
together, `command_timeout` each command. When one passes, the connection is cut,
the call fails with the limit that applied, and the next call logs in afresh.

An `ExecSession(spec, shell=True)` runs its commands in one long-lived `sh` per connection
(`ShellChannel`) instead of one exec channel each: a channel open and a new session on the
device's sshd cost far more than the commands themselves. Each command's end is marked on both
streams with a random token of its own, so its output is exactly what the exec channel would
have given, and a reply can never be taken for another command's. A device whose shell does not
answer that protocol is asked over exec channels for the rest of the connection's life.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paramiko

from bot.drivers.base import DeviceSpec
from bot.drivers.deadline import Ticket, cut_transport, deadline, shut
from bot.drivers.errors import (
    AuthError,
    CommandTimeout,
    ConnectError,
    DriverError,
    HostKeyError,
)

ALGORITHM_HINT = (
    "no common SSH algorithm: the device may offer only ssh-rsa (SHA-1) or SHA-1 key "
    "exchanges, which paramiko no longer accepts; see 'Old devices' in the README"
)
# paramiko 5 says this when its transport died while it waited for an auth reply: no reply came.
_AUTH_EOF = "transport shut down or saw EOF"
# paramiko's words for a transport that died under it before the login finished.
_TRANSPORT_DIED = ("No existing session", "Negotiation failed")
_NO_BANNER = "Error reading SSH protocol banner"

log = logging.getLogger("lasthop.drivers.ssh")


class _QuietTransport(logging.Filter):
    """paramiko's transport thread logs each failure at ERROR, traceback included; the caller gets
    the same failure as one named DriverError, so here it is kept for debug logging only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= logging.getLogger(record.name).getEffectiveLevel()


def quiet_paramiko() -> None:
    """Keep paramiko's thread from printing tracebacks (via logging's last-resort handler) on stderr."""
    logger = logging.getLogger("paramiko.transport")
    if not any(isinstance(f, _QuietTransport) for f in logger.filters):
        logger.addFilter(_QuietTransport())


quiet_paramiko()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it was raised from or during (netmiko wraps)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def translate_connect_error(
    spec: DeviceSpec, exc: BaseException, *, expired: bool = False, connected: bool = False,
    peer_closed: bool = False,
) -> DriverError:
    """Turn whatever paramiko or netmiko raised while connecting into one short error.

    `expired`: the login deadline passed (whatever the library then raised, that is what happened);
    `connected`: the TCP connection was up, so a silence was the SSH login's, not the network's;
    `peer_closed`: the device's end of the socket closed (or reset) before the login finished.
    """
    where = f"{spec.address}:{spec.port}"
    limit = f"{spec.connect_timeout:g}s"
    slow_login = ConnectError(spec.name, f"{where} accepted the connection but the SSH login "
                                         f"did not finish within {limit}")
    no_answer = ConnectError(spec.name, f"no answer from {where} within {limit}")
    closed = ConnectError(spec.name, f"the connection to {where} closed during login "
                                     "(link cut, or sshd dropped it)")
    if expired:
        return slow_login if connected else no_answer
    for e in _chain(exc):
        if isinstance(e, DriverError):
            return e
        if isinstance(e, paramiko.BadHostKeyException):
            return HostKeyError(
                spec.name,
                f"host key of {where} does not match {spec.known_hosts}: refusing to connect "
                "(a reinstalled device or a man in the middle; check, then update known_hosts)",
            )
        if isinstance(e, paramiko.SSHException) and "not found in known_hosts" in str(e):
            return HostKeyError(
                spec.name, f"host key of {where} is not in {spec.known_hosts}: refusing to connect"
            )
        if isinstance(e, paramiko.AuthenticationException):
            if "timeout" in str(e).lower():
                return slow_login
            # paramiko raises the same class when the link died while it waited for the reply.
            if peer_closed or _AUTH_EOF in str(e):
                return closed
            return AuthError(spec.name, f"{where} refused the login of user {spec.username!r}")
        if isinstance(e, paramiko.SSHException) and "ncompatible ssh" in str(e):
            return ConnectError(spec.name, f"{where}: {ALGORITHM_HINT}")
        if isinstance(e, (EOFError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
            return closed
        if isinstance(e, paramiko.SSHException) and any(m in str(e) for m in _TRANSPORT_DIED):
            return closed
        if isinstance(e, paramiko.SSHException) and _NO_BANNER in str(e):
            # Raised for a banner that never came and for a connection closed before it.
            went = peer_closed or any(isinstance(x, (EOFError, ConnectionError)) for x in _chain(exc))
            return closed if went else slow_login
        if isinstance(e, (socket.timeout, TimeoutError)):
            return slow_login if connected else no_answer
        if isinstance(e, ConnectionRefusedError):
            return ConnectError(spec.name, f"{where} refused the connection (is sshd running?)")
        if isinstance(e, socket.gaierror):
            return ConnectError(spec.name, f"cannot resolve {spec.address}: {e.strerror or e}")
        if isinstance(e, OSError) and not isinstance(e, paramiko.SSHException):
            return ConnectError(spec.name, f"cannot reach {where}: {e.strerror or e}")
    name = type(exc).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if "timed out" in first.lower() or "timeout" in name.lower():
        return slow_login if connected else no_answer
    if peer_closed:
        return closed
    return ConnectError(spec.name, f"SSH to {where} failed: {first[:160]}")


def _check_known_hosts(spec: DeviceSpec) -> None:
    if not spec.known_hosts.is_file():
        raise HostKeyError(spec.name, f"known_hosts file {spec.known_hosts} does not exist")


class WatchedSocket:
    """A TCP socket that remembers whether the device's end closed it, for paramiko to use.

    paramiko reports a link that died during authentication much as it reports a refused
    password; whether the device's end went away is what tells the two apart.
    """

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.peer_closed = False
        # Once lasthop's own side closes (paramiko giving up after a refused password, say), the
        # transport thread's read fails with EBADF or sees EOF: that is not the device going away.
        self.closed_here = False

    def recv(self, size: int) -> bytes:
        try:
            data = self.raw.recv(size)
        except OSError as e:
            if not isinstance(e, TimeoutError):  # reset, unreachable: the link or the device went
                self._went()
            raise
        if not data:
            self._went()
        return data

    def send(self, data: bytes) -> int:
        try:
            return self.raw.send(data)
        except ConnectionError:
            self._went()
            raise

    def _went(self) -> None:
        if not self.closed_here:
            self.peer_closed = True

    def close(self) -> None:
        self.closed_here = True
        self.raw.close()

    def __getattr__(self, name: str) -> Any:  # settimeout, fileno, getpeername...
        return getattr(self.raw, name)


class _Login:
    """One connect phase: the socket it opened, and what is known when it fails."""

    def __init__(self, spec: DeviceSpec, ticket: Ticket) -> None:
        self.spec = spec
        self.ticket = ticket
        self.sock: WatchedSocket | None = None

    def cut(self) -> None:
        if self.sock is not None:
            shut(self.sock.raw)

    def open_socket(self) -> WatchedSocket:
        try:
            raw = socket.create_connection((self.spec.address, self.spec.port), timeout=self.ticket.remaining())
        except Exception as e:
            raise self.error(e) from None
        self.sock = WatchedSocket(raw)
        if self.ticket.expired:  # connected just as the deadline passed: nothing was there to cut
            self.cut()
        return self.sock

    def error(self, exc: BaseException) -> DriverError:
        return translate_connect_error(
            self.spec, exc, expired=self.ticket.expired, connected=self.sock is not None,
            peer_closed=self.sock is not None and self.sock.peer_closed,
        )


@contextmanager
def login_deadline(spec: DeviceSpec) -> Iterator[_Login]:
    """One deadline of `connect_timeout` over TCP connect, banner, key exchange and authentication."""
    holder: list[_Login] = []
    with deadline(spec.connect_timeout, lambda: holder[0].cut() if holder else None) as ticket:
        login = _Login(spec, ticket)
        holder.append(login)
        yield login


def open_client(spec: DeviceSpec) -> paramiko.SSHClient:
    """A connected paramiko client that trusts only the keys in `spec.known_hosts`."""
    _check_known_hosts(spec)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(spec.known_hosts))
    except (OSError, paramiko.SSHException) as e:
        raise HostKeyError(spec.name, f"cannot read known_hosts {spec.known_hosts}: {e}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with login_deadline(spec) as login:
        sock = login.open_socket()
        try:
            left = login.ticket.remaining()
            client.connect(
                spec.address,
                port=spec.port,
                username=spec.username,
                password=spec.password,
                key_filename=str(spec.key_file) if spec.key_file else None,
                sock=sock,  # type: ignore[arg-type]  # socket-like: paramiko needs only recv/send/settimeout/close
                timeout=left,
                banner_timeout=left,
                auth_timeout=left,
                channel_timeout=spec.command_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
            if login.ticket.expired:
                raise TimeoutError("login deadline passed")
        except Exception as e:  # every failure becomes one short, named error
            # Judged before closing: what the closing does to the socket is lasthop's, not the device's.
            error = login.error(e)
            client.close()
            login.cut()
            raise error from None
    return client


def is_alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


@dataclass
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float


def run_command(
    client: paramiko.SSHClient, spec: DeviceSpec, command: str, timeout: float | None = None
) -> CommandResult:
    """Run one command over an exec channel, all of it (open, run, read) within the time limit.

    When the limit passes the whole connection is cut (a late reply must not be read as the
    answer to the next command), so the caller has to log in again.
    """
    limit = spec.command_timeout if timeout is None else timeout
    word = command.split()[0] if command.split() else command
    timed_out = CommandTimeout(spec.name, f"{word!r} gave no answer within {limit:g}s")
    start = time.monotonic()
    with deadline(limit, lambda: cut_transport(client.get_transport())) as ticket:
        try:
            _stdin, stdout, stderr = client.exec_command(command, timeout=ticket.remaining())
            channel = stdout.channel
            if not channel.status_event.wait(ticket.remaining()) or ticket.expired:
                raise timed_out
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            status = channel.recv_exit_status()
            if ticket.expired:
                raise timed_out
        except CommandTimeout:
            cut_transport(client.get_transport())
            raise
        except DriverError:
            raise
        except Exception as e:
            cut_transport(client.get_transport())
            if ticket.expired or isinstance(e, TimeoutError):
                raise timed_out from None
            raise ConnectError(spec.name, f"SSH session lost during {word!r}") from None
    if status == -1 and not is_alive(client):  # the channel closed without an exit status
        raise ConnectError(spec.name, f"SSH session lost during {word!r}")
    return CommandResult(command, status, out, err, time.monotonic() - start)


class ShellLost(Exception):
    """The shell's channel closed or ended before the command's end markers came."""


class ShellRefused(Exception):
    """The shell answered, but not as the protocol says (no `printf`, a ForceCommand, a restricted shell)."""


@dataclass
class ShellReply:
    status: int
    stdout: bytes
    stderr: bytes
    clean: bool  # nothing came after the markers: nothing else writes to the shell's streams


# The probe that opens every shell: an exit status, output without a newline on both streams.
_PROBE = "printf x; printf y >&2; exit 3"
_PROBE_REPLY = (3, b"x", b"y")
_MARK_SPAN = 64  # bytes: longer than any end marker ("\n", 32 hex digits, " 255\n")


class ShellChannel:
    """One `sh` on an exec channel (no pty), reading lasthop's commands from its stdin.

    Each command is run as `( eval 'COMMAND' ) </dev/null`: in a subshell, so an `exit`, a `cd` or
    a syntax error ends that command only, as in its own exec channel; with stdin from /dev/null,
    so nothing it reads can be the next command. Then its exit status goes to stdout and a marker
    to stderr, each after a newline and with a token drawn for this command alone:

        ( eval 'ip -j route get 198.51.100.33' ) </dev/null
        printf '\\n%s %d\\n' 5f0c... "$?"
        printf '\\n%s\\n' 5f0c... >&2

    A stream's output is all that came before "\\n" + token: byte for byte what the command wrote.
    """

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    @classmethod
    def open(cls, client: paramiko.SSHClient, due: float) -> ShellChannel:
        """Start `sh` and check that it answers the protocol, all by the monotonic time `due`.

        ShellRefused, ShellLost or TimeoutError (or paramiko's errors) when it cannot be used.
        """
        def left() -> float:
            return max(0.001, due - time.monotonic())

        transport = client.get_transport()
        if transport is None:
            raise ShellLost("no transport")
        channel = transport.open_session(timeout=left())
        shell = cls(channel)
        try:
            # exec_command waits for the reply with no limit of its own: closing the channel wakes it.
            with deadline(left(), channel.close):
                channel.exec_command("sh")
            if time.monotonic() >= due:
                raise TimeoutError("no shell in time")
            reply = shell.run(_PROBE, due, expect=_PROBE_REPLY)
            if (reply.status, reply.stdout, reply.stderr) != _PROBE_REPLY or not reply.clean:
                raise ShellRefused("the probe's reply differs")
        except BaseException:
            shell.close()
            raise
        return shell

    @staticmethod
    def script(command: str, token: str) -> bytes:
        return (f"( eval {shlex.quote(command)} ) </dev/null\n"
                f"printf '\\n%s %d\\n' {token} \"$?\"\n"
                f"printf '\\n%s\\n' {token} >&2\n").encode()

    @property
    def idle(self) -> bool:
        """Open, and nothing has come since the last command's markers."""
        ch = self.channel
        return not (ch.closed or ch.eof_received or ch.recv_ready() or ch.recv_stderr_ready())

    def run(self, command: str, due: float,
            expect: tuple[int, bytes, bytes] | None = None) -> ShellReply:
        """What `command` gave, read by the monotonic time `due`.

        TimeoutError when `due` passes first, ShellLost when the channel ends first; with `expect`,
        ShellRefused as soon as a stream is not a beginning of the reply expected.
        """
        token = secrets.token_hex(16)
        want_out, want_err = None, None
        if expect is not None:
            want_out = expect[1] + f"\n{token} {expect[0]}\n".encode()
            want_err = expect[2] + f"\n{token}\n".encode()
        out_end = re.compile(rb"\n" + token.encode() + rb" (\d{1,3})\n")
        err_end = b"\n" + token.encode() + b"\n"
        ch = self.channel
        ch.settimeout(max(0.001, due - time.monotonic()))  # bounds sendall on a full window
        ch.sendall(self.script(command, token))
        out, err = bytearray(), bytearray()
        got_out: re.Match[bytes] | None = None
        got_err = -1
        while got_out is None or got_err < 0:
            seen_out, seen_err = len(out), len(err)
            while ch.recv_ready():
                out += ch.recv(65536)
            while ch.recv_stderr_ready():
                err += ch.recv_stderr(65536)
            if want_out is not None and want_err is not None and not (
                    want_out.startswith(out) and want_err.startswith(err)):
                raise ShellRefused("the reply is not the protocol's")
            # Only the new bytes, and a marker's length before them, can hold a marker not yet seen.
            if got_out is None:
                got_out = out_end.search(out, max(0, seen_out - _MARK_SPAN))
            if got_err < 0:
                got_err = err.find(err_end, max(0, seen_err - _MARK_SPAN))
            if got_out is not None and got_err >= 0:
                break
            if len(out) == seen_out and len(err) == seen_err:
                if ch.closed or ch.eof_received:
                    # The device sends EOF after the last data, so nothing more is on its way.
                    if ch.recv_ready() or ch.recv_stderr_ready():
                        continue
                    raise ShellLost("the shell ended")
                left = due - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no end marker in time")
                # Readable when data comes on either stream or the channel closes (paramiko's pipe).
                select.select([ch.fileno()], [], [], left)
        clean = got_out.end() == len(out) and got_err + len(err_end) == len(err)
        return ShellReply(int(got_out.group(1)), bytes(out[:got_out.start()]), bytes(err[:got_err]), clean)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()


class ExecSession:
    """A persistent paramiko connection to one device, reconnected once when found dead.

    Only calls that are safe to repeat (reads, idempotent changes) should be
    retried; `run(..., retry=False)` keeps a failure a failure. A time-out is never
    retried: the device was reached and did not answer, and a second wait would
    double the time the caller waits.

    With `shell=True` the commands run in one `sh` per connection (`ShellChannel`), with the
    same results, limits and failures as exec channels. A shell that cannot be used that way
    (it does not start, or its first exchange is not the protocol's) leaves the connection on
    exec channels until it is closed; a shell that ends mid-command is a lost session, as a
    dropped exec channel is.
    """

    def __init__(self, spec: DeviceSpec, *, shell: bool = False) -> None:
        self.spec = spec
        self.shell = shell
        self._client: paramiko.SSHClient | None = None
        self._shell: ShellChannel | None = None
        self._exec_only = not shell  # this connection's shell could not be used
        self.lock = threading.RLock()

    def _connected(self) -> paramiko.SSHClient:
        if self._client is not None and not is_alive(self._client):
            self.close()  # cut by a deadline, or closed by the device: log in again
        if self._client is None:
            self._client = open_client(self.spec)
        return self._client

    def _once(self, command: str, timeout: float | None) -> CommandResult:
        client = self._connected()
        if self._exec_only:
            return run_command(client, self.spec, command, timeout)
        return self._in_shell(client, command, timeout)

    def run(self, command: str, *, timeout: float | None = None, retry: bool = True) -> CommandResult:
        with self.lock:
            fresh = self._client is None or not is_alive(self._client)
            try:
                return self._once(command, timeout)
            except CommandTimeout:
                self.close()
                raise
            except ConnectError:
                self.close()
                # A fresh connection that failed is a real failure; an old one may just be stale.
                if fresh or not retry:
                    raise
            try:
                return self._once(command, timeout)
            except DriverError:
                self.close()
                raise

    def _in_shell(self, client: paramiko.SSHClient, command: str, timeout: float | None) -> CommandResult:
        """`command` in this connection's shell (started first if need be), else over exec."""
        limit = self.spec.command_timeout if timeout is None else timeout
        word = command.split()[0] if command.split() else command
        timed_out = CommandTimeout(self.spec.name, f"{word!r} gave no answer within {limit:g}s")
        lost = ConnectError(self.spec.name, f"SSH session lost during {word!r}")
        start = time.monotonic()
        with deadline(limit, lambda: cut_transport(client.get_transport())) as ticket:
            if self._shell is not None and not self._shell.idle:
                # It ended, or something wrote to it after the last markers: a new one, before
                # anything is sent (so even a command that must not run twice is safe here).
                self._drop_shell()
            if self._shell is None:
                self._shell = self._start_shell(client, ticket)
                if ticket.expired:
                    cut_transport(client.get_transport())
                    raise timed_out
                if self._shell is None:
                    if not is_alive(client):
                        raise lost
                    self._exec_only = True
            shell = self._shell
            if shell is not None:
                try:
                    reply = shell.run(command, ticket.due)
                except ShellLost:
                    self._drop_shell()
                    if ticket.expired:
                        cut_transport(client.get_transport())
                        raise timed_out from None
                    raise lost from None
                except Exception as e:  # a time-out, or the channel failing under the read
                    cut_transport(client.get_transport())
                    self._drop_shell()
                    if ticket.expired or isinstance(e, TimeoutError):
                        raise timed_out from None
                    raise lost from None
                if ticket.expired:  # answered, but after the deadline cut the connection
                    self._drop_shell()
                    raise timed_out
                if not reply.clean:
                    self._drop_shell()  # something else writes to its streams: not for the next command
                return CommandResult(command, reply.status, reply.stdout.decode("utf-8", "replace"),
                                     reply.stderr.decode("utf-8", "replace"), time.monotonic() - start)
        # This connection's shell is not usable: the same command over an exec channel, in what is left.
        try:
            res = run_command(client, self.spec, command, max(0.001, limit - (time.monotonic() - start)))
        except CommandTimeout:
            raise timed_out from None
        res.seconds = time.monotonic() - start
        return res

    def _start_shell(self, client: paramiko.SSHClient, ticket: Ticket) -> ShellChannel | None:
        """A shell that answered the protocol, or None. It gets at most half of the command's time
        (and no more than a login): a silent one must leave the command time to run over exec."""
        due = time.monotonic() + min(ticket.remaining() / 2, self.spec.connect_timeout)
        try:
            return ShellChannel.open(client, due)
        except Exception as e:
            log.debug("%s: no shell for commands (%s), one exec channel per command on this connection",
                      self.spec.name, type(e).__name__)
            return None

    def _drop_shell(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None

    def close(self) -> None:
        with self.lock:
            self._drop_shell()
            self._exec_only = not self.shell  # a new connection tries its shell again
            if self._client is not None:
                try:
                    self._client.close()
                finally:
                    self._client = None


def netmiko_params(spec: DeviceSpec, device_type: str) -> dict[str, Any]:
    """ConnectHandler arguments that refuse unknown host keys and never use an agent."""
    _check_known_hosts(spec)
    params: dict[str, Any] = {
        "device_type": device_type,
        "host": spec.address,
        "port": spec.port,
        "username": spec.username,
        "ssh_strict": True,
        "system_host_keys": False,
        "alt_host_keys": True,
        "alt_key_file": str(spec.known_hosts),
        "allow_agent": False,
        "conn_timeout": spec.connect_timeout,
        "auth_timeout": spec.connect_timeout,
        "banner_timeout": spec.connect_timeout,
        "blocking_timeout": spec.command_timeout,
        "read_timeout_override": spec.command_timeout,
        "session_timeout": spec.command_timeout,
        "timeout": spec.command_timeout,
        # Sleeps scaled down: netmiko's back-off loops are not interruptible, only its reads are.
        "fast_cli": True,
    }
    if spec.key_file is not None:
        params.update(use_keys=True, key_file=str(spec.key_file))
    if spec.password is not None:
        params["password"] = spec.password
    return params


_GUARDED: dict[str, Any] = {}


def _guarded_class(device_type: str) -> Any:
    """netmiko's class for `device_type`, with a channel that notices a closed connection.

    netmiko polls `recv_ready()`, which stays False on a closed paramiko channel, so a cut
    or dropped session would be polled until netmiko's own (longer, per step) time-outs.
    """
    if device_type in _GUARDED:
        return _GUARDED[device_type]
    from netmiko.channel import SSHChannel  # imported late: netmiko is slow to import
    from netmiko.exceptions import ReadException
    from netmiko.ssh_dispatcher import CLASS_MAPPER

    class ClosedAwareChannel(SSHChannel):
        def read_buffer(self) -> str:
            chan = self.remote_conn
            if chan is not None and not chan.recv_ready() and (chan.closed or chan.eof_received):
                raise ReadException("Channel stream closed by remote device.")
            out: str = super().read_buffer()
            return out

    base: Any = CLASS_MAPPER[device_type]

    class Guarded(base):  # type: ignore[misc]
        def establish_connection(self, width: int = 511, height: int = 1000) -> None:
            super().establish_connection(width=width, height=height)
            channel: Any = getattr(self, "channel", None)
            if isinstance(channel, SSHChannel):
                self.channel = ClosedAwareChannel(channel.remote_conn, self.encoding)

    _GUARDED[device_type] = Guarded
    return Guarded


def netmiko_connect(spec: DeviceSpec, device_type: str) -> Any:
    """A logged-in netmiko connection, all of it (TCP, SSH, prompt) within `connect_timeout`."""
    params = netmiko_params(spec, device_type)
    cls = _guarded_class(device_type)
    with login_deadline(spec) as login:
        sock = login.open_socket()
        left = login.ticket.remaining()
        params.update(sock=sock, conn_timeout=left, auth_timeout=left, banner_timeout=left)
        try:
            conn = cls(**params)
        except Exception as e:
            error = login.error(e)
            login.cut()
            raise error from None
        if login.ticket.expired:
            with contextlib.suppress(Exception):
                conn.disconnect()
            raise login.error(TimeoutError("login deadline passed"))
    return conn


def netmiko_transport(conn: Any) -> Any:
    """The paramiko transport under a netmiko connection, or None (not connected, or a test fake)."""
    chan = getattr(conn, "remote_conn", None)
    return getattr(chan, "transport", None)


def netmiko_alive(conn: Any) -> bool:
    chan = getattr(conn, "remote_conn", None)
    transport = getattr(chan, "transport", None)
    if transport is None:
        return True  # nothing to judge it by: the call that fails on it will say
    return bool(transport.is_active()) and not getattr(chan, "closed", False)


@contextmanager
def translated(spec: DeviceSpec, what: str, ticket: Ticket | None = None) -> Iterator[None]:
    """Map a netmiko failure during `what` into a named driver error.

    With the call's deadline `ticket`, a failure after it passed is a time-out of its limit,
    whatever the library raised when its connection was cut.
    """
    limit = spec.command_timeout if ticket is None else ticket.seconds
    try:
        yield
    except DriverError:
        raise
    except Exception as e:
        name = type(e).__name__
        if (ticket is not None and ticket.expired) or "Timeout" in name or "timed out" in str(e).lower() \
                or isinstance(e, (socket.timeout, TimeoutError)):
            raise CommandTimeout(spec.name, f"{what}: no answer within {limit:g}s") from None
        # netmiko's Read/WriteException: the channel closed under it (see ClosedAwareChannel).
        if isinstance(e, (OSError, EOFError, paramiko.SSHException)) or name in ("ReadException", "WriteException"):
            raise ConnectError(spec.name, f"{what}: SSH session lost") from None
        first = (str(e).strip().splitlines() or [name])[0]
        raise DriverError(spec.name, f"{what}: {first[:160]}") from None
