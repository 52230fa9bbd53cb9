"""SSH sessions to routers and hosts, with host keys always checked.

Both paramiko and netmiko accept unknown host keys by default; here a key must
be in the device's known_hosts file and match it, or the connection fails with
an error that names the device. Errors are translated into `bot.drivers.errors`
so that callers never see a library traceback, and never see a secret.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paramiko

from bot.drivers.base import DeviceSpec
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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it was raised from or during (netmiko wraps)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def translate_connect_error(spec: DeviceSpec, exc: BaseException) -> DriverError:
    """Turn whatever paramiko or netmiko raised while connecting into one short error."""
    where = f"{spec.address}:{spec.port}"
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
            return AuthError(spec.name, f"{where} refused the login of user {spec.username!r}")
        if isinstance(e, paramiko.SSHException) and "ncompatible ssh" in str(e):
            return ConnectError(spec.name, f"{where}: {ALGORITHM_HINT}")
        if isinstance(e, (socket.timeout, TimeoutError)):
            return ConnectError(spec.name, f"no answer from {where} within {spec.connect_timeout:g}s")
        if isinstance(e, ConnectionRefusedError):
            return ConnectError(spec.name, f"{where} refused the connection (is sshd running?)")
        if isinstance(e, OSError) and not isinstance(e, paramiko.SSHException):
            return ConnectError(spec.name, f"cannot reach {where}: {e.strerror or e}")
    name = type(exc).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if "timed out" in first.lower() or "timeout" in name.lower():
        return ConnectError(spec.name, f"no answer from {where} within {spec.connect_timeout:g}s")
    return ConnectError(spec.name, f"SSH to {where} failed: {first[:160]}")


def _check_known_hosts(spec: DeviceSpec) -> None:
    if not spec.known_hosts.is_file():
        raise HostKeyError(spec.name, f"known_hosts file {spec.known_hosts} does not exist")


def open_client(spec: DeviceSpec) -> paramiko.SSHClient:
    """A connected paramiko client that trusts only the keys in `spec.known_hosts`."""
    _check_known_hosts(spec)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(spec.known_hosts))
    except (OSError, paramiko.SSHException) as e:
        raise HostKeyError(spec.name, f"cannot read known_hosts {spec.known_hosts}: {e}") from None
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            spec.address,
            port=spec.port,
            username=spec.username,
            password=spec.password,
            key_filename=str(spec.key_file) if spec.key_file else None,
            timeout=spec.connect_timeout,
            banner_timeout=spec.connect_timeout,
            auth_timeout=spec.connect_timeout,
            channel_timeout=spec.connect_timeout,
            allow_agent=False,
            look_for_keys=False,
        )
    except Exception as e:  # every failure becomes one short, named error
        client.close()
        raise translate_connect_error(spec, e) from None
    return client


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
    """Run one command over an exec channel; time-outs and dead sessions become errors."""
    limit = spec.command_timeout if timeout is None else timeout
    start = time.monotonic()
    try:
        _stdin, stdout, stderr = client.exec_command(command, timeout=limit)
        channel = stdout.channel
        if not channel.status_event.wait(limit):
            channel.close()
            raise CommandTimeout(spec.name, f"{command.split()[0]!r} gave no answer within {limit:g}s")
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        status = channel.recv_exit_status()
    except DriverError:
        raise
    except TimeoutError:
        raise CommandTimeout(spec.name, f"{command.split()[0]!r} gave no answer within {limit:g}s") from None
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise ConnectError(spec.name, f"SSH session lost: {e or type(e).__name__}") from None
    return CommandResult(command, status, out, err, time.monotonic() - start)


class ExecSession:
    """A persistent paramiko connection to one device, reconnected once when found dead.

    Only calls that are safe to repeat (reads, idempotent changes) should be
    retried; `run(..., retry=False)` keeps a failure a failure.
    """

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self._client: paramiko.SSHClient | None = None
        self.lock = threading.RLock()

    def _connected(self) -> paramiko.SSHClient:
        if self._client is None:
            self._client = open_client(self.spec)
        return self._client

    def run(self, command: str, *, timeout: float | None = None, retry: bool = True) -> CommandResult:
        with self.lock:
            fresh = self._client is None
            try:
                return run_command(self._connected(), self.spec, command, timeout)
            except ConnectError:
                self.close()
                # A fresh connection that failed is a real failure; an old one may just be stale.
                if fresh or not retry:
                    raise
            return run_command(self._connected(), self.spec, command, timeout)

    def close(self) -> None:
        with self.lock:
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
    }
    if spec.key_file is not None:
        params.update(use_keys=True, key_file=str(spec.key_file))
    if spec.password is not None:
        params["password"] = spec.password
    return params


@contextmanager
def translated(spec: DeviceSpec, what: str) -> Iterator[None]:
    """Map a netmiko failure during `what` into a named driver error."""
    try:
        yield
    except DriverError:
        raise
    except Exception as e:
        name = type(e).__name__
        if "Timeout" in name or "timed out" in str(e).lower() or isinstance(e, (socket.timeout, TimeoutError)):
            raise CommandTimeout(spec.name, f"{what}: no answer within {spec.command_timeout:g}s") from None
        if isinstance(e, (OSError, EOFError, paramiko.SSHException)):
            raise ConnectError(spec.name, f"{what}: SSH session lost") from None
        first = (str(e).strip().splitlines() or [name])[0]
        raise DriverError(spec.name, f"{what}: {first[:160]}") from None
