"""Connection failures become one short error that names the device, says what happened and leaks nothing;
every login and command is bounded by its time limit."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest
from support.ssh_server import SshServer
from support.tcp_proxy import TcpProxy

from bot.drivers.base import DeviceSpec
from bot.drivers.cli_session import CliSession
from bot.drivers.errors import AuthError, CommandTimeout, ConnectError, DriverError, HostKeyError
from bot.drivers.ssh import (
    ALGORITHM_HINT,
    ExecSession,
    WatchedSocket,
    netmiko_connect,
    netmiko_params,
    open_client,
    translate_connect_error,
)

SPEC = DeviceSpec(
    name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/tmp/kh"), password="hunter2-xyz"
)


def wrapped(inner: BaseException) -> Exception:
    """Raise the way netmiko does: a new exception inside an except block."""
    try:
        try:
            raise inner
        except BaseException:
            raise RuntimeError("A paramiko SSHException occurred during connection creation") from None
    except RuntimeError as outer:
        outer.__context__ = inner
        return outer


@pytest.mark.parametrize(
    ("inner", "kind", "words"),
    [
        (paramiko.SSHException("Server '198.18.7.11' not found in known_hosts"), HostKeyError, "not in /tmp/kh"),
        (paramiko.AuthenticationException("Authentication failed."), AuthError, "refused the login of user 'ops'"),
        (TimeoutError("timed out"), ConnectError, "no answer from 198.18.7.11:22 within 5s"),
        (ConnectionRefusedError(111, "Connection refused"), ConnectError, "refused the connection"),
        (OSError(113, "No route to host"), ConnectError, "cannot reach 198.18.7.11:22: No route to host"),
        (paramiko.SSHException("Incompatible ssh peer (no acceptable host key)"), ConnectError, "ssh-rsa"),
    ],
)
def test_connect_errors_are_named_and_short(inner: BaseException, kind: type, words: str) -> None:
    for exc in (inner, wrapped(inner)):
        err = translate_connect_error(SPEC, exc)
        assert type(err) is kind
        assert str(err).startswith("r1: ")
        assert words in str(err)
        assert "hunter2" not in str(err)
        assert "\n" not in str(err)


def test_bad_host_key_is_a_host_key_error() -> None:
    got = paramiko.RSAKey.generate(1024)
    want = paramiko.RSAKey.generate(1024)
    err = translate_connect_error(SPEC, paramiko.BadHostKeyException("198.18.7.11", got, want))
    assert isinstance(err, HostKeyError)
    assert "does not match /tmp/kh" in str(err)


def test_algorithm_hint_names_the_way_out() -> None:
    assert "README" in ALGORITHM_HINT


def test_missing_known_hosts_refuses_before_connecting(tmp_path: Path) -> None:
    spec = DeviceSpec("r1", "198.18.7.11", "ops", tmp_path / "absent")
    with pytest.raises(HostKeyError, match=r"r1: known_hosts file .*absent does not exist"):
        open_client(spec)
    with pytest.raises(HostKeyError):
        netmiko_params(spec, "cisco_ios")


def test_netmiko_is_strict_about_host_keys(tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    params = netmiko_params(DeviceSpec("r1", "198.18.7.11", "ops", kh, key_file=tmp_path / "k"), "cisco_ios")
    assert params["ssh_strict"] is True
    assert params["system_host_keys"] is False
    assert params["alt_key_file"] == str(kh)
    assert params["allow_agent"] is False
    assert params["use_keys"] is True


# -- against real servers on 127.0.0.1 -------------------------------------------------------------


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    with SshServer(tmp_path, replies={"show version": "FRRouting 8.4"}) as server:
        yield server


@pytest.fixture
def mute(tmp_path: Path) -> Iterator[DeviceSpec]:
    """A port that accepts TCP connections and never says a word (a hung sshd, a black-holing middlebox)."""
    server = socket.create_server(("127.0.0.1", 0))
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    try:
        yield DeviceSpec("edge1", "127.0.0.1", "netops", kh, port=server.getsockname()[1], password="pw",
                         connect_timeout=1.0)
    finally:
        server.close()


def connect_both(spec: DeviceSpec) -> list[DriverError]:
    """The error each way of logging in (paramiko exec, netmiko shell) gives for `spec`."""
    errors: list[DriverError] = []
    for connect in (open_client, lambda s: netmiko_connect(s, "cisco_ios")):
        with pytest.raises(DriverError) as info:
            connect(spec)
        errors.append(info.value)
    return errors


@pytest.mark.timeout(30)
def test_a_silent_sshd_is_a_login_that_did_not_finish_within_the_limit(mute: DeviceSpec) -> None:
    for err in connect_both(mute):
        assert type(err) is ConnectError
        assert str(err) == (f"edge1: 127.0.0.1:{mute.port} accepted the connection but the SSH login "
                            "did not finish within 1s")


@pytest.mark.timeout(30)
def test_a_closed_port_is_a_refused_connection(tmp_path: Path) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    for err in connect_both(DeviceSpec("edge1", "127.0.0.1", "netops", kh, port=port, password="pw")):
        assert "refused the connection" in str(err)


@pytest.mark.timeout(30)
def test_a_connection_closed_during_login_is_not_a_refused_login(sshd: SshServer) -> None:
    sshd.auth = "close"
    for err in connect_both(sshd.spec()):
        assert type(err) is ConnectError
        assert "closed during login (link cut, or sshd dropped it)" in str(err)
        assert "refused" not in str(err)


@pytest.mark.timeout(30)
def test_a_rejected_password_is_a_refused_login(sshd: SshServer) -> None:
    for err in connect_both(sshd.spec(password="wrong-password-123")):
        assert type(err) is AuthError
        assert str(err) == f"edge1: 127.0.0.1:{sshd.port} refused the login of user 'netops'"
        assert "wrong-password" not in str(err)


@pytest.mark.timeout(30)
def test_an_unknown_host_key_is_refused_on_a_real_login(sshd: SshServer) -> None:
    sshd.known_hosts.write_text("")
    for err in connect_both(sshd.spec()):
        assert isinstance(err, HostKeyError)


@pytest.mark.timeout(30)
def test_an_exec_command_that_stalls_times_out_and_the_next_call_logs_in_again(sshd: SshServer) -> None:
    session = ExecSession(sshd.spec(command_timeout=1.0))
    try:
        assert session.run("show version").stdout == "FRRouting 8.4"
        sshd.stall = True
        with pytest.raises(CommandTimeout, match=r"^edge1: 'show' gave no answer within 1s$"):
            session.run("show version")
        sshd.stall = False
        assert session.run("show version").stdout == "FRRouting 8.4"
        assert sshd.logins == 2  # the stalled session was cut, not reused
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_an_exec_session_dropped_by_the_device_is_retried_on_a_fresh_login(sshd: SshServer) -> None:
    session = ExecSession(sshd.spec())
    try:
        assert session.run("show version").stdout == "FRRouting 8.4"
        sshd.drop_all()
        assert session.run("show version").stdout == "FRRouting 8.4"
        assert sshd.logins == 2
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_shell_that_stops_answering_mid_session_times_out_instead_of_hanging(sshd: SshServer) -> None:
    cli = CliSession(sshd.spec(command_timeout=1.0))
    try:
        assert cli.show("show version") == "FRRouting 8.4"
        sshd.stall = True
        with pytest.raises(CommandTimeout, match=r"^edge1: show version: no answer within 1s$"):
            cli.show("show version")
        sshd.stall = False
        assert cli.show("show version") == "FRRouting 8.4"
        assert sshd.logins == 2
    finally:
        cli.close()


@pytest.mark.timeout(30)
def test_a_shell_dropped_mid_command_is_a_lost_session_then_a_fresh_one(sshd: SshServer) -> None:
    cli = CliSession(sshd.spec(command_timeout=5.0))
    try:
        assert cli.show("show version") == "FRRouting 8.4"
        sshd.stall = True
        done: list[BaseException | str] = []

        def show() -> None:
            try:
                done.append(cli.show("show version"))
            except BaseException as e:
                done.append(e)

        # The device drops the connection while the command waits; the read is retried on a new login.
        t = threading.Thread(target=show)
        t.start()
        sshd.stall = False
        sshd.drop_all()
        t.join(20)
        assert done == ["FRRouting 8.4"]
        assert sshd.logins == 2
    finally:
        cli.close()


def test_paramiko_thread_errors_never_reach_stderr_as_tracebacks() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("paramiko.transport")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        logger.error("Exception (client): Error reading SSH protocol banner")
        logger.error("Traceback (most recent call last):")
        logger.warning("Oops, unhandled type 3")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["Oops, unhandled type 3"]


def test_a_passed_deadline_names_the_limit_whatever_the_library_raised() -> None:
    err = translate_connect_error(SPEC, EOFError(), expired=True, connected=True)
    assert str(err) == "r1: 198.18.7.11:22 accepted the connection but the SSH login did not finish within 5s"
    err = translate_connect_error(SPEC, OSError("Socket is closed"), expired=True)
    assert str(err) == "r1: no answer from 198.18.7.11:22 within 5s"


@pytest.mark.parametrize(
    "inner",
    [
        paramiko.AuthenticationException("Authentication failed: transport shut down or saw EOF"),
        paramiko.SSHException("No existing session"),
        EOFError(),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_a_link_lost_during_login_is_not_a_refused_login(inner: BaseException) -> None:
    for exc in (inner, wrapped(inner)):
        err = translate_connect_error(SPEC, exc, connected=True)
        assert type(err) is ConnectError
        assert "closed during login" in str(err)


def test_an_auth_failure_after_the_device_closed_the_socket_is_a_closed_login() -> None:
    err = translate_connect_error(SPEC, paramiko.AuthenticationException("Authentication failed."),
                                  connected=True, peer_closed=True)
    assert "closed during login" in str(err)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("after", [0, 1500])  # before the banner; in the middle of the key exchange
def test_a_link_that_goes_silent_during_login_is_bounded_by_the_connect_limit(sshd: SshServer, after: int) -> None:
    with TcpProxy(("127.0.0.1", sshd.port)) as proxy:
        proxy.stall(after=after)
        spec = replace(sshd.spec(connect_timeout=1.0), port=proxy.address[1])
        sshd.known_hosts.write_text(sshd.known_hosts.read_text().replace(f":{sshd.port} ", f":{spec.port} "))
        for err in connect_both(spec):
            assert str(err) == (f"edge1: 127.0.0.1:{spec.port} accepted the connection but the SSH login "
                                "did not finish within 1s")


@pytest.mark.timeout(30)
def test_a_link_that_goes_silent_mid_session_times_out_then_logs_in_again(sshd: SshServer) -> None:
    with TcpProxy(("127.0.0.1", sshd.port)) as proxy:
        spec = replace(sshd.spec(command_timeout=1.0), port=proxy.address[1])
        sshd.known_hosts.write_text(sshd.known_hosts.read_text().replace(f":{sshd.port} ", f":{spec.port} "))
        for session in (ExecSession(spec), CliSession(spec)):
            def show(s: ExecSession | CliSession = session) -> str:
                return s.run("show version").stdout if isinstance(s, ExecSession) else s.show("show version")
            try:
                before = proxy.connections
                assert show() == "FRRouting 8.4"
                proxy.stall()
                with pytest.raises(CommandTimeout, match="no answer within 1s"):
                    show()
                proxy.resume()
                assert show() == "FRRouting 8.4"
                assert proxy.connections == before + 2
            finally:
                session.close()


def test_a_socket_closed_by_lasthop_is_not_taken_for_the_device_going_away() -> None:
    """The flaky 'closed during login' for a refused password: netmiko closes the transport before it
    raises, and the transport thread's last read then failed on lasthop's own closed socket."""
    here, there = socket.socketpair()
    watched = WatchedSocket(here)
    watched.close()
    with pytest.raises(OSError):
        watched.recv(10)
    assert not watched.peer_closed
    there.close()

    here, there = socket.socketpair()
    watched = WatchedSocket(here)
    there.close()  # the device's end goes
    assert watched.recv(10) == b"" and watched.peer_closed
    watched.close()


# -- commands in one shell per connection (ExecSession(shell=True)) against a real /bin/sh -------------


@pytest.fixture
def host(tmp_path: Path) -> Iterator[SshServer]:
    """A Linux host: every exec command is run by a real /bin/sh on this machine, in tmp_path."""
    with SshServer(tmp_path, run="sh", hostname="web1") as server:
        yield server


SAME_AS_EXEC = [
    "printf 'a line\\n'",
    "printf 'no newline at the end'",
    "true",  # no output at all
    "false",  # a failing command
    "echo out; echo err >&2; exit 7",
    "printf 'x\\n\\n\\n'; printf '\\n' >&2",  # empty lines at the end are the command's own
    "printf '\\n%s %d\\n' 0123456789abcdef0123456789abcdef 0",  # looks like a marker: not this command's
    "echo \"it's\" 'quoted'; exit 300",  # quotes; an exit status beyond 255 as sh gives it
    "cd / && exit 0",  # ends its own subshell only
    "head -c 200000 /dev/zero | tr '\\0' a",  # more than one packet and window
]


@pytest.mark.timeout(60)
def test_the_shell_gives_what_an_exec_channel_gives(host: SshServer) -> None:
    exec_session, shell_session = ExecSession(host.spec()), ExecSession(host.spec(), shell=True)
    try:
        for command in SAME_AS_EXEC:
            by_exec, by_shell = exec_session.run(command), shell_session.run(command)
            assert (by_shell.command, by_shell.exit_status, by_shell.stdout, by_shell.stderr) == \
                   (by_exec.command, by_exec.exit_status, by_exec.stdout, by_exec.stderr), command
        assert shell_session.run("printf 'no newline'").stdout == "no newline"
        assert shell_session.run("false").exit_status == 1
        assert shell_session.run("echo out; echo err >&2; exit 7").stderr == "err\n"
    finally:
        exec_session.close()
        shell_session.close()
    # Every command of the shell session went through the one shell it started.
    assert host.execs.count("sh") == 1
    assert len(host.execs) == len(SAME_AS_EXEC) + 1


@pytest.mark.timeout(30)
def test_a_command_never_reads_the_next_one_from_the_shells_stdin(host: SshServer) -> None:
    session = ExecSession(host.spec(), shell=True)
    try:
        assert session.run("cat").stdout == ""  # stdin is /dev/null, not the rest of the session
        assert session.run("echo next").stdout == "next\n"
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_shell_command_that_times_out_cuts_the_connection_and_the_next_call_logs_in_again(host: SshServer) -> None:
    session = ExecSession(host.spec(command_timeout=1.0), shell=True)
    try:
        assert session.run("echo up").stdout == "up\n"
        with pytest.raises(CommandTimeout, match=r"^web1: 'sleep' gave no answer within 1s$"):
            session.run("sleep 3; echo late")
        # The late reply would have come on the cut connection: the next command gets its own.
        assert session.run("echo next").stdout == "next\n"
        assert host.logins == 2
        with pytest.raises(CommandTimeout, match=r"^web1: 'sleep' gave no answer within 0.5s$"):
            session.run("sleep 3", timeout=0.5)  # the call's own limit, when it gives one
        assert session.run("echo next").stdout == "next\n"
        assert host.logins == 3
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_silent_shell_leaves_the_command_within_its_one_limit_over_exec(host: SshServer) -> None:
    host.shell_as = "sleep 30"  # the shell never answers: the command is run over exec in the time left
    session = ExecSession(host.spec(command_timeout=2.0), shell=True)
    try:
        with pytest.raises(CommandTimeout, match=r"^web1: 'sleep' gave no answer within 2s$"):
            session.run("sleep 5")
        assert host.execs == ["sh", "sleep 5"]
        assert session.run("echo next").stdout == "next\n"  # a new login, which tries its shell again
        assert host.logins == 2 and host.execs.count("sh") == 2
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_link_that_goes_silent_under_the_shell_times_out_then_logs_in_again(host: SshServer) -> None:
    with TcpProxy(("127.0.0.1", host.port)) as proxy:
        spec = replace(host.spec(command_timeout=1.0), port=proxy.address[1])
        host.known_hosts.write_text(host.known_hosts.read_text().replace(f":{host.port} ", f":{spec.port} "))
        session = ExecSession(spec, shell=True)
        try:
            assert session.run("echo up").stdout == "up\n"
            proxy.stall()
            with pytest.raises(CommandTimeout, match="no answer within 1s"):
                session.run("echo up")
            proxy.resume()
            assert session.run("echo up").stdout == "up\n"
            assert proxy.connections == 2
        finally:
            session.close()


def wait_for(path: Path) -> None:
    """Until the command running on the host wrote `path` (bounded)."""
    for _ in range(200):
        if path.exists():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"{path.name} never appeared")


def run_in_thread(session: ExecSession, command: str, *, retry: bool = True) -> tuple[threading.Thread, list[object]]:
    done: list[object] = []

    def run() -> None:
        try:
            done.append(session.run(command, retry=retry).stdout)
        except BaseException as e:
            done.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, done


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["shell dies", "connection dropped"])
def test_a_shell_lost_mid_command_is_a_lost_session_and_a_read_is_run_again_on_a_fresh_one(
        host: SshServer, tmp_path: Path, how: str) -> None:
    session = ExecSession(host.spec(command_timeout=10.0), shell=True)
    try:
        assert session.run("echo up").stdout == "up\n"
        t, done = run_in_thread(session, "echo ran >> runs; [ -e again ] || { touch again; sleep 10; }; echo done")
        wait_for(tmp_path / "again")
        host.kill_commands() if how == "shell dies" else host.drop_all()
        t.join(20)
        assert done == ["done\n"]
        assert (tmp_path / "runs").read_text() == "ran\nran\n"
        assert host.logins == 2
        assert session.run("echo up").stdout == "up\n"  # and the fresh one goes on
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_command_that_must_not_run_twice_is_not_run_again_when_its_shell_dies(host: SshServer,
                                                                              tmp_path: Path) -> None:
    session = ExecSession(host.spec(command_timeout=10.0), shell=True)
    try:
        assert session.run("echo up").stdout == "up\n"
        t, done = run_in_thread(session, "echo ran >> runs; sleep 10", retry=False)
        wait_for(tmp_path / "runs")
        host.kill_commands()
        t.join(20)
        assert len(done) == 1 and isinstance(done[0], ConnectError)
        assert str(done[0]) == "web1: SSH session lost during 'echo'"
        assert (tmp_path / "runs").read_text() == "ran\n"
        assert host.logins == 1
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_shell_lost_on_a_fresh_connection_is_a_real_failure(host: SshServer, tmp_path: Path) -> None:
    session = ExecSession(host.spec(command_timeout=10.0), shell=True)
    try:
        t, done = run_in_thread(session, "echo ran >> runs; sleep 10")
        wait_for(tmp_path / "runs")
        host.kill_commands()
        t.join(20)
        assert len(done) == 1 and isinstance(done[0], ConnectError)
        assert (tmp_path / "runs").read_text() == "ran\n"
    finally:
        session.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("shell_as", "what"), [
    ("cat", "answers with something else (the script echoed back)"),
    ("echo 'This account only runs ip.' >&2; exit 1", "a ForceCommand: says no and ends"),
    ("sleep 30", "never answers"),
    # A shell without printf, reading its commands line by line.
    ("printf() { echo 'sh: 1: printf: not found' >&2; return 127; }; while read -r l; do eval \"$l\"; done",
     "a shell without printf"),
])
def test_a_host_whose_shell_does_not_answer_the_protocol_is_asked_over_exec(
        host: SshServer, shell_as: str, what: str) -> None:
    host.shell_as = shell_as
    session = ExecSession(host.spec(command_timeout=2.0), shell=True)
    try:
        for _ in range(3):
            res = session.run("echo out; echo err >&2; exit 7")
            assert (res.exit_status, res.stdout, res.stderr) == (7, "out\n", "err\n"), what
        assert host.execs.count("sh") == 1  # tried once for the connection's life
        assert host.execs.count("echo out; echo err >&2; exit 7") == 3
        assert host.logins == 1
        session.close()
        assert session.run("true").exit_status == 0  # a new connection tries its shell again
        assert host.execs.count("sh") == 2
    finally:
        session.close()


@pytest.mark.timeout(30)
def test_a_host_without_a_shell_answering_is_asked_over_exec(sshd: SshServer) -> None:
    """The table-driven server's exec of `sh` answers nothing and ends, like a host with no shell."""
    session = ExecSession(sshd.spec(), shell=True)
    try:
        assert session.run("show version").stdout == "FRRouting 8.4"
        assert session.run("show version").stdout == "FRRouting 8.4"
        assert sshd.execs == ["sh", "show version", "show version"]
    finally:
        session.close()
