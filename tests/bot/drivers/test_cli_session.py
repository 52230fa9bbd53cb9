"""A configuration block over a real SSH shell: one exchange per line, judged by its prompt;
and an exec command's output read in one exchange, as netmiko's send_command would give it.

`CliSession.configure` writes `configure terminal`, each line and `end`, and reads each reply up
to the prompt that ends it (`edge1(config)#` or `edge1#`), through real netmiko and paramiko
against the test SSH server's Cisco-like shell (support.ssh_server). What the shell was typed is
what the device received, so "nothing after the refused line" is checked on the device's side.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ssh_server import CONFIG_PROMPT, PROMPT, SshServer

from bot.drivers.base import Transcript
from bot.drivers.cli_session import ERROR_PATTERN, CliSession, command_output
from bot.drivers.errors import CommandRejected, CommandTimeout, DriverError
from bot.drivers.frr import NOT_RUNNING

ADD_A = "ip route 198.51.100.32/27 198.51.100.3"
ADD_B = "ip route 198.51.100.64/27 198.51.100.4"
ADD_C = "ip route 198.51.100.96/27 198.51.100.2"
PREP = {"terminal width 511", "terminal length 0", ""}  # what netmiko types at login, and its bare returns


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    with SshServer(tmp_path, replies={"show version": "FRRouting 8.4"}) as server:
        yield server


@pytest.fixture
def cli(sshd: SshServer) -> Iterator[CliSession]:
    session = CliSession(sshd.spec(command_timeout=1.0), refused=rf"{ERROR_PATTERN}|{NOT_RUNNING}")
    try:
        assert session.show("show version") == "FRRouting 8.4"  # logged in before the block
        yield session
    finally:
        session.close()


def typed(sshd: SshServer) -> list[str]:
    """What the device was sent at its shell after login, in order."""
    return [t for t in sshd.typed if t not in PREP and t != "show version"]


@pytest.mark.timeout(30)
def test_a_block_is_enter_each_line_and_end_each_reply_kept(sshd: SshServer, cli: CliSession) -> None:
    transcript = Transcript("edge1")
    cli.configure([ADD_A, ADD_B], transcript)
    assert typed(sshd) == ["configure terminal", ADD_A, ADD_B, "end"]
    assert [e.command for e in transcript.exchanges] == typed(sshd)
    replies = [e.reply for e in transcript.exchanges]
    assert all(r.startswith(c) for r, c in zip(replies, typed(sshd), strict=True))  # the echo, then the reply
    assert [r.strip().rsplit("\n", 1)[-1] for r in replies] == [CONFIG_PROMPT] * 3 + [PROMPT]
    assert cli.show("show version") == "FRRouting 8.4"  # back at the exec prompt, same session
    assert sshd.logins == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("refusal", [
    "% Invalid input detected at '^' marker.",
    "% Configuration failed.\r\n\r\nError type: validation\r\n"
    "Error description: Route cannot have more than 1 ECMP nexthops",
    "staticd is not running",  # vtysh's refusal without a `%`, for a dialect that names it
])
def test_a_refused_second_line_stops_the_third_and_leaves_config_mode(
        sshd: SshServer, cli: CliSession, refusal: str) -> None:
    sshd.replies[ADD_B] = refusal
    transcript = Transcript("edge1")
    with pytest.raises(CommandRejected) as e:
        cli.configure([ADD_A, ADD_B, ADD_C], transcript)
    assert e.value.command == ADD_B
    assert refusal.splitlines()[-1].strip() in e.value.reply
    assert typed(sshd) == ["configure terminal", ADD_A, ADD_B, "end"]  # the third line never reached it
    assert [x.command for x in transcript.exchanges] == typed(sshd)
    assert cli.show("show version") == "FRRouting 8.4"  # left config mode: the session is reused
    assert sshd.logins == 1


@pytest.mark.timeout(30)
def test_a_refused_enter_sends_nothing_more(sshd: SshServer, cli: CliSession) -> None:
    enter = "configure terminal revert timer 5"
    sshd.replies[enter] = "% Invalid input detected at '^' marker."  # not in `enters`: still at edge1#
    with pytest.raises(CommandRejected, match="Invalid input") as e:
        cli.configure([ADD_A], Transcript("edge1"), enter=enter)
    assert e.value.command == enter
    assert typed(sshd) == [enter]  # at the exec prompt already: no line, no `end`
    assert cli.show("show version") == "FRRouting 8.4" and sshd.logins == 1


@pytest.mark.timeout(30)
def test_an_enter_answered_at_the_exec_prompt_is_refused_even_without_a_reason(
        sshd: SshServer, cli: CliSession) -> None:
    sshd.enters = set()
    with pytest.raises(CommandRejected, match="did not enter configuration mode"):
        cli.configure([ADD_A], Transcript("edge1"))
    assert typed(sshd) == ["configure terminal"]


@pytest.mark.timeout(30)
def test_a_line_that_drops_out_of_config_mode_stops_the_rest(sshd: SshServer, cli: CliSession) -> None:
    # The prompt, not the words, says where the device is: at `edge1#` the next lines would be
    # exec commands.
    sshd.leaves = {"end", ADD_A}
    with pytest.raises(CommandRejected, match="left configuration mode") as e:
        cli.configure([ADD_A, ADD_B], Transcript("edge1"))
    assert e.value.command == ADD_A
    assert typed(sshd) == ["configure terminal", ADD_A]  # no further line, and no `end` at the exec prompt


@pytest.mark.timeout(30)
def test_a_device_that_stays_in_config_mode_after_end_is_dropped(sshd: SshServer, cli: CliSession) -> None:
    sshd.leaves = set()
    with pytest.raises(DriverError, match="stayed in configuration mode"):
        cli.configure([ADD_A], Transcript("edge1"))
    assert cli.show("show version") == "FRRouting 8.4"
    assert sshd.logins == 2  # the session left in config mode was not reused


@pytest.mark.timeout(30)
def test_a_refusal_whose_end_is_not_taken_still_reports_the_refusal_and_drops_the_session(
        sshd: SshServer, cli: CliSession) -> None:
    sshd.replies[ADD_A] = "% Invalid input detected at '^' marker."
    sshd.leaves = set()
    with pytest.raises(CommandRejected) as e:
        cli.configure([ADD_A, ADD_B], Transcript("edge1"))
    assert e.value.command == ADD_A
    # netmiko's own goodbye on the dropped session tries `end` again; the next line is never sent.
    assert typed(sshd)[:3] == ["configure terminal", ADD_A, "end"] and ADD_B not in typed(sshd)
    assert cli.show("show version") == "FRRouting 8.4" and sshd.logins == 2


@pytest.mark.timeout(30)
def test_a_device_that_hangs_mid_block_times_out_on_that_line_and_the_session_is_cut(
        sshd: SshServer, cli: CliSession) -> None:
    sshd.stall_on = {ADD_B}
    transcript = Transcript("edge1")
    with pytest.raises(CommandTimeout, match=rf"^edge1: {ADD_B}: no answer within 1s$"):
        cli.configure([ADD_A, ADD_B, ADD_C], transcript)
    assert typed(sshd) == ["configure terminal", ADD_A, ADD_B]
    # The line went out and may have been taken: the transcript says so.
    assert [x.command for x in transcript.exchanges] == typed(sshd)
    assert "no answer within 1s" in transcript.exchanges[-1].reply
    sshd.stall, sshd.stall_on = False, set()
    assert cli.show("show version") == "FRRouting 8.4"
    assert sshd.logins == 2  # a late reply on the old session can never be read as the next one's


@pytest.mark.timeout(30)
def test_a_show_is_one_exchange_its_output_without_echo_or_prompt(sshd: SshServer, cli: CliSession) -> None:
    sshd.replies["show ip route 198.51.100.32/27 json"] = '{\r\n  "198.51.100.32/27":[\r\n  ]\r\n}'
    assert cli.show("show ip route 198.51.100.32/27 json") == '{\n  "198.51.100.32/27":[\n  ]\n}'
    sshd.replies["show ip route 198.51.100.99 json"] = "% Unknown command: show ip route 198.51.100.99 json"
    with pytest.raises(CommandRejected):
        cli.show("show ip route 198.51.100.99 json")
    assert typed(sshd) == ["show ip route 198.51.100.32/27 json", "show ip route 198.51.100.99 json"]


@pytest.mark.parametrize(("reply", "output"), [
    ("show daemons\n zebra staticd\nld-r1# ", " zebra staticd"),
    ("show daemons\nld-r1# ", ""),
    # A leftover before the echo (a late line of an earlier reply) is not this command's output.
    (" end\nld-r1# show daemons\n zebra staticd\nld-r1# ", " zebra staticd"),
])
def test_command_output_is_what_send_command_returns(reply: str, output: str) -> None:
    assert command_output(reply, "show daemons", "ld-r1") == output
