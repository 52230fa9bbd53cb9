"""Errors a device can cause. Each names the device and says what went wrong in one line.

They never carry a password, a key or a full device transcript: they end up in
chat messages and logs.
"""

from __future__ import annotations


class DriverError(Exception):
    """Something went wrong talking to `device`; `str()` is a short, safe sentence."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"{device}: {message}")
        self.device = device
        self.message = message


class ConnectError(DriverError):
    """The device could not be reached or the SSH session could not be set up."""


class HostKeyError(ConnectError):
    """The device's SSH host key is unknown or differs from the known_hosts file."""


class AuthError(ConnectError):
    """The device refused our credentials."""


class CommandTimeout(DriverError):
    """The device did not answer a command in time."""


class CommandRejected(DriverError):
    """The device refused a command (a `% ...` reply, or a non-zero exit status)."""

    def __init__(self, device: str, command: str, reply: str) -> None:
        reply_line = " ".join(reply.split())[:200]
        super().__init__(device, f"rejected {command!r}: {reply_line or 'no reason given'}")
        self.command = command
        self.reply = reply


class ParseError(DriverError):
    """The device's output did not have the shape we expect; nothing was assumed from it."""


class VerifyTimeout(DriverError):
    """The forwarding table did not show the expected next hop in time."""
