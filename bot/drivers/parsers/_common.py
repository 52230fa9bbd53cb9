"""Small helpers shared by the parsers; every failure goes through `fail`."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network
from typing import NoReturn

from bot.drivers.errors import ParseError

# Error messages end up in chat: quote only a short, single-line piece of the output.
_SNIPPET = 60

# First lines that mean "the device refused or failed", from routers (`%`) and
# from Linux tools, so the user sees the device's own reason rather than "not JSON".
_ERROR_LINE = re.compile(
    r"^(?:%(?! - )|RTNETLINK answers:|Error:|Command line is not complete|"
    r"Device \"[^\"]*\" does not exist|sysctl:|Cannot find device|"
    r"Object \"[^\"]*\" is unknown|Option \"[^\"]*\" is unknown|"
    r".*error fetching interface information|.*: (?:command )?not found$)"
)


def fail(device: str, message: str) -> NoReturn:
    raise ParseError(device, message)


def snippet(text: str) -> str:
    """A short repr of untrusted output, safe to put in a one-line message."""
    one_line = " ".join(text.split())
    if len(one_line) > _SNIPPET:
        one_line = one_line[: _SNIPPET - 3] + "..."
    return repr(one_line)


def device_error(text: str) -> str | None:
    """The device's own error line, if the output is an error reply."""
    for line in text.splitlines():
        stripped = line.strip()
        if _ERROR_LINE.match(stripped):
            return stripped
    return None


def raise_if_device_error(device: str, text: str) -> None:
    message = device_error(text)
    if message is not None:
        fail(device, f"device replied with an error: {snippet(message)}")


def load_json(device: str, text: str, what: str) -> object:
    raise_if_device_error(device, text)
    if not text.strip():
        fail(device, f"empty output where {what} JSON was expected")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError; the position helps spot truncation.
        fail(device, f"{what} output is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})")


def ipv4_address(device: str, value: object, what: str) -> IPv4Address:
    # isinstance first: ipaddress happily accepts ints, which JSON can hand us.
    if not isinstance(value, str):
        fail(device, f"{what} is not a string: {snippet(repr(value))}")
    try:
        return IPv4Address(value)
    except ValueError:
        fail(device, f"{what} is not an IPv4 address: {snippet(value)}")


def ipv4_network(device: str, value: object, what: str) -> IPv4Network:
    if not isinstance(value, str):
        fail(device, f"{what} is not a string: {snippet(repr(value))}")
    if "/" not in value:
        fail(device, f"{what} is not an IPv4 prefix: {snippet(value)}")
    try:
        # strict: a prefix with host bits set is a garbled line, not a route.
        return IPv4Network(value, strict=True)
    except ValueError:
        fail(device, f"{what} is not an IPv4 prefix: {snippet(value)}")


def netmask_to_prefixlen(device: str, mask: str, what: str) -> int:
    """Dotted netmask to a length; refuses non-contiguous masks.

    Not `IPv4Network("0.0.0.0/" + mask)`: that silently reads `0.0.0.255`
    as a host mask and returns /24.
    """
    value = int(ipv4_address(device, mask, what))
    inverted = value ^ 0xFFFFFFFF
    if inverted & (inverted + 1):
        fail(device, f"{what} is not a contiguous netmask: {snippet(mask)}")
    return 32 - inverted.bit_length()


def require_int(device: str, value: object, what: str, low: int, high: int) -> int:
    # bool is an int subclass; `true` where a number belongs is a shape error.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(device, f"{what} is not an integer in {low}..{high}: {snippet(repr(value))}")
    return value


def require_bool(device: str, value: object, what: str) -> bool:
    if not isinstance(value, bool):
        fail(device, f"{what} is not true/false: {snippet(repr(value))}")
    return value


def require_str(device: str, value: object, what: str) -> str:
    if not isinstance(value, str):
        fail(device, f"{what} is not a string: {snippet(repr(value))}")
    return value
