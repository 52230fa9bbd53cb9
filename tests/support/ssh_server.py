"""A small SSH server on 127.0.0.1 that misbehaves on demand, for the drivers' failure tests.

It logs in one user by password (or refuses, or drops the connection mid-login), runs exec
commands from a table of replies, and offers a Cisco-like interactive shell that echoes what
is typed and answers with the prompt, as netmiko expects of a router: `edge1#`, or
`edge1(config)#` between a line of `enters` and one of `leaves`. `stall` makes exec commands
and the shell stop answering while the connection stays up: a device that hangs; a line of
`stall_on` typed at the shell turns it on before that line is answered.

    with SshServer(tmp_path) as server:
        spec = server.spec()             # a DeviceSpec with the right port and known_hosts
        server.auth = "close"            # "accept", "reject", or "close" (cut during login)
        server.stall = True
        server.typed                     # every line typed at the shell, in order

Every thread it starts ends when `stop()` is called (each wait wakes every `TICK` seconds).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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

    # -- what the channels do -------------------------------------------------------------------

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        # Closing before the request's success reply went out would look like a refused exec.
        transport = channel.get_transport()
        if isinstance(transport, _Transport):
            transport.wait_replied(channel, self._stop)
        while self.stall and not self._stop.is_set() and not channel.closed:
            self._stop.wait(TICK)
        if self._stop.is_set() or channel.closed:
            return
        with contextlib.suppress(OSError, EOFError):
            channel.sendall(self.replies.get(command, "").encode())
            channel.send_exit_status(0)
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
        self.server._spawn(self.server._exec, channel, command.decode())
        return True

    def check_channel_pty_request(self, channel: paramiko.Channel, term: bytes, width: int, height: int,
                                  pixelwidth: int, pixelheight: int, modes: bytes) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        self.server._spawn(self.server._shell, channel)
        return True
