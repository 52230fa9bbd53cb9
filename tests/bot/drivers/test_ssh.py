"""Connection failures become one short error that names the device and leaks nothing."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from bot.drivers.base import DeviceSpec
from bot.drivers.errors import AuthError, ConnectError, HostKeyError
from bot.drivers.ssh import ALGORITHM_HINT, netmiko_params, open_client, translate_connect_error

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
