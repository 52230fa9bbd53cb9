"""A persistent netmiko session to a Cisco-like CLI (IOS, or FRR's vtysh).

netmiko's `is_alive()` does not reliably notice a dead session, so a dead
session is found by the call that fails on it: reads are then retried once on
a fresh connection; configuration is never retried blindly (the caller reads
the device again and decides).

Every exchange (one command and its reply) runs under a hard deadline of
`command_timeout`; when it passes the connection is cut and the next call logs
in again. A configuration change is several exchanges (enter, each line, leave),
each with its own deadline, so it is bounded by (lines + 2) x `command_timeout`:
a per-exchange bound keeps the limit's meaning (how long a device may take to
answer one line) whatever the size of the change, and a change's size is known
from its plan.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from bot.drivers.base import DeviceSpec, Transcript
from bot.drivers.deadline import cut_transport, deadline
from bot.drivers.errors import CommandRejected, CommandTimeout, ConnectError, DriverError
from bot.drivers.ssh import netmiko_alive, netmiko_connect, netmiko_transport, translated

T = TypeVar("T")

# Both IOS and vtysh start an error reply with '%' ("% Invalid input", "%No matching route").
ERROR_PATTERN = r"^\s*%.*$"


def prompt_pattern(conn: Any) -> str | None:
    """The prompt that ends a reply: the base prompt netmiko found at login, then `#` or `>`.

    Given to send_command so that netmiko does not look for the prompt before each command
    (find_prompt's back-off sleeps cannot be cut short). The terminator keeps a hostname in the
    output (`hostname edge1`) from ending the reply early. None: no prompt known (a test fake).
    """
    base = getattr(conn, "base_prompt", None)
    if not isinstance(base, str) or not base.strip():
        return None
    return re.escape(base.strip()) + r"[^\r\n]*[#>]\s*$"


def refusals(reply: str, warnings: str | None = None) -> list[str]:
    """The `%` lines of `reply` that refuse the command: all but those matching `warnings`."""
    lines = re.findall(ERROR_PATTERN, reply, flags=re.M)
    return [ln.strip() for ln in lines if not (warnings and re.match(warnings, ln.strip()))]


class CliSession:
    """`refused`: a regex for the reply lines that refuse a configuration line (one per line, re.M);
    a dialect whose CLI also refuses in other words than `%` adds them."""

    def __init__(self, spec: DeviceSpec, device_type: str = "cisco_ios", *, refused: str = ERROR_PATTERN) -> None:
        self.spec = spec
        self.device_type = device_type
        self.refused = refused
        self._conn: Any = None
        self.lock = threading.RLock()

    def _connected(self) -> Any:
        if self._conn is not None and not netmiko_alive(self._conn):
            self.close()  # cut by a deadline, or closed by the device: log in again
        if self._conn is None:
            self._conn = netmiko_connect(self.spec, self.device_type)
        return self._conn

    @contextlib.contextmanager
    def _exchange(self, conn: Any, what: str, limit: float | None = None) -> Iterator[None]:
        """One command and its reply within `limit` (command_timeout), or the connection is cut.

        A time-out drops the session: a reply still on its way would be read as the next one's.
        """
        seconds = self.spec.command_timeout if limit is None else limit
        try:
            with deadline(seconds, lambda: cut_transport(netmiko_transport(conn))) as ticket, \
                    translated(self.spec, what, ticket):
                yield
        except CommandTimeout:
            self.close()
            raise

    def _send_command(self, conn: Any, command: str, limit: float | None = None, **kwargs: Any) -> str:
        seconds = self.spec.command_timeout if limit is None else limit
        prompt = prompt_pattern(conn)
        if prompt is not None:
            kwargs["expect_string"] = prompt
        with self._exchange(conn, command, seconds):
            out: str = conn.send_command(command, read_timeout=seconds, **kwargs)
        return out

    def _with_retry(self, what: str, call: Callable[[Any], T]) -> T:
        with self.lock:
            fresh = self._conn is None or not netmiko_alive(self._conn)
            try:
                return call(self._connected())
            except ConnectError:
                self.close()
                if fresh:
                    raise
            return call(self._connected())

    def show(self, command: str, transcript: Transcript | None = None) -> str:
        """Run a read-only command; retried once on a fresh session if the old one died."""
        start = time.monotonic()
        out = self._with_retry(command, lambda c: self._send_command(c, command))
        if transcript is not None:
            transcript.add(command, out, time.monotonic() - start)
        if re.search(ERROR_PATTERN, out, flags=re.M):
            raise CommandRejected(self.spec.name, command, out)
        return out

    def configure(
        self,
        lines: Sequence[str],
        transcript: Transcript,
        *,
        enter: str = "configure terminal",
    ) -> None:
        """Send config lines one at a time; the first '%' reply stops the rest.

        Not retried: after a failure the device state is unknown until read again.
        """
        with self.lock:
            conn = self._connected()
            start = time.monotonic()
            try:
                with self._exchange(conn, enter):
                    reply = conn.config_mode(config_command=enter)
            except DriverError as e:
                # netmiko says only "Failed to enter configuration mode" and keeps the reply.
                transcript.add(enter, e.message, time.monotonic() - start)
                self.close()
                if "configuration mode" in e.message:
                    reason = "the device did not enter configuration mode"
                    raise CommandRejected(self.spec.name, enter, reason) from None
                raise
            transcript.add(enter, reply, time.monotonic() - start)
            if re.search(self.refused, reply, flags=re.M):
                self._leave_config(conn, transcript)
                raise CommandRejected(self.spec.name, enter, reply)
            try:
                for line in lines:
                    start = time.monotonic()
                    with self._exchange(conn, line):
                        reply = conn.send_config_set(
                            [line],
                            enter_config_mode=False,
                            exit_config_mode=False,
                            read_timeout=self.spec.command_timeout,
                        )
                    transcript.add(line, reply, time.monotonic() - start)
                    if re.search(self.refused, reply, flags=re.M):
                        raise CommandRejected(self.spec.name, line, reply)
            except DriverError:
                self._leave_config(conn, transcript)
                raise
            self._leave_config(conn, transcript)

    def _leave_config(self, conn: Any, transcript: Transcript) -> None:
        start = time.monotonic()
        try:
            with self._exchange(conn, "end"):
                reply = conn.exit_config_mode()
        except DriverError:
            # A session stuck in config mode must not be reused for the next change.
            self.close()
            raise
        transcript.add("end", reply, time.monotonic() - start)

    def exec_line(
        self, command: str, transcript: Transcript, expect: str | None = None, warnings: str | None = None
    ) -> str:
        """An exec-mode command that changes state (save, confirm): not retried.

        Refused on a `%` line that is not one of `warnings` (a regex), or when `expect` is missing.
        """
        with self.lock:
            conn = self._connected()
            start = time.monotonic()
            # Waits for the prompt, not for output to go quiet: a save takes as long as it takes.
            out = self._send_command(conn, command)
            transcript.add(command, out, time.monotonic() - start)
            errors = refusals(out, warnings)
            if errors:
                raise CommandRejected(self.spec.name, command, "\n".join(errors))
            if expect and expect not in out:
                raise CommandRejected(self.spec.name, command, f"no {expect!r} in the reply: {out}")
            return out

    def close(self) -> None:
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):  # the session is being dropped anyway
                    conn.disconnect()
