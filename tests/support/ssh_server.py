"""A small SSH server on 127.0.0.1 that misbehaves on demand, for the drivers' failure tests.

It logs in one user by password (or refuses, or drops the connection mid-login), runs exec
commands from a table of replies, and offers a Cisco-like interactive shell that echoes what
is typed and answers with the prompt, as netmiko expects of a router: `edge1#`, or
`edge1(config)#` between a line of `enters` and one of `leaves`. `stall` makes exec commands
and the shell stop answering while the connection stays up: a device that hangs; a line of
`stall_on` typed at the shell turns it on before that line is answered.

With `run="sh"` it is a Linux host instead: every exec command is run by a real `/bin/sh -c` on
this machine (in `directory`), its stdin, stdout, stderr and exit status carried over the
channel as sshd carries them, so an exec of `sh` is a real shell reading commands from stdin.
`shell_as` replaces what an exec of `sh` runs (a host whose shell is odd, or a ForceCommand);
`kill_commands()` kills every command running, as if the host's shell died.

    with SshServer(tmp_path) as server:
        spec = server.spec()             # a DeviceSpec with the right port and known_hosts
        server.auth = "close"            # "accept", "reject", or "close" (cut during login)
        server.stall = True
        server.typed                     # every line typed at the shell, in order

Every thread it starts ends when `stop()` is called (each wait wakes every `TICK` seconds).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import paramiko
from paramiko.common import MSG_CHANNEL_SUCCESS

from bot.drivers.base import DeviceSpec

TICK = 0.1
USER = "netops"
PASSWORD = "lab-secret-1"
PROMPT = "edge1#"
CONFIG_PROMPT = "edge1(config)#"


@dataclass
class SshServer:
    directory: Path
    auth: Literal["accept", "reject", "close"] = "accept"
    stall: bool = False
    replies: dict[str, str] = field(default_factory=dict)  # exec command or shell line -> its output
    hostname: str = "edge1"
    run: Literal["table", "sh"] = "table"  # "sh": exec commands are run by a real /bin/sh
    shell_as: str | None = None  # with run="sh": what an exec of `sh` runs instead
    enters: set[str] = field(default_factory=lambda: {"configure terminal"})  # shell lines into config mode
    leaves: set[str] = field(default_factory=lambda: {"end"})  # shell lines back to exec mode
    stall_on: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.key = paramiko.ECDSAKey.generate()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._transports: list[paramiko.Transport] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(TICK)
        self.port = int(self._server.getsockname()[1])
        self.known_hosts = self.directory / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.key.get_name()} {self.key.get_base64()}\n")
        self.logins = 0  # successful logins, to see a reconnect
        self.execs: list[str] = []  # every exec request, in order
        self._procs: list[subprocess.Popen[bytes]] = []
        self.typed: list[str] = []

    def spec(self, *, connect_timeout: float = 2.0, command_timeout: float = 1.0,
             password: str = PASSWORD) -> DeviceSpec:
        return DeviceSpec(self.hostname, "127.0.0.1", USER, self.known_hosts, port=self.port,
                          password=password, connect_timeout=connect_timeout, command_timeout=command_timeout)

    def start(self) -> SshServer:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self.drop_all()
        self.kill_commands()
        for th in list(self._threads):
            th.join(timeout=2.0)

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _spawn(self, target: object, *args: object) -> None:
        th = threading.Thread(target=target, args=args, daemon=True, name="test-sshd")  # type: ignore[arg-type]
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(th)
        th.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        transport = _Transport(conn)
        transport.add_server_key(self.key)
        with self._lock:
            self._transports.append(transport)
        try:
            transport.start_server(server=_Interface(self, conn))
        except (paramiko.SSHException, EOFError, OSError):
            transport.close()

    def drop_all(self) -> None:
        """Close every connection now, as a reboot or a cut link followed by a reset would."""
        with self._lock:
            transports, self._transports = self._transports, []
        for t in transports:
            t.close()

    def kill_commands(self) -> None:
        """Kill every command that `run="sh"` is running (and what it started): their channels end."""
        with self._lock:
            procs, self._procs = self._procs, []
        for proc in procs:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

    # -- what the channels do -------------------------------------------------------------------

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        # Closing before the request's success reply went out would look like a refused exec.
        transport = channel.get_transport()
        if isinstance(transport, _Transport):
            transport.wait_replied(channel, self._stop)
        if self.run == "sh":
            self._exec_sh(channel, self.shell_as if command == "sh" and self.shell_as is not None else command)
            return
        while self.stall and not self._stop.is_set() and not channel.closed:
            self._stop.wait(TICK)
        if self._stop.is_set() or channel.closed:
            return
        with contextlib.suppress(OSError, EOFError):
            channel.sendall(self.replies.get(command, "").encode())
            channel.send_exit_status(0)
            channel.close()

    def _exec_sh(self, channel: paramiko.Channel, command: str) -> None:
        """`command` run by /bin/sh, as sshd runs an exec request (no pty: stdout and stderr apart)."""
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=self.directory, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        with self._lock:
            self._procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        pumps = [threading.Thread(target=_pump_out, args=(stream, send), daemon=True, name="test-sshd")
                 for stream, send in ((proc.stdout, channel.sendall), (proc.stderr, channel.sendall_stderr))]
        for th in pumps:
            th.start()
        channel.settimeout(TICK)
        stdin: IO[bytes] | None = proc.stdin
        with contextlib.suppress(OSError, EOFError, ValueError):
            while proc.poll() is None and not channel.closed and not self._stop.is_set():
                if stdin is None:
                    self._stop.wait(TICK)
                    continue
                try:
                    data = channel.recv(65536)
                except TimeoutError:
                    continue
                if not data:  # the client sent EOF
                    stdin.close()
                    stdin = None
                    continue
                stdin.write(data)
                stdin.flush()
        if proc.poll() is None:  # the channel went (the client cut it, or the server stops)
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        for th in pumps:
            th.join(timeout=5.0)
        status = proc.wait(timeout=5.0)
        with self._lock:
            self._procs = [p for p in self._procs if p is not proc]
        with contextlib.suppress(OSError, EOFError, ValueError):
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
            channel.send_exit_status(status if status >= 0 else 128 - status)
            channel.close()

    def _shell(self, channel: paramiko.Channel) -> None:
        channel.settimeout(TICK)
        line = ""
        prompt = PROMPT
        with contextlib.suppress(OSError, EOFError):
            channel.sendall(f"\r\n{prompt}".encode())
            while not self._stop.is_set() and not channel.closed:
                if self.stall:
                    self._stop.wait(TICK)
                    continue
                try:
                    data = channel.recv(1024).decode()
                except TimeoutError:
                    continue
                if not data:
                    return
                if self.stall:
                    continue  # stalled while this was on its way: a hung device never answers it
                for ch in data:
                    if ch in "\r\n":
                        typed, line = line.strip(), ""
                        self.typed.append(typed)
                        if typed in self.stall_on:
                            self.stall = True
                            break  # a hung device answers neither this line nor anything after it
                        if typed in self.enters:
                            prompt = CONFIG_PROMPT
                        elif typed in self.leaves:
                            prompt = PROMPT
                        reply = self.replies.get(typed, "")
                        out = f"\r\n{reply}\r\n{prompt}" if reply else f"\r\n{prompt}"
                        channel.sendall(out.encode())
                    else:
                        line += ch
                        channel.sendall(ch.encode())  # a terminal echoes what is typed


def _pump_out(stream: IO[bytes], send: Callable[[bytes], object]) -> None:
    """Carry one of a command's output streams to the channel until the command closes it."""
    with contextlib.suppress(OSError, EOFError, ValueError), stream:
        while data := os.read(stream.fileno(), 65536):
            send(data)


class _Transport(paramiko.Transport):
    """A server transport that says when it has answered a channel's request."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._replied: set[int] = set()
        self._replies = threading.Condition()

    def _send_user_message(self, data: paramiko.Message) -> None:
        super()._send_user_message(data)
        raw = data.asbytes()
        if raw[:1] == bytes([MSG_CHANNEL_SUCCESS]):
            with self._replies:
                self._replied.add(int.from_bytes(raw[1:5], "big"))
                self._replies.notify_all()

    def wait_replied(self, channel: paramiko.Channel, stop: threading.Event) -> None:
        with self._replies:
            for _ in range(int(10 / TICK)):  # bounded: 10 s, or until the server stops
                if channel.remote_chanid in self._replied or stop.is_set():
                    return
                self._replies.wait(TICK)


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: SshServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if self.server.auth == "close":
            # The link goes away while the client waits for the answer to its password.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            return paramiko.AUTH_FAILED
        if self.server.auth == "accept" and username == USER and password == PASSWORD:
            self.server.logins += 1
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.server.execs.append(command.decode())
        self.server._spawn(self.server._exec, channel, command.decode())
        return True

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int, height: int,
                                  pixelwidth: int, pixelheight: int, modes: bytes) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.server._spawn(self.server._shell, channel)
        return True
