"""Load the inventory file, validate it and cross-check it, reporting every problem at once.

Three passes, each feeding the next only what passed:
1. YAML, with a loader that remembers the line of every key and list item (and refuses
   duplicate keys, which pyyaml would silently overwrite);
2. shape and types, with pydantic models (unknown keys forbidden), one model per router,
   host and service so that one broken entry does not hide the problems of the others;
3. meaning: references between sections, prefixes, next hops, files and secrets.

Every problem becomes a `ConfigIssue` naming a key path and a line, and the whole list is
raised as one `ConfigError`. Secrets come only from the environment or from files, and no
message ever contains one.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_interface
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import quote

import yaml
from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictStr, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from bot.commands import CommandNames, check_command_name
from bot.drivers import driver_class, registry, router_kinds
from bot.drivers.base import DeviceSpec
from bot.durations import format_duration, parse_duration
from bot.inventory import (
    DEFAULT_STATE_URL,
    AutoFailover,
    CheckSpec,
    ConfigIssue,
    Flapping,
    Host,
    Inventory,
    Policy,
    Probe,
    RiskRules,
    Router,
    Service,
    SlackSettings,
    one_line,
)

SLACK_ID_RE = re.compile(r"\*|[UWSCGD][A-Z0-9]{2,20}")

__all__ = ["CONFIG_ORDER", "ConfigError", "ConfigIssue", "Inventory", "NoConfigError", "config_path", "load_inventory",
           "redact_url"]

DEFAULT_PATH = Path("config/lasthop.yaml")
PATH_ENV = "LASTHOP_CONFIG"

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TAG_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# A leading '-' would read as an option to ssh; nothing else unusual belongs in a login name.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_HOST_HEADER_RE = re.compile(r"[A-Za-z0-9.-]{1,253}(?::\d{1,5})?")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STATE_SCHEME = re.compile(r"(sqlite|postgres(?:ql)?(?:\+[a-z0-9_]+)?)://", re.IGNORECASE)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_SECRET = "plain secrets are not allowed in the config: use ${VAR} or password_file"
_MIN_PREFIXLEN = 8

Loc = tuple[str | int, ...]


# -- issues -------------------------------------------------------------------------------


class ConfigError(Exception):
    """The file cannot be used. `errors` holds every problem found, not just the first."""

    def __init__(
        self, errors: Sequence[ConfigIssue], source: Path | None = None,
        warnings: Sequence[ConfigIssue] = (),
    ) -> None:
        self.errors = list(errors)
        self.source = source
        self.warnings = list(warnings)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        name = self.source.name if self.source is not None else "config"
        return "\n".join(issue.format(name) for issue in self.errors)

    def __repr__(self) -> str:
        return f"ConfigError({len(self.errors)} issues in {self.source})"


def _q(value: object) -> str:
    """A value from the file, quoted and shortened, for a message."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return one_line(repr(text))


def _format_loc(loc: Loc) -> str:
    out = ""
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            text = one_line(seg if len(seg) <= 40 else seg[:37] + "...")
            out += f".{text}" if out else text
    return out


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- YAML with lines ------------------------------------------------------------------------


class LineMap(dict[Any, Any]):
    """A YAML mapping that knows the line of each of its keys (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}
        # (key, line of the repeat, line of the first)
        self.duplicates: list[tuple[Any, int, int]] = []


class LineSeq(list[Any]):
    """A YAML sequence that knows the line of each of its items (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences record lines and duplicate keys."""


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(node.start_mark.line + 1)
    yield data
    # Duplicates are looked for before merging: a key that overrides one merged in with
    # `<<: *anchor` is the point of a merge, not a mistake.
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        _require_hashable(key, node, key_node)
        if key in first:
            data.duplicates.append((key, line, first[key]))
        else:
            first[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        _require_hashable(key, node, key_node)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1


def _require_hashable(key: object, node: yaml.Node, key_node: yaml.Node) -> None:
    try:
        hash(key)
    except TypeError:
        raise yaml.constructor.ConstructorError(
            "while reading a mapping", node.start_mark, "found a list or mapping used as a key",
            key_node.start_mark,
        ) from None


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode) -> Iterator[LineSeq]:
    data = LineSeq(node.start_mark.line + 1)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(item.start_mark.line + 1)


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _line_at(root: object, loc: Loc) -> int | None:
    """The line of the deepest part of `loc` that exists in the document."""
    node = root
    line = getattr(root, "line", None)
    for seg in loc:
        if isinstance(node, LineMap) and seg in node.key_lines:
            line = node.key_lines[seg]
            node = node[seg]
        elif isinstance(node, LineSeq) and isinstance(seg, int) and 0 <= seg < len(node):
            line = node.item_lines[seg]
            node = node[seg]
        else:
            break
    return line


def _walk_duplicates(node: object, loc: Loc) -> Iterator[tuple[Loc, Any, int, int]]:
    if isinstance(node, LineMap):
        for key, line, first in node.duplicates:
            yield loc, key, line, first
        for key, value in node.items():
            yield from _walk_duplicates(value, (*loc, key if isinstance(key, str) else str(key)))
    elif isinstance(node, LineSeq):
        for i, item in enumerate(node):
            yield from _walk_duplicates(item, (*loc, i))


def _read_document(path: Path) -> LineMap:
    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError([ConfigIssue("", line, message)], path)

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path} does not exist (pass the file's path or set {PATH_ENV})") from None
    except IsADirectoryError:
        raise fail(f"{path} is a directory, not a config file") from None
    except PermissionError:
        raise fail(f"{path} cannot be read: permission denied") from None
    except OSError as e:
        raise fail(f"{path} cannot be read: {e.strerror or type(e).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail("not UTF-8 text", raw[: e.start].count(b"\n") + 1) from None
    try:
        data = yaml.load(text, Loader=LineLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "unreadable"
        if e.context and problem.startswith("but "):
            problem = f"{e.context}, {problem}"
        hint = " (indent with spaces, not tabs)" if "\\t" in problem else ""
        # Only pyyaml's short problem text: its snippet of the line could hold anything.
        raise fail(f"not valid YAML: {problem}{hint}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise fail(f"not valid YAML: {type(e).__name__}") from None
    except RecursionError:
        raise fail("not usable YAML: nested too deeply") from None
    if data is None:
        raise fail("the file is empty: it needs at least routers, hosts and services", 1)
    if not isinstance(data, LineMap):
        kind = "a list" if isinstance(data, list) else f"a single {type(data).__name__} value"
        raise fail(f"the top level must be a mapping (routers:, hosts:, services:), not {kind}", 1)
    return data


# -- value validators (shape pass) --------------------------------------------------------------


def _fail(message: str) -> PydanticCustomError:
    # The message travels in the context, so braces in it are never read as a template.
    return PydanticCustomError("lasthop", "{message}", {"message": message})


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise _fail(f"bad name {_q(value)}: a name must be text")
    if not NAME_RE.fullmatch(value):
        raise _fail(
            f"bad name {_q(value)}: use 1-32 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    return value


def _tag(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("a tag must be a short word")
    text = str(value)
    if not _TAG_RE.fullmatch(text):
        raise _fail(f"bad tag {_q(text)}: use 1-32 lowercase letters, digits, '-', '_' or '.'")
    return text


def _username(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("must be text (a user name)")
    if not _USER_RE.fullmatch(value):
        raise _fail(f"bad user name {_q(value)}")
    return value


def _ipv4(value: object) -> IPv4Address:
    if not isinstance(value, str):
        raise _fail("must be an IPv4 address written like 192.0.2.2")
    text = value.strip()
    if "/" in text:
        raise _fail(f"{_q(text)} is a prefix: write a single address, without /length")
    try:
        addr = ip_address(text)
    except ValueError:
        raise _fail(f"{_q(text)} is not an IPv4 address") from None
    if not isinstance(addr, IPv4Address):
        raise _fail(f"{text} is an IPv6 address: only IPv4 is supported")
    return addr


def _network(value: object) -> IPv4Network:
    if not isinstance(value, str):
        raise _fail("must be a prefix written like 198.51.100.32/27")
    text = value.strip()
    if "/" not in text:
        try:
            ip_address(text)
        except ValueError:
            raise _fail(f"{_q(text)} is not an IPv4 prefix") from None
        raise _fail(f"{_q(text)} has no prefix length: write it like {text}/32")
    try:
        iface = ip_interface(text)
    except ValueError:
        raise _fail(f"{_q(text)} is not an IPv4 prefix") from None
    if not isinstance(iface, IPv4Interface):
        raise _fail(f"{text} is an IPv6 prefix: only IPv4 is supported")
    net = iface.network
    if iface.ip != net.network_address:
        raise _fail(f"{text} has host bits set; did you mean {net}?")
    if net.prefixlen < _MIN_PREFIXLEN:
        raise _fail(f"{net} is too wide: use a prefix length from /{_MIN_PREFIXLEN} to /32")
    return net


def _management_address(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("must be an IPv4 address or a host name")
    text = value.strip()
    try:
        addr = ip_address(text)
    except ValueError:
        pass
    else:
        if not isinstance(addr, IPv4Address):
            raise _fail(f"{text} is an IPv6 address: use an IPv4 address or a host name")
        return str(addr)
    if re.fullmatch(r"[0-9.]+", text):
        raise _fail(f"{_q(text)} is not an IPv4 address")
    if ":" in text:
        raise _fail(f"{_q(text)} is not an IPv4 address or a host name (a port goes in port:)")
    if not _HOSTNAME_RE.fullmatch(text):
        raise _fail(f"{_q(text)} is not an IPv4 address or a host name")
    return text.lower()


def _secret_ref(value: object) -> str:
    # Never echo the value: a person who wrote a plain password here wrote the password.
    if isinstance(value, str) and _ENV_REF.fullmatch(value.strip()):
        return value.strip()
    if isinstance(value, str) and "${" in value:
        raise _fail("must be exactly one ${NAME} reference, with nothing around it")
    raise _fail(_PLAIN_SECRET)


def _file_path(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _fail("must be a file path")
    return value.strip()


def _http_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail("must be a URL path starting with '/'")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise _fail("must not contain spaces or control characters (percent-encode them)")
    return value


def _host_header(value: object) -> str:
    if not isinstance(value, str) or not _HOST_HEADER_RE.fullmatch(value):
        raise _fail("must be a host name, optionally with :port")
    return value


def _duration(*, zero_ok: bool) -> Callable[[object], float]:
    def check(value: object) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise _fail(str(e)) from None
        if seconds < 0 or (seconds == 0 and not zero_ok):
            raise _fail("must be greater than zero" if not zero_ok else "must not be negative")
        return seconds

    return check


def _fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail("must be a number between 0 and 1")
    if not 0 < value <= 1:
        raise _fail("must be greater than 0 and at most 1")
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


# -- the file's shape ------------------------------------------------------------------------------


class _Model(BaseModel):
    # strict: YAML already typed every scalar; `port: yes` or `fall: "3"` is a mistake to report.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DefaultsModel(_Model):
    port: Port | None = None
    username: Username | None = None
    key_file: FilePath | None = None
    known_hosts: FilePath | None = None
    connect_timeout: Duration | None = None
    command_timeout: Duration | None = None


class _SshModel(_Model):
    port: Port | None = None
    username: Username | None = None
    key_file: FilePath | None = None
    password: SecretRef | None = None
    password_file: FilePath | None = None
    known_hosts: FilePath | None = None
    connect_timeout: Duration | None = None
    command_timeout: Duration | None = None


def _router_kind(value: object) -> str:
    kinds = router_kinds()
    if not isinstance(value, str) or value not in kinds:
        hint = _did_you_mean(value, list(kinds)) if isinstance(value, str) else ""
        raise _fail(f"must be one of {', '.join(kinds)}{hint}")
    return value


class RouterModel(_SshModel):
    driver: Annotated[str, PlainValidator(_router_kind)]
    address: ManagementAddress
    save_config: bool | None = None
    revert_timer: Duration | None = None
    lan: Annotated[list[Prefix], MinLen(1)]


class HostSshModel(_SshModel):
    address: ManagementAddress | None = None


class HostModel(_Model):
    address: Ipv4
    ssh: HostSshModel | None = None
    tags: list[Tag] = Field(default_factory=list)


class CheckModel(_Model):
    kind: Literal["http", "https", "tcp"] = "http"
    port: Port | None = None
    path: HttpPath = "/"
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    body: StrictStr = ""
    host_header: HostHeader | None = None
    tls_verify: bool = True
    interval: Duration = 5.0
    timeout: Duration = 2.0
    fall: Count = 3
    rise: Count = 2
    fast_interval: Duration = 1.0


class ServiceModel(_Model):
    prefix: Prefix
    router: StrictStr
    hosts: Annotated[list[StrictStr], MinLen(1)]
    vips: Annotated[list[Ipv4], MinLen(1)] | None = None
    check: CheckModel = Field(default_factory=CheckModel)
    auto_failover: bool = False


class _ServiceRefs(BaseModel):
    """Just the references of a service, to check them when the rest of it is broken."""

    model_config = ConfigDict(extra="ignore", strict=True)
    router: StrictStr
    hosts: list[StrictStr]


class RiskModel(_Model):
    target_health_unknown: bool = True
    moves_from_healthy_host: bool = True
    multiple_prefixes: bool = True
    one_host_serves_all: bool = True
    drift: bool = True


class AutoFailoverModel(_Model):
    enabled: bool = False
    max_moves: Count = 3
    window: Duration = 3600.0
    failback: bool = False
    hold_down: Delay = 600.0
    partition_threshold: Fraction = 0.5


class FlappingModel(_Model):
    # Fewer than two changes in a window is one failure and its recovery, never flapping.
    changes: Annotated[int, Field(ge=2, le=1000)] = 4
    window: Duration = 300.0


class PolicyModel(_Model):
    risky: RiskModel = Field(default_factory=RiskModel)
    approval_timeout: Duration = 900.0
    two_person_rule: bool = True
    save_after_change: bool = True
    verify_timeout: Duration = 10.0
    auto_failover: AutoFailoverModel = Field(default_factory=AutoFailoverModel)
    flapping: FlappingModel = Field(default_factory=FlappingModel)


def _slack_id(value: object) -> str:
    # Slack IDs only: display names change and collide; '*' means everyone, stated on purpose.
    if not isinstance(value, str) or not SLACK_ID_RE.fullmatch(value):
        raise _fail(f"bad Slack ID {_q(value)}: use a user (U…/W…), user group (S…) or channel (C…/G…) ID, or '*'")
    return value


SlackId = Annotated[str, PlainValidator(_slack_id)]


def _command_name(value: object) -> str:
    if not isinstance(value, str):
        raise _fail("a command name is text like /lasthop")
    reason = check_command_name(value)
    if reason is not None:
        raise _fail(f"bad command name {_q(value)}: {reason}")
    return value


CommandName = Annotated[str, PlainValidator(_command_name)]


class RolesModel(_Model):
    viewers: list[SlackId] = Field(default_factory=list)
    operators: list[SlackId] = Field(default_factory=list)
    approvers: list[SlackId] = Field(default_factory=list)


class CommandsModel(_Model):
    umbrella: CommandName | None = None
    failover: CommandName | None = None
    status: CommandName | None = None


class SlackModel(_Model):
    alert_channel: SlackId | None = None
    channels: list[SlackId] = Field(default_factory=list)
    roles: RolesModel = Field(default_factory=RolesModel)
    commands: CommandsModel = Field(default_factory=CommandsModel)


class ProbeModel(_Model):
    source: Ipv4 | None = None
    verify_vips: bool = False


class TopModel(_Model):
    # Sections are only shaped here; each entry is validated on its own (see module docstring).
    state_url: StrictStr | None = None
    defaults: Any = None
    routers: Annotated[dict[Name, Any], MinLen(1)]
    hosts: Annotated[dict[Name, Any], MinLen(1)]
    services: Annotated[dict[Name, Any], MinLen(1)]
    policy: Any = None
    probe: Any = None
    slack: Any = None


# -- pydantic errors in words --------------------------------------------------------------------

_SIMPLE_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "dict_type": "must be a mapping (key: value lines)",
    "model_type": "must be a mapping (key: value lines)",
    "model_attributes_type": "must be a mapping (key: value lines)",
    "list_type": "must be a list",
}


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed in the mapping at `loc` inside `model` (for "did you mean")."""
    tp: Any = model
    for seg in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(seg))
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _translate(err: ErrorDetails, model: type[BaseModel]) -> tuple[Loc, Loc, str]:
    """(path to report, path whose line to report, message) for one pydantic error."""
    loc: Loc = tuple(seg for seg in err["loc"] if seg != "[key]")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return loc[:-1], loc[:-1], f"missing required key {_q(loc[-1])}"
    if kind == "invalid_key":
        return loc[:-1], loc, f"unknown key {_q(loc[-1])}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        return loc[:-1], loc, f"unknown key {_q(key)}{_did_you_mean(key, _keys_at(model, loc[:-1]))}"
    if kind == "lasthop":
        return loc, loc, str(ctx.get("message", "is not valid"))
    if kind in _SIMPLE_MESSAGES:
        return loc, loc, _SIMPLE_MESSAGES[kind]
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        given = err.get("input")
        hint = _did_you_mean(given, options) if isinstance(given, str) else ""
        return loc, loc, f"must be one of {', '.join(options)}{hint}"
    bounds = {
        "greater_than_equal": ("ge", "must be at least {}"),
        "greater_than": ("gt", "must be greater than {}"),
        "less_than_equal": ("le", "must be at most {}"),
        "less_than": ("lt", "must be less than {}"),
    }
    if kind in bounds:
        key, text = bounds[kind]
        return loc, loc, text.format(ctx.get(key))
    if kind == "too_short":
        if ctx.get("field_type") == "Dictionary":
            return loc, loc, "must not be empty"
        n = ctx.get("min_length", 1)
        return loc, loc, f"must list at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return loc, loc, f"must list at most {ctx.get('max_length')} items"
    # Pydantic's own sentence never includes the input; good enough for the rare rest.
    message = err["msg"]
    return loc, loc, message[:1].lower() + message[1:]


# -- building the inventory -----------------------------------------------------------------------

_M = TypeVar("_M", bound=BaseModel)


class _Builder:
    def __init__(self, doc: LineMap, source: Path, env: Mapping[str, str], check_files: bool,
                 defer_files: bool = False) -> None:
        self.doc = doc
        self.source = source
        self.env = env
        self.check_files = check_files
        self.defer_files = defer_files
        self.errors: list[ConfigIssue] = []
        self.file_issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self._files_seen: set[str] = set()

    # -- reporting --
    def error(self, loc: Loc, message: str, *, line_loc: Loc | None = None, line: int | None = None) -> None:
        where = line if line is not None else _line_at(self.doc, loc if line_loc is None else line_loc)
        issue = ConfigIssue(_format_loc(loc), where, message)
        if issue not in self.errors:
            self.errors.append(issue)

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(ConfigIssue(_format_loc(loc), _line_at(self.doc, loc), message))

    def validate(self, model: type[_M], raw: object, loc: Loc) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as e:
            for err in e.errors(include_url=False):
                path, line_loc, message = _translate(err, model)
                self.error((*loc, *path), message, line_loc=(*loc, *line_loc))
            return None

    def names(self, section: str) -> list[str] | None:
        if not isinstance(self.doc.get(section), dict):
            return None
        return [name for name, _ in self.entries(section)]

    def entries(self, section: str) -> list[tuple[str, object]]:
        raw = self.doc.get(section)
        if not isinstance(raw, dict):
            return []
        # Badly named entries were reported by TopModel; they cannot be referred to anyway.
        return [(k, v) for k, v in raw.items() if isinstance(k, str) and NAME_RE.fullmatch(k)]

    # -- the whole file --
    def build(self) -> Inventory:
        for loc, key, line, first in _walk_duplicates(self.doc, ()):
            self.error(loc, f"duplicate key {_q(key)} (first at line {first})", line=line)
        self.validate(TopModel, self.doc, ())

        defaults_ok = True
        raw_defaults = self.doc.get("defaults")
        defaults = self.validate(DefaultsModel, {} if raw_defaults is None else raw_defaults, ("defaults",))
        if defaults is None:
            # Already reported; do not also blame every device for what defaults failed to give.
            defaults_ok, defaults = False, DefaultsModel()

        raw_policy = self.doc.get("policy")
        policy_model = self.validate(PolicyModel, {} if raw_policy is None else raw_policy, ("policy",))
        policy = _policy(policy_model or PolicyModel())

        raw_probe = self.doc.get("probe")
        probe_model = self.validate(ProbeModel, {} if raw_probe is None else raw_probe, ("probe",))
        probe = Probe(probe_model.source, probe_model.verify_vips) if probe_model else Probe()

        raw_slack = self.doc.get("slack")
        slack_model = self.validate(SlackModel, {} if raw_slack is None else raw_slack, ("slack",))
        slack = SlackSettings() if slack_model is None else SlackSettings(
            alert_channel=slack_model.alert_channel,
            channels=tuple(slack_model.channels),
            viewers=tuple(slack_model.roles.viewers),
            operators=tuple(slack_model.roles.operators),
            approvers=tuple(slack_model.roles.approvers),
            commands=self.command_names(slack_model.commands),
        )

        state_url, state_url_redacted = self.state_url()

        # None: the section itself is broken (already reported), so no name can be called unknown.
        router_names = self.names("routers")
        host_names = self.names("hosts")

        routers: dict[str, Router] = {}
        for name, raw in self.entries("routers"):
            router_model = self.validate(RouterModel, raw, ("routers", name))
            if router_model is not None:
                routers[name] = self.router(name, router_model, defaults, defaults_ok)

        hosts: dict[str, Host] = {}
        for name, raw in self.entries("hosts"):
            host_model = self.validate(HostModel, raw, ("hosts", name))
            if host_model is not None:
                hosts[name] = self.host(name, host_model, defaults, defaults_ok)

        services: dict[str, Service] = {}
        for name, raw in self.entries("services"):
            service = self.service(name, raw, router_names, host_names, routers, hosts)
            if service is not None:
                services[name] = service

        self.cross_check(routers, hosts, services, policy)

        if self.errors:
            raise ConfigError(_by_line(self.errors), self.source, _by_line(self.warnings))
        return Inventory(
            routers=routers,
            hosts=hosts,
            services=services,
            policy=policy,
            probe=probe,
            slack=slack,
            state_url=state_url,
            state_url_redacted=state_url_redacted,
            warnings=_by_line(self.warnings),
            source=self.source,
            file_issues=_by_line(self.file_issues),
        )

    # -- secrets and files --
    def secret(self, ref: str, loc: Loc) -> str | None:
        match = _ENV_REF.fullmatch(ref)
        if match is None:
            self.error(loc, _PLAIN_SECRET)
            return None
        name = match.group(1)
        value = self.env.get(name)
        if value is None:
            self.error(loc, f"environment variable {name} is not set")
            return None
        if value == "":
            self.error(loc, f"environment variable {name} is empty")
            return None
        return value

    def file_path(self, text: str) -> Path:
        # Relative paths are the config file's neighbours, wherever the bot was started from.
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.source.parent / path

    def file_error(self, loc: Loc, message: str) -> None:
        """A file the devices' logins need is not usable: an error, or with defer_files a note for later."""
        if not self.defer_files:
            self.error(loc, message)
            return
        issue = ConfigIssue(_format_loc(loc), _line_at(self.doc, loc), message)
        if issue not in self.file_issues:
            self.file_issues.append(issue)

    def check_file(self, path: Path, loc: Loc, what: str) -> None:
        key = _format_loc(loc)
        if not self.check_files or key in self._files_seen:
            return
        self._files_seen.add(key)
        if not path.exists():
            self.file_error(loc, f"{what} {path} does not exist")
        elif not path.is_file():
            self.file_error(loc, f"{what} {path} is not a file")
        elif not os.access(path, os.R_OK):
            self.file_error(loc, f"{what} {path} cannot be read")

    def password_file(self, path: Path, loc: Loc) -> str | None:
        if not self.check_files:
            return None
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.file_error(loc, f"password_file {path} does not exist")
            return None
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not readable text"
            self.file_error(loc, f"password_file {path} cannot be read: {reason}")
            return None
        secret = text.rstrip("\r\n")
        if not secret:
            self.file_error(loc, f"password_file {path} is empty")
            return None
        return secret

    def state_url(self) -> tuple[str, str]:
        loc: Loc = ("state_url",)
        raw = self.doc.get("state_url")
        if raw is None:
            return DEFAULT_STATE_URL, DEFAULT_STATE_URL
        if not isinstance(raw, str):
            return DEFAULT_STATE_URL, DEFAULT_STATE_URL  # reported by TopModel
        text = raw.strip()
        head, sep, rest = text.partition("://")
        netloc, slash, tail = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        query_password = re.search(r"[?&]password=([^&]*)", tail)
        if (colon and not _ENV_REF.fullmatch(password)) or (
            query_password and not _ENV_REF.fullmatch(query_password.group(1))
        ):
            # Never echo the URL: it holds the very password being refused.
            self.error(loc, "a password written inside state_url is not allowed: put ${VAR} in its place")
            return DEFAULT_STATE_URL, DEFAULT_STATE_URL
        parts = [head, sep, user, colon, password, at, hostport, slash, tail]
        resolved: list[str] = []
        missing: list[str] = []
        for i, part in enumerate(parts):
            # A password may hold '@' or '/': percent-encode it so the URL still parses.
            encode = i == 4
            resolved.append(self.expand(part, missing, encode=encode))
        for name in dict.fromkeys(missing):
            self.error(loc, f"environment variable {name} is not set")
        if missing:
            return DEFAULT_STATE_URL, DEFAULT_STATE_URL
        url = "".join(resolved)
        if not _STATE_SCHEME.match(url):
            self.error(loc, "must be a URL like sqlite:///state/lasthop.db or postgresql+psycopg://user@host/db")
            return DEFAULT_STATE_URL, DEFAULT_STATE_URL
        return url, redact_url(url)

    def expand(self, text: str, missing: list[str], *, encode: bool) -> str:
        def value(match: re.Match[str]) -> str:
            found = self.env.get(match.group(1))
            if found is None:
                missing.append(match.group(1))
                return ""
            return quote(found, safe="") if encode else found

        return _ENV_REF.sub(value, text)

    def command_names(self, m: CommandsModel) -> CommandNames:
        given = {k: v for k, v in m.model_dump().items() if v is not None}
        names = CommandNames(**given)
        seen: dict[str, str] = {}
        for key in (f.name for f in fields(names)):
            name = getattr(names, key)
            if name in seen:
                # Point at a key the file sets: two defaults never collide.
                where = key if key in given else seen[name]
                other = seen[name] if where == key else key
                self.error(("slack", "commands", where), f"{name} is also the {other} command: each needs its own name")
            seen[name] = key
        return names

    # -- entries --
    def device(
        self, name: str, block: _SshModel | None, block_loc: Loc, address: str,
        defaults: DefaultsModel, defaults_ok: bool,
    ) -> DeviceSpec:
        def pick(field: str) -> tuple[Any, Loc]:
            own = getattr(block, field, None) if block is not None else None
            if own is not None:
                return own, (*block_loc, field)
            return getattr(defaults, field, None), ("defaults", field)

        username, _ = pick("username")
        known_hosts, known_hosts_loc = pick("known_hosts")
        key_file, key_file_loc = pick("key_file")
        password_ref = block.password if block is not None else None
        password_file = block.password_file if block is not None else None
        if defaults_ok:
            if username is None:
                self.error(block_loc, "no username: set username here or in defaults")
            if known_hosts is None:
                self.error(
                    block_loc, "no known_hosts: set it here or in defaults (host keys are always checked)"
                )
            if key_file is None and password_ref is None and password_file is None:
                self.error(
                    block_loc, "no key_file, password or password_file: set one here, or key_file in defaults"
                )
        if password_ref is not None and password_file is not None:
            self.error((*block_loc, "password_file"), "set password or password_file, not both")

        password: str | None = None
        if password_ref is not None:
            password = self.secret(password_ref, (*block_loc, "password"))
        elif password_file is not None:
            password = self.password_file(self.file_path(password_file), (*block_loc, "password_file"))
        key_path = self.file_path(key_file) if key_file is not None else None
        if key_path is not None:
            self.check_file(key_path, key_file_loc, "key_file")
        known_hosts_path = self.file_path(known_hosts) if known_hosts is not None else Path()
        if known_hosts is not None:
            self.check_file(known_hosts_path, known_hosts_loc, "known_hosts")

        port, _ = pick("port")
        connect_timeout, _ = pick("connect_timeout")
        command_timeout, _ = pick("command_timeout")
        return DeviceSpec(
            name=name,
            address=address,
            username=username or "",
            known_hosts=known_hosts_path,
            port=port if port is not None else 22,
            key_file=key_path,
            password=password,
            connect_timeout=connect_timeout if connect_timeout is not None else 5.0,
            command_timeout=command_timeout if command_timeout is not None else 10.0,
        )

    def router(self, name: str, m: RouterModel, defaults: DefaultsModel, defaults_ok: bool) -> Router:
        loc: Loc = ("routers", name)
        spec = self.device(name, m, loc, m.address, defaults, defaults_ok)
        # What a router may be told is its driver's to say (bot/drivers): nothing here knows a kind.
        driver = driver_class(m.driver)
        revert_seconds: int | None = None
        if m.revert_timer is not None:
            if driver.revert_support is None:
                able = [k for k, cls in registry().items() if cls.revert_support is not None]
                self.error((*loc, "revert_timer"),
                           f"revert_timer is only for {', '.join(able)} routers, not {m.driver}")
            elif problem := driver.revert_support.problem(m.revert_timer):
                self.error((*loc, "revert_timer"), problem)
            else:
                revert_seconds = int(m.revert_timer)
        if m.save_config and not driver.saves:
            self.error(
                (*loc, "save_config"), f"a {m.driver} router has no configuration to save: set save_config: false"
            )
        # Unset, it follows the driver: a router with a configuration to save saves it.
        save = m.save_config if m.save_config is not None else driver.saves
        for i, net in enumerate(m.lan):
            if net in m.lan[:i]:
                self.error((*loc, "lan", i), f"{net} is listed twice")
        return Router(name, m.driver, spec, save, revert_seconds, tuple(m.lan))

    def host(self, name: str, m: HostModel, defaults: DefaultsModel, defaults_ok: bool) -> Host:
        loc: Loc = ("hosts", name)
        block_loc = (*loc, "ssh") if m.ssh is not None else loc
        ssh_address = m.ssh.address if m.ssh is not None and m.ssh.address is not None else str(m.address)
        spec = self.device(name, m.ssh, block_loc, ssh_address, defaults, defaults_ok)
        return Host(name, m.address, spec, tuple(m.tags))

    def check(self, m: CheckModel, loc: Loc) -> CheckSpec:
        if m.timeout >= m.interval:
            self.error(
                (*loc, "timeout"),
                f"timeout {format_duration(m.timeout)} must be shorter than interval "
                f"{format_duration(m.interval)}",
            )
        if m.fast_interval > m.interval:
            self.error(
                (*loc, "fast_interval"),
                f"fast_interval {format_duration(m.fast_interval)} must not be longer than interval "
                f"{format_duration(m.interval)}",
            )
        port = m.port if m.port is not None else (443 if m.kind == "https" else 80)
        return CheckSpec(
            kind=m.kind, port=port, path=m.path, expect_status=m.expect_status, body=m.body,
            host_header=m.host_header, tls_verify=m.tls_verify, interval=m.interval, timeout=m.timeout,
            fall=m.fall, rise=m.rise, fast_interval=m.fast_interval,
        )

    def service(
        self, name: str, raw: object, router_names: list[str] | None, host_names: list[str] | None,
        routers: Mapping[str, Router], hosts: Mapping[str, Host],
    ) -> Service | None:
        loc: Loc = ("services", name)
        m = self.validate(ServiceModel, raw, loc)
        # A service with a bad prefix still names a router and hosts worth checking now
        # rather than after the next edit; the shape errors are already reported.
        refs = m if m is not None else _quietly(_ServiceRefs, raw)
        if refs is not None:
            self.references(loc, refs.router, refs.hosts, router_names, host_names, routers, hosts)
        if m is None:
            return None
        check = self.check(m.check, (*loc, "check"))
        prefix = m.prefix
        if m.vips is None:
            if prefix.prefixlen == 32:
                vips: tuple[IPv4Address, ...] = (prefix.network_address,)
            else:
                self.error(loc, "missing required key 'vips' (only a /32 prefix may leave it out)")
                vips = ()
        else:
            vips = tuple(m.vips)
            for i, vip in enumerate(vips):
                if vip not in prefix:
                    self.error((*loc, "vips", i), f"{vip} is outside the prefix {prefix}")
                elif vip in vips[:i]:
                    self.error((*loc, "vips", i), f"{vip} is listed twice")
        return Service(name, prefix, m.router, tuple(dict.fromkeys(m.hosts)), vips, check, m.auto_failover)

    def references(
        self, loc: Loc, router_name: str, host_list: Sequence[str], router_names: list[str] | None,
        host_names: list[str] | None, routers: Mapping[str, Router], hosts: Mapping[str, Host],
    ) -> None:
        if router_names is not None and router_name not in router_names:
            self.error((*loc, "router"), f"unknown router {_q(router_name)}{_known(router_name, router_names)}")
        router = routers.get(router_name)
        for i, host_name in enumerate(host_list):
            if host_names is not None and host_name not in host_names:
                self.error((*loc, "hosts", i), f"unknown host {_q(host_name)}{_known(host_name, host_names)}")
                continue
            if host_name in host_list[:i]:
                first = host_list.index(host_name)
                self.error((*loc, "hosts", i), f"{host_name} is listed twice (also hosts[{first}])")
                continue
            host = hosts.get(host_name)
            if router is not None and host is not None and not router.reaches(host.address):
                lans = ", ".join(map(str, router.lan))
                self.error(
                    (*loc, "hosts", i),
                    f"next hop {host.address} of {host_name} is outside {router.name}'s lan {lans}: "
                    "the router cannot reach it",
                )
        if len(set(host_list)) == 1:
            self.warn((*loc, "hosts"), "only one host: there is nowhere to fail over to")

    def cross_check(
        self, routers: Mapping[str, Router], hosts: Mapping[str, Host], services: Mapping[str, Service],
        policy: Policy,
    ) -> None:
        seen: list[Service] = []
        for service in services.values():
            for other in seen:
                if service.prefix.overlaps(other.prefix):
                    self.error(
                        ("services", service.name, "prefix"),
                        f"{service.prefix} overlaps {other.prefix} of service {other.name}",
                    )
            seen.append(service)
            if service.auto_failover and not policy.auto_failover.enabled:
                self.warn(
                    ("services", service.name, "auto_failover"),
                    "auto_failover is on but policy.auto_failover.enabled is false: it will not act",
                )

        by_address: dict[IPv4Address, str] = {}
        for host in hosts.values():
            loc: Loc = ("hosts", host.name, "address")
            if host.address in by_address:
                self.error(loc, f"{host.address} is also the address of {by_address[host.address]}")
            else:
                by_address[host.address] = host.name
            for service in services.values():
                if host.address in service.prefix:
                    self.error(
                        loc,
                        f"{host.address} is inside {service.name}'s prefix {service.prefix}: "
                        "a route cannot point into itself",
                    )
            if host.name in services:
                self.error(
                    ("services", host.name),
                    f"{host.name} is also a host's name: a command could not tell them apart",
                )


def _quietly(model: type[_M], raw: object) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def _known(word: str, names: Sequence[str]) -> str:
    hint = _did_you_mean(word, names)
    if hint:
        return hint
    return f" (known: {', '.join(names)})" if names else ""


def _policy(m: PolicyModel) -> Policy:
    r, a = m.risky, m.auto_failover
    return Policy(
        risky=RiskRules(
            target_health_unknown=r.target_health_unknown,
            moves_from_healthy_host=r.moves_from_healthy_host,
            multiple_prefixes=r.multiple_prefixes,
            one_host_serves_all=r.one_host_serves_all,
            drift=r.drift,
        ),
        approval_timeout=m.approval_timeout,
        two_person_rule=m.two_person_rule,
        save_after_change=m.save_after_change,
        verify_timeout=m.verify_timeout,
        auto_failover=AutoFailover(
            enabled=a.enabled, max_moves=a.max_moves, window=a.window, failback=a.failback,
            hold_down=a.hold_down, partition_threshold=a.partition_threshold,
        ),
        flapping=Flapping(changes=m.flapping.changes, window=m.flapping.window),
    )


def _by_line(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: i.line if i.line is not None else 0)


def redact_url(url: str) -> str:
    """`url` with any password (in the user part or a `password=` parameter) replaced by ***."""
    head, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if colon:
        userinfo = f"{user}:***"
    tail = re.sub(r"([?&]password=)[^&]*", r"\1***", tail)
    return f"{head}{sep}{userinfo}{at}{hostport}{slash}{tail}"


# -- entry point ------------------------------------------------------------------------------------


DEMO_LAB_PREFIX = "lh"  # `lasthop lab up` without --prefix
CONFIG_ORDER = ("--config FILE, else $LASTHOP_CONFIG, else config/lasthop.yaml in the current directory, "
                "else the demo lab's inventory (/run/lasthop-lab/lh/lasthop.yaml) while the demo lab is up")


class NoConfigError(ConfigError):
    """No inventory in any of the places lasthop looks; the message names each of them."""

    def __init__(self, looked: Sequence[str]) -> None:
        self.looked = list(looked)
        super().__init__([ConfigIssue("", None, "no inventory found")])

    def __str__(self) -> str:
        return "\n".join(["lasthop: no inventory found. Looked, in this order, at:",
                          *(f"  {place}" for place in self.looked),
                          "Pass --config FILE, set LASTHOP_CONFIG, or start the demo lab (lasthop lab up)."])


def demo_lab_inventory(lab_root: Path | None = None) -> tuple[Path, bool]:
    """Where `lasthop lab up` writes the demo lab's inventory, and whether that lab is up now."""
    from lab.state import DEFAULT_STATE_ROOT, StatePaths, recorded_slot

    paths = StatePaths(DEFAULT_STATE_ROOT if lab_root is None else lab_root, DEMO_LAB_PREFIX)
    return paths.inventory, paths.inventory.is_file() and recorded_slot(paths) is not None


def config_path(path: Path | str | None = None, env: Mapping[str, str] | None = None, *,
                cwd: Path | None = None, lab_root: Path | None = None) -> Path:
    """Which inventory to load: the one rule, everywhere (see CONFIG_ORDER).

    1. `path` (the --config option), 2. $LASTHOP_CONFIG, 3. config/lasthop.yaml relative to `cwd`
    (default: the current directory), 4. the demo lab's inventory, only while the demo lab is up.
    A file named by 1 or 2 is used even if it is missing (loading it then says so); when 3 and 4
    find nothing, NoConfigError names every place looked.
    """
    if path is not None:
        return Path(path)
    env = os.environ if env is None else env
    from_env = env.get(PATH_ENV, "").strip()
    if from_env:
        return Path(from_env)
    local = DEFAULT_PATH if cwd is None else cwd / DEFAULT_PATH
    if local.is_file():
        return local
    lab_inventory, lab_up = demo_lab_inventory(lab_root)
    if lab_up:
        return lab_inventory
    where = (cwd or Path.cwd()).resolve()
    raise NoConfigError([
        "--config FILE: not given",
        f"${PATH_ENV}: not set",
        f"{DEFAULT_PATH} (in {where}): {'not a file' if local.exists() else 'no such file'}",
        f"{lab_inventory}: the demo lab is not up",
    ])


def load_inventory(
    path: Path | None = None, env: Mapping[str, str] | None = None, *, check_files: bool = True,
    defer_files: bool = False,
) -> Inventory:
    """Load and check the inventory; raise `ConfigError` listing every problem.

    `env` (default: os.environ) supplies ${VAR} secrets and LASTHOP_CONFIG.
    `check_files=False` skips looking at key_file, known_hosts and password_file (the
    password then stays None): for checking a file written for another machine.
    `defer_files=True` looks at them but puts their problems in `inventory.file_issues`
    instead of raising: they matter only to the commands that log in to devices.
    """
    env = os.environ if env is None else env
    source = config_path(path, env)
    doc = _read_document(source)
    return _Builder(doc, source, env, check_files, defer_files).build()
