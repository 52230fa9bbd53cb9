"""Load the inventory file, validate it and cross-check it, reporting every problem at once.

Three passes, each feeding the next only what passed:
1. YAML, with a loader that remembers the line of every key and list item (and refuses
   duplicate keys, which pyyaml would silently overwrite);
2. shape, types and each entry's own rules, with the inventory's pydantic models themselves
   (bot.inventory; a router's driver options from bot.drivers), one entry at a time so that one
   broken entry does not hide the problems of the others;
3. what no model can check alone: defaults inheritance, secrets, files, and references
   between sections (a service's router and hosts, next hops inside a router's LAN).

Every problem becomes a `ConfigIssue` naming a key path and a line, and the whole list is
raised as one `ConfigError`. Secrets come only from the environment or from files, and no
message ever contains one.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from urllib.parse import quote

import yaml
from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from bot.commands import CommandNames
from bot.drivers import driver_class, router_kinds
from bot.drivers.base import DeviceSpec
from bot.echo import shortened
from bot.inventory import (
    DEFAULT_STATE_URL,
    ConfigIssue,
    Host,
    Inventory,
    Policy,
    Probe,
    Router,
    Service,
    SlackSettings,
)
from bot.values import (
    ENV_REF,
    NAME_RE,
    PLAIN_SECRET,
    SLACK_ID_RE,
    CommandName,
    Duration,
    FilePath,
    FrozenModel,
    ListOf,
    ManagementAddress,
    Name,
    Port,
    Prefix,
    SecretRef,
    Username,
)
from bot.values import quoted as _q

__all__ = ["CONFIG_ORDER", "SLACK_ID_RE", "ConfigError", "ConfigIssue", "Inventory", "NoConfigError", "config_path",
           "load_inventory", "redact_url"]

DEFAULT_PATH = Path("config/lasthop.yaml")
PATH_ENV = "LASTHOP_CONFIG"

_STATE_SCHEME = re.compile(r"(sqlite|postgres(?:ql)?(?:\+[a-z0-9_]+)?)://", re.IGNORECASE)
_CORE_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _CORE_TAG + "merge"

Loc = tuple[str | int, ...]
# A path is shown whole up to this: only whole is it useful, and a real one is shorter.
_PATH_LIMIT = 120
_PASSWORD_FILE_LIMIT = 4096  # a password or a token; far more means the wrong file


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


def _format_loc(loc: Loc) -> str:
    out = ""
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            text = shortened(seg)
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


_MAX_DEPTH = 32  # far deeper than any inventory; deeper nesting is a mistake or an attack
# Values that aliases bring in, counted as if each alias were written out. An inventory that
# merges a shared check into every service stays far below; a "billion laughs" of a few hundred
# bytes goes past it within a few aliases, long before anything walks what it expands to.
_MAX_ALIASED = 100_000


class _Refused(yaml.MarkedYAMLError):
    """What the loader itself refuses: its `problem` is the whole message, written for the file's author."""


class LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences record lines and duplicate keys.

    It also refuses, with the line, what would otherwise escape as a Python error or run for
    hours: nesting deep enough to exhaust the stack (also when aliases build it), an alias
    inside the very value it names (a cycle), aliases that expand to millions of values, and
    integers too long for Python to convert; and it says in its own words, with every name
    shortened, what pyyaml would say with the name whole (an anchor defined twice, an alias
    to no anchor, an unknown tag).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliased = 0
        # Of every finished node: (how many values it holds once its aliases are written out, its height).
        self._extent: dict[int, tuple[int, int]] = {}

    def _refuse(self, problem: str, mark: Any) -> _Refused:
        return _Refused(None, None, problem, mark)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                raise self._refuse(f"nested more than {_MAX_DEPTH} levels deep", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent):
                self._check_alias(event)
            elif (anchor := getattr(event, "anchor", None)) is not None and anchor in self.anchors:
                first = self.anchors[anchor].start_mark.line + 1
                raise self._refuse(f"the anchor &{shortened(anchor)} is defined twice (first at line {first}): "
                                   "give each anchor its own name", event.start_mark)
            node = super().compose_node(parent, index)
            if node is not None and id(node) not in self._extent:
                self._extent[id(node)] = self._measure(node)
            return node
        finally:
            self._depth -= 1

    def _check_alias(self, event: yaml.AliasEvent) -> None:
        target = self.anchors.get(event.anchor)
        name = shortened(str(event.anchor))
        if target is None:
            raise self._refuse(f"not valid YAML: the alias *{name} refers to no anchor before it", event.start_mark)
        extent = self._extent.get(id(target))
        if extent is None:  # anchored, but not finished: the alias is inside what it names
            raise self._refuse(f"the alias *{name} is inside the value it names", event.start_mark)
        size, height = extent
        if self._depth + height > _MAX_DEPTH:
            raise self._refuse(f"nested more than {_MAX_DEPTH} levels deep through the alias *{name}",
                               event.start_mark)
        self._aliased += size
        if self._aliased > _MAX_ALIASED:
            raise self._refuse(f"aliases expand to more than {_MAX_ALIASED} values (up to *{name} here)",
                               event.start_mark)

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return 1, 0
        extents = [self._extent.get(id(child), (1, 0)) for child in children]
        return 1 + sum(s for s, _ in extents), 1 + max((h for _, h in extents), default=0)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # past Python's limit on digits in an int (4300)
            raise self._refuse("a number with far too many digits", node.start_mark) from None

    def construct_undefined(self, node: yaml.Node) -> Any:
        tag = str(node.tag)
        shown = "!!" + tag.removeprefix(_CORE_TAG) if tag.startswith(_CORE_TAG) else tag
        raise self._refuse(f"the tag {_q(shown)} is not one lasthop reads: write the value without it",
                           node.start_mark)


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(node.start_mark.line + 1)
    yield data
    # Duplicates are looked for before merging: a key that overrides one merged in with
    # `<<: *anchor` is the point of a merge, not a mistake.
    first: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = _key(loader, key_node)
        line = key_node.start_mark.line + 1
        if key in first:
            data.duplicates.append((key, line, first[key]))
        else:
            first[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = _key(loader, key_node)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1


def _key(loader: LineLoader, node: yaml.Node) -> str:
    """A key as written. Every key of an inventory is a name, so `1`, `null`, `on` or `2026-12-03` is the
    text written, never the number, None, True or date YAML 1.1 reads it as (and a message shows it so)."""
    if isinstance(node, yaml.ScalarNode):
        if not str(node.tag).startswith(_CORE_TAG):
            loader.construct_object(node)  # a tag of its own: refused, as for a value
        return str(node.value)
    kind = "mapping" if isinstance(node, yaml.MappingNode) else "list"
    raise loader._refuse(f"a {kind} cannot be a key: a key is a name", node.start_mark)


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode) -> Iterator[LineSeq]:
    data = LineSeq(node.start_mark.line + 1)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(item.start_mark.line + 1)


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
LineLoader.add_constructor("tag:yaml.org,2002:int", LineLoader.construct_yaml_int)
LineLoader.add_constructor(None, LineLoader.construct_undefined)


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
            yield from _walk_duplicates(value, (*loc, key))
    elif isinstance(node, LineSeq):
        for i, item in enumerate(node):
            yield from _walk_duplicates(item, (*loc, i))


# What pyyaml's messages quote (with %r): in single quotes, or in double quotes when it holds one.
_QUOTED = re.compile(r"'[^']*'" + r'|"(?:[^"\\]|\\.)*"')


def _read_document(path: Path) -> LineMap:
    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError([ConfigIssue("", line, message)], path)

    shown = shortened(str(path), _PATH_LIMIT)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{shown} does not exist (pass the file's path or set {PATH_ENV})") from None
    except IsADirectoryError:
        raise fail(f"{shown} is a directory, not a config file") from None
    except PermissionError:
        raise fail(f"{shown} cannot be read: permission denied") from None
    except OSError as e:
        raise fail(f"{shown} cannot be read: {e.strerror or type(e).__name__}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail("not UTF-8 text", raw[: e.start].count(b"\n") + 1) from None
    try:
        data = yaml.load(text, Loader=LineLoader)
    except _Refused as e:
        raise fail(e.problem or "not usable YAML", e.problem_mark.line + 1 if e.problem_mark else None) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "unreadable"
        if e.context and problem.startswith("but "):
            problem = f"{e.context}, {problem}"
        hint = " (indent with spaces, not tabs)" if "\\t" in problem else ""
        # Only pyyaml's short problem text: its snippet of the line could hold anything, and even
        # the problem quotes what it found (a tag handle, a character) whole.
        problem = _QUOTED.sub(lambda m: m[0][0] + shortened(m[0][1:-1]) + m[0][0], problem)
        raise fail(f"not valid YAML: {shortened(problem, 200)}{hint}", mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as e:
        # A control character: pyyaml gives its offset, not its line.
        char = chr(e.character) if isinstance(e.character, int) else str(e.character)
        raise fail(f"not usable text: the control character {char!r} is not allowed in YAML",
                   text[: e.position].count("\n") + 1) from None
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


# -- what only the file has -------------------------------------------------------------------------
# The inventory's own models (bot.inventory) check each entry. These few shapes exist because the
# file says things the inventory does not hold as such: login settings that inherit from
# `defaults` and name secrets, and command names checked against each other.

class DefaultsModel(FrozenModel):
    port: Port | None = None
    username: Username | None = None
    key_file: FilePath | None = None
    known_hosts: FilePath | None = None
    connect_timeout: Duration | None = None
    command_timeout: Duration | None = None


class _SshModel(DefaultsModel):
    password: SecretRef | None = None
    password_file: FilePath | None = None


class RouterSshModel(_SshModel):
    address: ManagementAddress


class HostSshModel(_SshModel):
    address: ManagementAddress | None = None


# A router entry is one flat mapping: these keys log in, `lan` is the router's, the rest is its driver's.
_ROUTER_SSH_KEYS = frozenset(RouterSshModel.model_fields)
# Stands in for the login of an entry whose login settings are broken, so its other keys are still checked.
_NO_SPEC = DeviceSpec(name="", address="", username="", known_hosts=Path())


class _ServiceRefs(BaseModel):
    """Just the references of a service, to check them when the rest of it is broken."""

    model_config = ConfigDict(extra="ignore", strict=True)
    router: StrictStr
    hosts: list[StrictStr]


class _RouterRefs(BaseModel):
    """Just the LANs of a router, to check services' next hops when the rest of it is broken."""

    model_config = ConfigDict(extra="ignore", strict=True)
    # Empty, it is reported once (bot.inventory.Router); it must not also put every next hop outside.
    lan: Annotated[ListOf[Prefix], MinLen(1)]


class CommandsModel(FrozenModel):
    umbrella: CommandName | None = None
    failover: CommandName | None = None
    status: CommandName | None = None


class TopModel(FrozenModel):
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
    "tuple_type": "must be a list",
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


def _translate(err: ErrorDetails, model: type[BaseModel]) -> tuple[Loc, Loc, str] | None:
    """(path to report, path whose line to report, message) for one pydantic error; None: nothing to add."""
    loc: Loc = tuple(seg for seg in err["loc"] if seg != "[key]")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "lasthop":
        message = str(ctx.get("message", "is not valid"))
        if not message:
            return None  # follows from an error already reported on another key
        for seg in ctx.get("at", ()):
            loc = loc[:-1] if seg == ".." else (*loc, seg)
        return loc, loc, message
    if kind == "missing":
        return loc[:-1], loc[:-1], f"missing required key {_q(loc[-1])}"
    if kind == "invalid_key":
        return loc[:-1], loc, f"unknown key {_q(loc[-1])}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        return loc[:-1], loc, f"unknown key {_q(key)}{_did_you_mean(key, _keys_at(model, loc[:-1]))}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        if kind == "union_tag_not_found":
            return loc, loc, f"missing required key {_q(key)}"
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        given = ctx.get("tag")
        hint = _did_you_mean(given, tags) if isinstance(given, str) else ""
        return (*loc, key), (*loc, key), f"must be one of {', '.join(tags)}{hint}"
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
_S = TypeVar("_S", Policy, Probe, SlackSettings)


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
        self.lans: dict[str, tuple[IPv4Network, ...]] = {}

    # -- reporting --
    def error(self, loc: Loc, message: str, *, line_loc: Loc | None = None, line: int | None = None) -> None:
        where = line if line is not None else _line_at(self.doc, loc if line_loc is None else line_loc)
        issue = ConfigIssue(_format_loc(loc), where, message)
        if issue not in self.errors:
            self.errors.append(issue)

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(ConfigIssue(_format_loc(loc), _line_at(self.doc, loc), message))

    def validate(self, model: type[_M], raw: object, loc: Loc, *, flatten: str | None = None,
                 keys: Sequence[str] = ()) -> _M | None:
        """`model` from `raw`, or None with every problem reported at `loc`.

        `flatten` names a field that the file writes inline (a router's driver options): its errors
        are reported as keys of the entry itself, without pydantic's union tag, and an unknown key
        there is compared with `keys`, the keys the entry may hold.
        """
        try:
            return model.model_validate(raw)
        except ValidationError as e:
            for err in e.errors(include_url=False):
                if flatten is not None and err["loc"][:1] == (flatten,):
                    rest = err["loc"][1:]
                    err = {**err, "loc": rest[1:] if rest[:1] and rest[0] in router_kinds() else rest}
                    if err["type"] == "extra_forbidden":
                        key = str(err["loc"][-1])
                        self.error(loc, f"unknown key {_q(key)}{_did_you_mean(key, keys)}", line_loc=(*loc, key))
                        continue
                found = _translate(err, model)
                if found is not None:
                    path, line_loc, message = found
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

        policy = self.section(Policy, "policy")
        probe = self.section(Probe, "probe")
        slack = self.slack()

        state_url, state_url_redacted = self.state_url()

        # None: the section itself is broken (already reported), so no name can be called unknown.
        router_names = self.names("routers")
        host_names = self.names("hosts")

        routers: dict[str, Router] = {}
        for name, raw in self.entries("routers"):
            if (router := self.router(name, raw, defaults, defaults_ok)) is not None:
                routers[name] = router

        hosts: dict[str, Host] = {}
        for name, raw in self.entries("hosts"):
            if (host := self.host(name, raw, defaults, defaults_ok)) is not None:
                hosts[name] = host

        services: dict[str, Service] = {}
        for name, raw in self.entries("services"):
            service = self.service(name, raw, router_names, host_names, hosts)
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

    def section(self, model: type[_S], key: str) -> _S:
        """A top-level section that is one inventory model; its defaults when absent or broken (reported)."""
        raw = self.doc.get(key)
        found = self.validate(model, {} if raw is None else raw, (key,))
        return found if found is not None else model()

    def slack(self) -> SlackSettings:
        raw = self.doc.get("slack")
        if not isinstance(raw, dict):
            return self.section(SlackSettings, "slack")
        raw_commands = raw.get("commands")
        commands = self.validate(CommandsModel, {} if raw_commands is None else raw_commands, ("slack", "commands"))
        names = self.command_names(commands) if commands is not None else CommandNames()
        found = self.validate(SlackSettings, {**raw, "commands": names}, ("slack",))
        return found if found is not None else SlackSettings()

    # -- secrets and files --
    def secret(self, ref: str, loc: Loc) -> str | None:
        match = ENV_REF.fullmatch(ref)
        if match is None:
            self.error(loc, PLAIN_SECRET)
            return None
        name = match.group(1)
        value = self.env.get(name)
        if value is None:
            self.error(loc, f"environment variable {shortened(name)} is not set")
            return None
        if value == "":
            self.error(loc, f"environment variable {shortened(name)} is empty")
            return None
        return value

    def file_path(self, text: str, loc: Loc) -> Path | None:
        """The file `text` names; None (reported) when its ~ names no home directory here."""
        try:
            path = Path(text).expanduser()
        except RuntimeError:
            if not self.check_files:  # written for another machine, where the user may exist
                return Path(text)
            user = text[1:].partition("/")[0]
            self.file_error(loc, f"{loc[-1]} {_shown_path(text)}: "
                                 + (f"no user {_q(user)} for ~" if user else "no home directory for ~"))
            return None
        # Relative paths are the config file's neighbours, wherever the bot was started from.
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
        shown = _shown_path(path)
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            self.file_error(loc, f"{what} {shown} does not exist")
            return
        except OSError as e:  # a name too long for the system, a loop of links, ...
            self.file_error(loc, f"{what} {shown} cannot be used: {e.strerror or type(e).__name__}")
            return
        if not stat.S_ISREG(mode):
            self.file_error(loc, f"{what} {shown} is not a file")
        elif not os.access(path, os.R_OK):
            self.file_error(loc, f"{what} {shown} cannot be read")

    def password_file(self, path: Path, loc: Loc) -> str | None:
        if not self.check_files:
            return None
        shown = _shown_path(path)
        try:
            # Never opened unless it is a plain file: a FIFO would block the loader, /dev/zero never end.
            if not stat.S_ISREG(path.stat().st_mode):
                self.file_error(loc, f"password_file {shown} is not a file")
                return None
            with path.open("rb") as f:
                raw = f.read(_PASSWORD_FILE_LIMIT + 1)
            if len(raw) > _PASSWORD_FILE_LIMIT:
                self.file_error(loc, f"password_file {shown} is larger than {_PASSWORD_FILE_LIMIT} bytes: "
                                     "it should hold the password alone")
                return None
            text = raw.decode("utf-8")
        except FileNotFoundError:
            self.file_error(loc, f"password_file {shown} does not exist")
            return None
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else "not readable text"
            self.file_error(loc, f"password_file {shown} cannot be read: {reason}")
            return None
        secret = text.rstrip("\r\n")
        if not secret:
            self.file_error(loc, f"password_file {shown} is empty")
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
        if (colon and not ENV_REF.fullmatch(password)) or (
            query_password and not ENV_REF.fullmatch(query_password.group(1))
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
            self.error(loc, f"environment variable {shortened(name)} is not set")
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

        return ENV_REF.sub(value, text)

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
            password_loc = (*block_loc, "password_file")
            password_path = self.file_path(password_file, password_loc)
            password = self.password_file(password_path, password_loc) if password_path is not None else None
        key_path = self.file_path(key_file, key_file_loc) if key_file is not None else None
        if key_path is not None:
            self.check_file(key_path, key_file_loc, "key_file")
        known_hosts_path = self.file_path(known_hosts, known_hosts_loc) if known_hosts is not None else None
        if known_hosts_path is not None:
            self.check_file(known_hosts_path, known_hosts_loc, "known_hosts")

        port, _ = pick("port")
        connect_timeout, _ = pick("connect_timeout")
        command_timeout, _ = pick("command_timeout")
        return DeviceSpec(
            name=name,
            address=address,
            username=username or "",
            known_hosts=known_hosts_path if known_hosts_path is not None else Path(),
            port=port if port is not None else 22,
            key_file=key_path,
            password=password,
            connect_timeout=connect_timeout if connect_timeout is not None else 5.0,
            command_timeout=command_timeout if command_timeout is not None else 10.0,
        )

    def router(self, name: str, raw: object, defaults: DefaultsModel, defaults_ok: bool) -> Router | None:
        loc: Loc = ("routers", name)
        if not isinstance(raw, dict):
            return self.validate(Router, raw, loc)  # says it must be a mapping
        login = {k: v for k, v in raw.items() if k in _ROUTER_SSH_KEYS}
        own = {k: v for k, v in raw.items() if k not in _ROUTER_SSH_KEYS}
        lan = {"lan": own.pop("lan")} if "lan" in own else {}
        ssh = self.validate(RouterSshModel, login, loc)
        spec = self.device(name, ssh, loc, ssh.address, defaults, defaults_ok) if ssh is not None else _NO_SPEC
        # What a router may be told is its driver's to say (bot/drivers): nothing here knows a kind.
        kind = own.get("driver")
        kinds = [kind] if kind in router_kinds() else router_kinds()
        keys = [*_ROUTER_SSH_KEYS, "lan", *(k for d in kinds for k in driver_class(d).options.model_fields)]
        router = self.validate(Router, {"name": name, "ssh": spec, **lan, "options": own}, loc,
                               flatten="options", keys=keys)
        # Whatever else is wrong with it, its LANs still tell which next hops its services may use.
        if (refs := _quietly(_RouterRefs, lan)) is not None:
            self.lans[name] = refs.lan
        return router if ssh is not None else None

    def host(self, name: str, raw: object, defaults: DefaultsModel, defaults_ok: bool) -> Host | None:
        loc: Loc = ("hosts", name)
        host = self.validate(Host, self.named(raw, name, loc, ssh=_NO_SPEC), loc)
        raw_ssh = raw.get("ssh") if isinstance(raw, dict) else None
        block_loc = (*loc, "ssh") if raw_ssh is not None else loc
        ssh = self.validate(HostSshModel, raw_ssh, block_loc) if raw_ssh is not None else None
        if host is None or (raw_ssh is not None and ssh is None):
            return None
        address = ssh.address if ssh is not None and ssh.address is not None else str(host.address)
        return host.model_copy(update={"ssh": self.device(name, ssh, block_loc, address, defaults, defaults_ok)})

    def named(self, raw: object, name: str, loc: Loc, **built: object) -> object:
        """An entry's mapping with its name (the key above it) and what the builder made of it added."""
        if not isinstance(raw, dict):
            return raw
        if "name" in raw:
            self.error((*loc, "name"), "unknown key 'name': an entry's name is the key above it")
        return {**raw, "name": name, **built}

    def service(
        self, name: str, raw: object, router_names: list[str] | None, host_names: list[str] | None,
        hosts: Mapping[str, Host],
    ) -> Service | None:
        loc: Loc = ("services", name)
        service = self.validate(Service, self.named(raw, name, loc), loc)
        # A service with a bad prefix still names a router and hosts worth checking now
        # rather than after the next edit; the shape errors are already reported.
        refs = service if service is not None else _quietly(_ServiceRefs, raw)
        if refs is not None:
            self.references(loc, refs.router, refs.hosts, router_names, host_names, self.lans, hosts)
        return service

    def references(
        self, loc: Loc, router_name: str, host_list: Sequence[str], router_names: list[str] | None,
        host_names: list[str] | None, lans: Mapping[str, tuple[IPv4Network, ...]], hosts: Mapping[str, Host],
    ) -> None:
        if router_names is not None and router_name not in router_names:
            self.error((*loc, "router"), f"unknown router {_q(router_name)}{_known(router_name, router_names)}")
        lan = lans.get(router_name)
        for i, host_name in enumerate(host_list):
            if host_names is not None and host_name not in host_names:
                self.error((*loc, "hosts", i), f"unknown host {_q(host_name)}{_known(host_name, host_names)}")
                continue
            if host_name in host_list[:i]:
                first = host_list.index(host_name)
                self.error((*loc, "hosts", i), f"{shortened(host_name)} is listed twice (also hosts[{first}])")
                continue
            host = hosts.get(host_name)
            if lan is not None and host is not None and not any(host.address in net for net in lan):
                self.error(
                    (*loc, "hosts", i),
                    f"next hop {host.address} of {host_name} is outside {router_name}'s lan "
                    f"{', '.join(map(str, lan))}: the router cannot reach it",
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


def _shown_path(path: Path | str) -> str:
    return shortened(str(path), _PATH_LIMIT)


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
