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

A configuration block is one exchange per line and nothing else: each line is
written, and its reply read up to the next prompt, whose form says the mode the
device is in (`r1(config)#` or `r1#`, the base prompt netmiko found at login).
netmiko's `config_mode`/`exit_config_mode` would add two prompt checks around
each of enter and leave (`check_config_mode`, a round trip each). A line is
written only once the reply to the one before it was read and judged: vtysh
applies each line as it reads it, a refused line does not stop the ones after
it, so lines written ahead of a refusal would take effect. Exec commands (reads, the
save) are one such exchange too, their output stripped as netmiko's send_command strips it.
Each read waits on the channel and returns as soon as the prompt is in: netmiko's reads poll
(10 ms between reads in read_until_pattern, 25 ms after the echo in send_command), where
vtysh answers a line in about a millisecond.
"""

from __future__ import annotations

import contextlib
import re
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

from bot.drivers.base import DeviceSpec, Transcript
from bot.drivers.deadline import cut_transport, deadline
from bot.drivers.errors import CommandRejected, CommandTimeout, ConnectError, DriverError
from bot.drivers.ssh import netmiko_alive, netmiko_connect, netmiko_transport, translated

T = TypeVar("T")

# Both IOS and vtysh start an error reply with '%' ("% Invalid input", "%No matching route").
ERROR_PATTERN = r"^\s*%.*$"
# What ends a line typed at the CLI (netmiko's RETURN for IOS and vtysh), and what leaves
# configuration mode from any depth in both.
RETURN = "\n"
LEAVE = "end"


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


def wait_readable(conn: Any, seconds: float) -> None:
    """Wait up to `seconds` for the connection's channel to have data (or to close).

    A paramiko channel can be selected on (its fileno is a pipe set while data is buffered, and
    on close); without one (a test fake) this is a short sleep.
    """
    chan = getattr(conn, "remote_conn", None)
    if chan is not None and hasattr(chan, "fileno"):
        select.select([chan], [], [], seconds)
    else:
        time.sleep(min(seconds, 0.01))


def config_mode(conn: Any, reply: str) -> bool:
    """Whether `reply` ends at a configuration-mode prompt (`r1(config)#`, `r1(config-if)#`).

    Judged on the prompt itself, the reply's last line, so nothing the device printed before
    it can count.
    """
    base = getattr(conn, "base_prompt", None)
    if not isinstance(base, str) or not base.strip():
        return False
    last = reply.rstrip().rsplit("\n", 1)[-1]
    return re.search(re.escape(base.strip()) + r"\(config[^\r\n]*\)#$", last) is not None


def command_output(reply: str, command: str, base_prompt: str) -> str:
    """A command's output from its whole reply (echo, output, prompt), as send_command gives it.

    Whatever came before the echo is an earlier reply's leftover; send_command drops it too, and
    the echo's line and the prompt's line. (The reply was read up to the echo, so it is there.)
    """
    out = reply[max(0, reply.find(command)):]
    lines = out.split(RETURN)[1:] if out.startswith(command) else out.split(RETURN)
    if lines and base_prompt in lines[-1]:
        lines = lines[:-1]
    return RETURN.join(lines)


def refusals(reply: str, warnings: str | None = None) -> list[str]:
    """The `%` lines of `reply` that refuse the command: all but those matching `warnings`."""
    lines = re.findall(ERROR_PATTERN, reply, flags=re.M)
    return [ln.strip() for ln in lines if not (warnings and re.match(warnings, ln.strip()))]


class CliSession:
    """`refused`: a regex for the reply lines that refuse a configuration line (one per line, re.M);
    a dialect whose CLI also refuses in other words than `%` adds them."""

    # Exec commands in one write and one read (`_command`) rather than through send_command.
    quick_commands: ClassVar[bool] = True

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

    def _command(self, conn: Any, command: str) -> str:
        """An exec-mode command's output in one exchange, echo and prompt taken off as
        send_command takes them off (its parsers' input is the same).

        send_command stays where the quick exchange is not proven (`quick_commands` off: Junos
        and EOS) and where no prompt is known to end the reply.
        """
        prompt = prompt_pattern(conn)
        if prompt is None or not self.quick_commands:
            return self._send_command(conn, command)
        return command_output(self._write_read(conn, command, prompt), command, conn.base_prompt)

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
        out = self._with_retry(command, lambda c: self._command(c, command))
        if transcript is not None:
            transcript.add(command, out, time.monotonic() - start)
        if re.search(ERROR_PATTERN, out, flags=re.M):
            raise CommandRejected(self.spec.name, command, out)
        return out

    def _write_read(self, conn: Any, line: str, prompt: str, limit: float | None = None) -> str:
        """One exchange: write `line`, read up to its echo and then the prompt, within the deadline.

        Between reads it waits on the channel itself (`wait_readable`), so a reply is read as
        soon as it arrives: netmiko's read_until_pattern sleeps 10 ms between reads, and
        send_command 25 ms after the echo, where vtysh answers a line in about 1 ms.
        """
        seconds = self.spec.command_timeout if limit is None else limit
        end = re.compile(re.escape(line) + r"[\s\S]*" + prompt)
        with self._exchange(conn, line, seconds):
            until = time.monotonic() + seconds
            conn.write_channel(line + RETURN)
            reply = ""
            while True:
                reply += str(conn.read_channel())
                if end.search(reply):
                    return reply
                left = until - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no prompt after {line!r}")  # the deadline's cut may not have come yet
                wait_readable(conn, left)

    def _config_line(self, conn: Any, line: str, transcript: Transcript) -> str:
        """Write one configuration line and read its reply up to the prompt that ends it.

        The reply must start with the line's echo: a prompt left over from an earlier reply
        cannot then be taken for this line's end. Recorded in the transcript before it is judged.
        """
        prompt = prompt_pattern(conn)
        if prompt is None:
            raise DriverError(self.spec.name, f"{line}: no prompt known to tell where its reply ends")
        start = time.monotonic()
        try:
            reply = self._write_read(conn, line, prompt)
        except DriverError as e:
            # The line was written and may have been taken: the transcript must show it was sent.
            transcript.add(line, f"({e.message})", time.monotonic() - start)
            raise
        transcript.add(line, reply, time.monotonic() - start)
        return reply

    def configure(
        self,
        lines: Sequence[str],
        transcript: Transcript,
        *,
        enter: str = "configure terminal",
        leave: str = LEAVE,
    ) -> None:
        """`enter`, each line, `leave`, one exchange each; the first refused line stops the rest.

        Not retried: after a failure the device state is unknown until read again. A refusal
        leaves configuration mode (or drops the session); any other failure drops the session,
        since a fresh login starts outside configuration mode.
        """
        with self.lock:
            conn = self._connected()
            entered = False
            try:
                reply = self._config_line(conn, enter, transcript)
                entered = config_mode(conn, reply)
                if not entered:
                    # vtysh and IOS answer a refused `configure ...` at the exec prompt.
                    refused = "\n".join(refusals(reply)) or "the device did not enter configuration mode"
                    raise CommandRejected(self.spec.name, enter, refused)
                if re.search(self.refused, reply, flags=re.M):
                    raise CommandRejected(self.spec.name, enter, reply)
                for line in lines:
                    reply = self._config_line(conn, line, transcript)
                    if re.search(self.refused, reply, flags=re.M):
                        entered = config_mode(conn, reply)
                        raise CommandRejected(self.spec.name, line, reply)
                    if not config_mode(conn, reply):
                        # Out of configuration mode, the next lines would be taken as exec commands.
                        entered = False
                        raise CommandRejected(self.spec.name, line, f"the device left configuration mode: {reply}")
                reply = self._config_line(conn, leave, transcript)
                if config_mode(conn, reply):
                    raise DriverError(self.spec.name, f"{leave}: the device stayed in configuration mode")
            except CommandRejected:
                if entered:
                    self._leave_config(conn, transcript)
                raise
            except DriverError:
                self.close()
                raise

    def _leave_config(self, conn: Any, transcript: Transcript) -> None:
        """Leave configuration mode after a refusal; a session that stays in it is dropped.

        The refusal is what the caller is told, so a failure here only drops the session.
        """
        try:
            if not config_mode(conn, self._config_line(conn, LEAVE, transcript)):
                return
        except DriverError:
            pass
        # A session stuck in config mode must not be reused for the next change.
        self.close()

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
            out = self._command(conn, command)
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
