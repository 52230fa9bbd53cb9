"""FRR's `write memory` is judged by what it says it did, on replies captured from FRR 8.4.

The captures (tests/bot/drivers/parsers/data/frr/write_memory_*.txt) were taken on the lab's
r1: as root, as the lab's non-root login (in frr and frrvty), and as that login without write
access to the configuration directory. A fake netmiko connection replays them through the real
CliSession, so the session's `%` handling is what is tested, not a copy of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.drivers.base import DeviceSpec
from bot.drivers.errors import CommandRejected, DriverError
from bot.drivers.frr import FrrDriver

DATA = Path(__file__).parent / "parsers" / "data" / "frr"
SPEC = DeviceSpec(name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/nonexistent"))


# `show daemons` on the lab's r1 (FRR 8.4), with both daemons up and with staticd killed.
BOTH_UP = " zebra staticd"
STATICD_DOWN = " zebra"
CHECKS = ["show running-config staticd", "show daemons"]  # what the save reads first


class ReplayConnection:
    """Answers `show daemons` with `daemons`, staticd's running configuration with a small one,
    and every other command with one fixed reply, as netmiko's send_command returns them."""

    def __init__(self, reply: str, daemons: str = BOTH_UP) -> None:
        self.reply = reply
        self.reads = {"show daemons": daemons,
                      "show running-config staticd": "!\nip route 198.51.100.32/27 198.51.100.2\n!\nend"}
        self.sent: list[str] = []

    def send_command(self, command: str, **_: Any) -> str:
        self.sent.append(command)
        return self.reads.get(command, self.reply)

    def disconnect(self) -> None:
        pass


def driver_replying(reply: str, daemons: str = BOTH_UP) -> tuple[FrrDriver, ReplayConnection]:
    d = FrrDriver(SPEC)
    conn = ReplayConnection(reply, daemons)
    d.cli._conn = conn  # the session's own connection slot: nothing else is faked
    return d, conn


def capture(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize("name", ["write_memory_root.txt", "write_memory_non_root.txt"])
def test_a_save_that_wrote_the_file_succeeds_with_or_without_the_chown_warning(name: str) -> None:
    d, conn = driver_replying(capture(name))
    transcript = d.save_config()
    assert conn.sent == [*CHECKS, "write memory"]
    # The whole reply is kept, warning included: the audit shows what the router said.
    assert transcript.exchanges[0].reply == capture(name)


def test_the_non_root_capture_really_has_the_warning_and_no_ok() -> None:
    text = capture("write_memory_non_root.txt")
    assert "% Warning: can't chown configuration file" in text and "[OK]" not in text


def test_a_save_that_could_not_open_the_file_fails_and_says_why() -> None:
    d, _ = driver_replying(capture("write_memory_no_write_access.txt"))
    with pytest.raises(CommandRejected) as err:
        d.save_config()
    assert str(err.value) == (
        "r1: rejected 'write memory': % Error: failed to open configuration file "
        "/etc/frr/ld-r1/frr.conf: Permission denied"
    )


@pytest.mark.parametrize("reply", [
    # fsync failed: the file may not be on disk, so not known to be saved.
    "Building Configuration...\n% Warning: fsync() failed on /etc/frr/frr.conf: Input/output error\n"
    "Integrated configuration saved to /etc/frr/frr.conf\n",
    # A warning that is tolerated does not make a save out of a reply that never says it saved.
    "Building Configuration...\n% Warning: can't chown configuration file /etc/frr/frr.conf: "
    "Operation not permitted\n",
])
def test_other_warnings_and_a_missing_success_line_fail(reply: str) -> None:
    d, _ = driver_replying(reply)
    with pytest.raises(CommandRejected):
        d.save_config()


def test_no_success_line_is_named_in_the_error() -> None:
    d, _ = driver_replying("Building Configuration...\n")
    with pytest.raises(CommandRejected) as err:
        d.save_config()
    assert "no 'Integrated configuration saved to ' in the reply" in str(err.value)


def test_only_the_save_tolerates_warnings() -> None:
    # A `%` warning on any other exec line is still a refusal, as before.
    d, _ = driver_replying(capture("write_memory_non_root.txt"))
    with pytest.raises(CommandRejected):
        d.cli.show("show running-config")


@pytest.mark.parametrize(("daemons", "missing"), [(STATICD_DOWN, "staticd is"), ("", "zebra and staticd are")])
def test_no_save_while_staticd_is_down_for_it_would_write_no_static_routes(daemons: str, missing: str) -> None:
    d, conn = driver_replying(capture("write_memory_root.txt"), daemons)
    with pytest.raises(DriverError) as err:
        d.save_config()
    assert str(err.value) == (f"r1: not saved: {missing} not running, and `write memory` would save a "
                              "configuration without its static routes")
    assert conn.sent == CHECKS  # nothing written
