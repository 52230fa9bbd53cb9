"""The kinds of value an inventory file holds, each with its check and its message.

Shared by the inventory models (bot.inventory) and the drivers' own options models
(bot.drivers.options), so a duration or an address means the same everywhere. A check
raises `fail(message)`: the message is written for the person who wrote the file and never
holds a secret. `at` points the message below the field it was raised on (one VIP of a list).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_interface
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from bot.commands import check_command_name
from bot.durations import format_duration, parse_duration
from bot.echo import ECHO_LIMIT, shortened

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SLACK_ID_RE = re.compile(r"\*|[UWSCGD][A-Z0-9]{2,20}")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLAIN_SECRET = "plain secrets are not allowed in the config: use ${VAR} or password_file"
_TAG_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# A leading '-' would read as an option to ssh; nothing else unusual belongs in a login name.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_HOST_HEADER_RE = re.compile(r"[A-Za-z0-9.-]{1,253}(?::\d{1,5})?")
_MIN_PREFIXLEN = 8


class FrozenModel(BaseModel):
    """What every inventory model is: unknown keys refused, no type guessed, nothing changed after."""

    # strict: YAML already typed every scalar; `port: yes` or `fall: "3"` is a mistake to report.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def quoted(value: object, limit: int = ECHO_LIMIT) -> str:
    """A value from the file, quoted, escaped and shortened (bot.echo.shortened), for a message."""
    text = value if isinstance(value, str) else str(value)
    return f"'{shortened(text, limit)}'"


def fail(message: str, *, at: tuple[str | int, ...] = ()) -> PydanticCustomError:
    """The error a check raises. The message travels in the context, so braces in it are never a template."""
    return PydanticCustomError("lasthop", "{message}", {"message": message, "at": at})


_T = TypeVar("_T")


def _as_tuple(value: Any) -> Any:
    # YAML gives lists; the models hold tuples, so a frozen inventory is frozen all the way down.
    return tuple(value) if isinstance(value, list) else value


ListOf = Annotated[tuple[_T, ...], BeforeValidator(_as_tuple)]


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise fail("a name must be text")
    if not NAME_RE.fullmatch(value):
        raise fail(
            f"bad name {quoted(value)}: use 1-32 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    return value


def _tag(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail("a tag must be a short word")
    text = str(value)
    if not _TAG_RE.fullmatch(text):
        raise fail(f"bad tag {quoted(text)}: use 1-32 lowercase letters, digits, '-', '_' or '.'")
    return text


def _username(value: object) -> str:
    if not isinstance(value, str):
        raise fail("must be text (a user name)")
    if not _USER_RE.fullmatch(value):
        raise fail(f"bad user name {quoted(value)}")
    return value


def _ipv4(value: object) -> IPv4Address:
    if isinstance(value, IPv4Address):
        return value
    if not isinstance(value, str):
        raise fail("must be an IPv4 address written like 192.0.2.2")
    text = value.strip()
    if "/" in text:
        raise fail(f"{quoted(text)} is a prefix: write a single address, without /length")
    try:
        addr = ip_address(text)
    except ValueError:
        raise fail(f"{quoted(text)} is not an IPv4 address") from None
    if not isinstance(addr, IPv4Address):
        raise fail(f"{shortened(text)} is an IPv6 address: only IPv4 is supported")
    return addr


def _network(value: object) -> IPv4Network:
    if isinstance(value, IPv4Network):
        value = str(value)
    if not isinstance(value, str):
        raise fail("must be a prefix written like 198.51.100.32/27")
    text = value.strip()
    if "/" not in text:
        try:
            ip_address(text)
        except ValueError:
            raise fail(f"{quoted(text)} is not an IPv4 prefix") from None
        raise fail(f"{quoted(text)} has no prefix length: write it like {shortened(text)}/32")
    try:
        iface = ip_interface(text)
    except ValueError:
        raise fail(f"{quoted(text)} is not an IPv4 prefix") from None
    if not isinstance(iface, IPv4Interface):
        raise fail(f"{shortened(text)} is an IPv6 prefix: only IPv4 is supported")
    net = iface.network
    if iface.ip != net.network_address:
        raise fail(f"{iface.with_prefixlen} has host bits set; did you mean {net}?")
    if net.prefixlen < _MIN_PREFIXLEN:
        raise fail(f"{net} is too wide: use a prefix length from /{_MIN_PREFIXLEN} to /32")
    return net


def _management_address(value: object) -> str:
    if not isinstance(value, str):
        raise fail("must be an IPv4 address or a host name")
    text = value.strip()
    try:
        addr = ip_address(text)
    except ValueError:
        pass
    else:
        if not isinstance(addr, IPv4Address):
            raise fail(f"{shortened(text)} is an IPv6 address: use an IPv4 address or a host name")
        return str(addr)
    if re.fullmatch(r"[0-9.]+", text):
        raise fail(f"{quoted(text)} is not an IPv4 address")
    if ":" in text:
        raise fail(f"{quoted(text)} is not an IPv4 address or a host name (a port goes in port:)")
    if not _HOSTNAME_RE.fullmatch(text):
        raise fail(f"{quoted(text)} is not an IPv4 address or a host name")
    return text.lower()


def _secret_ref(value: object) -> str:
    # Never echo the value: a person who wrote a plain password here wrote the password.
    if isinstance(value, str) and ENV_REF.fullmatch(value.strip()):
        return value.strip()
    if isinstance(value, str) and "${" in value:
        raise fail("must be exactly one ${NAME} reference, with nothing around it")
    raise fail(PLAIN_SECRET)


def _file_path(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise fail("must be a file path")
    return value.strip()


def _http_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise fail("must be a URL path starting with '/'")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise fail("must not contain spaces or control characters (percent-encode them)")
    return value


def _host_header(value: object) -> str:
    if not isinstance(value, str) or not _HOST_HEADER_RE.fullmatch(value):
        raise fail("must be a host name, optionally with :port")
    return value


# No setting of lasthop's means anything beyond this, and every duration stays far from the
# sizes where adding it to a timestamp or a timer overflows (config/example.yaml says so).
MAX_DURATION = 30 * 86400.0
# The smallest unit a duration is written in. Less means nothing to a timer or a socket (1e-320
# is a denormal float, not a time), and a check interval or a timeout of less would spin.
MIN_DURATION = 0.001


def _duration(*, zero_ok: bool) -> Callable[[object], float]:
    def check(value: object) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise fail(str(e)) from None
        if seconds < 0 or (seconds == 0 and not zero_ok):
            raise fail("must be greater than zero" if not zero_ok else "must not be negative")
        if 0 < seconds < MIN_DURATION:
            raise fail(f"{seconds:.3g}s is too short: at least {format_duration(MIN_DURATION)}"
                       + (", or 0 for none" if zero_ok else ""))
        if seconds > MAX_DURATION:
            raise fail(f"{format_duration(seconds) if seconds < 1e9 else f'{seconds:g}s'} is too long: "
                       f"at most {format_duration(MAX_DURATION)} (30 days)")
        return seconds

    return check


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail("must be a number between 0 and 1")
    if not 0 < value <= 1:
        raise fail("must be greater than 0 and at most 1")
    return float(value)


Name = Annotated[str, PlainValidator(_name)]
Tag = Annotated[str, PlainValidator(_tag)]
Username = Annotated[str, PlainValidator(_username)]
Ipv4 = Annotated[IPv4Address, PlainValidator(_ipv4)]
Prefix = Annotated[IPv4Network, PlainValidator(_network)]
ManagementAddress = Annotated[str, PlainValidator(_management_address)]
SecretRef = Annotated[str, PlainValidator(_secret_ref)]
FilePath = Annotated[str, PlainValidator(_file_path)]
HttpPath = Annotated[str, PlainValidator(_http_path)]
HostHeader = Annotated[str, PlainValidator(_host_header)]
Duration = Annotated[float, PlainValidator(_duration(zero_ok=False))]
Delay = Annotated[float, PlainValidator(_duration(zero_ok=True))]
Fraction = Annotated[float, PlainValidator(_fraction)]
Port = Annotated[int, Field(ge=1, le=65535)]
Count = Annotated[int, Field(ge=1, le=1000)]



def _slack_id(value: object) -> str:
    # Slack IDs only: display names change and collide; '*' means everyone, stated on purpose.
    if not isinstance(value, str):  # null, true or 7: shown as Python would name it, it would mislead
        raise fail("a Slack ID is text: a user (U…/W…), user group (S…) or channel (C…/G…) ID, or '*'")
    if not SLACK_ID_RE.fullmatch(value):
        raise fail(f"bad Slack ID {quoted(value)}: use a user (U…/W…), user group (S…) or channel (C…/G…) ID, or '*'")
    return value


SlackId = Annotated[str, PlainValidator(_slack_id)]


def _command_name(value: object) -> str:
    if not isinstance(value, str):
        raise fail("a command name is text like /lasthop")
    reason = check_command_name(value)
    if reason is not None:
        raise fail(f"bad command name {quoted(value)}: {reason}")
    return value


CommandName = Annotated[str, PlainValidator(_command_name)]


_X = TypeVar("_X")


def replace(obj: _X, **changes: Any) -> _X:
    """A copy of an inventory object with `changes`, checked again as the file's values are.

    Works on the models here and on plain dataclasses (the Inventory holding them), so code and
    tests can derive a variant of an inventory without knowing which kind each part is.
    """
    if isinstance(obj, BaseModel):
        return type(obj).model_validate({**dict(obj), **changes})
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
