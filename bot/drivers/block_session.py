"""A netmiko session that sends a `ConfigBlock` line by line, exactly as `lines_of` shows it.

`CliSession.configure` judges each reply by the prompt it ends at (`r1(config)#` or `r1#`),
which is right for IOS and vtysh; Junos's prompts are not of that form (`[edit]` over
`user@r1#`) and it leaves with `exit configuration-mode`, and an EOS session is left by its
own `commit`. Here every line of the block, `enter` and `leave` included, goes out through
`send_command` as written, so the transcript holds byte for byte the lines a plan showed.
Only on a refusal is anything else sent: the dialect's `abandon` lines, which throw the
half-made candidate away instead of leaving it for the next user.

`BlockSessionDriver` is the driver side that Junos and EOS share: one such session, set up
from the kind's refusal pattern, expected replies and abandon lines, and every step sent
through it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from bot.drivers.base import ConfigBlock, DeviceSpec, ExecLine, RouterDriver, Transcript
from bot.drivers.cli_session import CliSession
from bot.drivers.errors import CommandRejected, DriverError

# A commit can take far longer than a show on a loaded routing engine.
COMMIT_TIMEOUT = 120.0


class BlockSession(CliSession):
    # Reads through netmiko's send_command: the quick exchange is proven on IOS and vtysh only.
    quick_commands = False

    def __init__(self, spec: DeviceSpec, device_type: str, *, error: re.Pattern[str],
                 expect: Callable[[str], str | None], abandon: Sequence[str]) -> None:
        super().__init__(spec, device_type)
        self.error = error
        self.expect = expect  # what the reply to a line must contain (Junos: "commit complete"), or None
        self.abandon = tuple(abandon)

    def _line(self, conn: Any, line: str, transcript: Transcript) -> str:
        start = time.monotonic()
        timeout = max(self.spec.command_timeout, COMMIT_TIMEOUT) if line.startswith("commit") \
            else self.spec.command_timeout
        # The prompt changes in configuration mode (`user@r1#`, `r1(config-s-lasthop)#`) but keeps
        # the base prompt netmiko found at login, which is what send_command waits for.
        reply = self._send_command(conn, line, timeout, strip_prompt=False)
        transcript.add(line, reply, time.monotonic() - start)
        return reply

    def _refused(self, line: str, reply: str) -> bool:
        want = self.expect(line)
        return bool(self.error.search(reply)) or (want is not None and want not in reply)

    def send_block(self, block: ConfigBlock, transcript: Transcript) -> None:
        """`enter`, each line, `leave`; the first refusal abandons the candidate and raises.

        Not retried: after a failure the device state is unknown until read again.
        """
        with self.lock:
            conn = self._connected()
            entered = False
            try:
                for line in (block.enter, *block.lines, block.leave):
                    reply = self._line(conn, line, transcript)
                    if self._refused(line, reply):
                        raise CommandRejected(self.spec.name, line, reply)
                    entered = True
            except CommandRejected:
                if entered:  # still in configuration mode, with a candidate nobody should commit
                    self._abandon(conn, transcript)
                raise
            except DriverError:
                # Lost or timed out mid-block: a fresh session starts outside configuration mode.
                self.close()
                raise

    def _abandon(self, conn: Any, transcript: Transcript) -> None:
        try:
            for line in self.abandon:
                self._line(conn, line, transcript)
        except DriverError:
            # A session stuck in configuration mode must not be reused for the next change.
            self.close()

    def exec_line(self, command: str, transcript: Transcript, expect: str | None = None,
                  warnings: str | None = None) -> str:
        """An exec-mode command that changes state (save, confirm): not retried. `warnings` is
        FRR's (harmless `%` lines); Junos and EOS replies have none, so any refusal counts."""
        with self.lock:
            reply = self._line(self._connected(), command, transcript)
            if self._refused(command, reply) or (expect and expect not in reply):
                raise CommandRejected(self.spec.name, command, reply)
            return reply


class BlockSessionDriver(RouterDriver):
    """A router whose every step goes through one `BlockSession` (Junos, EOS).

    A kind sets `refusal` and `abandon`, and overrides `_expect` when a reply must say
    something; the rest of its session is the same for each.
    """

    refusal: ClassVar[re.Pattern[str]]  # a reply that matches refuses the line
    abandon: ClassVar[tuple[str, ...]]  # sent after a refusal inside a block, to drop the candidate

    def __init__(self, spec: DeviceSpec, *, revert_seconds: int | None = None) -> None:
        super().__init__(spec, revert_seconds=revert_seconds)
        # A block-session kind is named as netmiko names its device type.
        self.cli = BlockSession(spec, self.kind, error=self.refusal, expect=self._expect, abandon=self.abandon)

    @staticmethod
    def _expect(line: str) -> str | None:
        """What the reply to `line` must contain to count as done; None: any reply not refused."""
        return None

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        if isinstance(step, ConfigBlock):
            self.cli.send_block(step, transcript)
        else:
            self.cli.exec_line(step.command, transcript, expect=step.expect)

    def close(self) -> None:
        self.cli.close()
