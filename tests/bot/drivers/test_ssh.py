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
