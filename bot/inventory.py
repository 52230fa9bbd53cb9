"""The typed inventory: routers, hosts, services and policy, as the rest of lasthop sees them.

These pydantic models are both the checks of the file's entries (`bot.config` reports their
errors with lines) and the types the rest of lasthop reads: one layer, each default written
once. They are frozen, so no handler can change what the bot believes the network looks like. Addresses are
`ipaddress` objects, never strings, because they end up in router commands.
`resolve()` is the one place where text a user typed becomes an inventory name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import MinLen
from pydantic import ConfigDict, Field, StrictStr, ValidationInfo, field_validator, model_validator

from bot.commands import CommandNames
from bot.drivers import router_options
from bot.drivers.base import DeviceSpec
from bot.drivers.options import DriverOptions
from bot.durations import format_duration
from bot.echo import one_line, quoted
from bot.values import (
    Count,
    Delay,
    Duration,
    Fraction,
    FrozenModel,
    HostHeader,
    HttpPath,
    Ipv4,
    ListOf,
    Name,
    Port,
    Prefix,
    SlackId,
    Tag,
    fail,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    RouterOptions = DriverOptions
else:
    # Every driver's options model, told apart by `driver`: found at run time, so typed as the base.
    RouterOptions = router_options()


@dataclass(frozen=True)
class ConfigIssue:
    """One problem (or warning) in the config file: where, and what, for the person who wrote it.

    Lives here rather than in bot.config because an Inventory carries its warnings.
    """

    path: str
    line: int | None
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        path = f" {self.path}:" if self.path else ""
        return one_line(f"{where}:{path} {self.message}")

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        path = f"{self.path}: " if self.path else ""
        return one_line(f"{where}{path}{self.message}")


class Router(FrozenModel):
    """A last-hop router: how to log in, the LANs its next hops live in, and its driver's own options."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: Name
    ssh: DeviceSpec  # built by bot.config: it inherits defaults and reads secrets, which no model can
    lan: ListOf[Prefix]
    options: RouterOptions

    @field_validator("lan")
    @classmethod
    def _each_lan_once(cls, lan: tuple[IPv4Network, ...]) -> tuple[IPv4Network, ...]:
        if not lan:  # no network holds any next hop: a router with nowhere to route to is a mistake
            raise fail("must not be empty: list the networks this router's next hops are in")
        for i, net in enumerate(lan):
            if net in lan[:i]:
                raise fail(f"{net} is listed twice", at=(i,))
        return lan

    @property
    def driver(self) -> str:
        """A kind bot.drivers.registry() knows: the options union only admits those."""
        return self.options.driver

    @property
    def save_config(self) -> bool:
        return self.options.saves

    @property
    def revert_seconds(self) -> int | None:
        """The device reverts a change by itself unless confirmed within this; None: it has no such timer."""
        return self.options.revert_seconds

    def reaches(self, address: IPv4Address) -> bool:
        """Whether `address` can be a next hop of this router (it lies in one of its LANs)."""
        return any(address in net for net in self.lan)


class Host(FrozenModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: Name
    # The Ethernet address static routes point at; management goes to ssh.address.
    address: Ipv4
    ssh: DeviceSpec  # built by bot.config, as for a router
    tags: ListOf[Tag] = ()


class CheckSpec(FrozenModel):
    kind: Literal["http", "https", "tcp"] = "http"
    port: Port = 80  # unset, it follows the kind: 443 for https
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

    @model_validator(mode="before")
    @classmethod
    def _port_follows_the_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "port" not in data and data.get("kind") == "https":
            return {**data, "port": 443}
        return data

    @field_validator("timeout")
    @classmethod
    def _timeout_below_interval(cls, timeout: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and timeout >= interval:
            raise fail(f"timeout {format_duration(timeout)} must be shorter than interval "
                       f"{format_duration(interval)}")
        return timeout

    @field_validator("fast_interval")
    @classmethod
    def _fast_interval_within_interval(cls, fast: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and fast > interval:
            raise fail(f"fast_interval {format_duration(fast)} must not be longer than interval "
                       f"{format_duration(interval)}")
        return fast


class Service(FrozenModel):
    name: Name
    prefix: Prefix
    router: StrictStr  # a router's name: bot.config checks the reference
    # In order of preference; the first healthy one is where failover goes.
    hosts: Annotated[ListOf[StrictStr], MinLen(1)]
    # Unset only for a /32, which is its own VIP.
    vips: Annotated[ListOf[Ipv4], MinLen(1)] = Field(default=None, validate_default=True)
    check: CheckSpec = CheckSpec()
    auto_failover: bool = False

    @field_validator("vips", mode="before")
    @classmethod
    def _a_host_route_is_its_own_vip(cls, vips: Any, info: ValidationInfo) -> Any:
        if vips is not None:
            return vips
        prefix = info.data.get("prefix")
        if prefix is None:
            raise fail("")  # the prefix is wrong, and said so; nothing to add about its VIPs
        if prefix.prefixlen != 32:
            raise fail("missing required key 'vips' (only a /32 prefix may leave it out)", at=("..",))
        return (prefix.network_address,)

    @field_validator("vips")
    @classmethod
    def _vips_inside_the_prefix(cls, vips: tuple[IPv4Address, ...], info: ValidationInfo) -> tuple[IPv4Address, ...]:
        prefix = info.data.get("prefix")
        for i, vip in enumerate(vips):
            if prefix is not None and vip not in prefix:
                raise fail(f"{vip} is outside the prefix {prefix}", at=(i,))
            if vip in vips[:i]:
                raise fail(f"{vip} is listed twice", at=(i,))
        return vips


class RiskRules(FrozenModel):
    """Which conditions make a plan risky (a risky plan needs an approval)."""

    target_health_unknown: bool = True
    moves_from_healthy_host: bool = True
    multiple_prefixes: bool = True
    one_host_serves_all: bool = True
    drift: bool = True


class AutoFailover(FrozenModel):
    enabled: bool = False
    max_moves: Count = 3
    window: Duration = 3600.0
    failback: bool = False
    hold_down: Delay = 600.0
    # Above this share of hosts down at once, assume the checker is cut off, not the hosts.
    partition_threshold: Fraction = 0.5


class Flapping(FrozenModel):
    """A host whose health changes `changes` times within `window` is flapping: alerts and moves wait."""

    # Fewer than two changes in a window is one failure and its recovery, never flapping.
    changes: Annotated[int, Field(ge=2, le=1000)] = 4
    window: Duration = 300.0


class Policy(FrozenModel):
    risky: RiskRules = RiskRules()
    approval_timeout: Duration = 900.0
    two_person_rule: bool = True
    save_after_change: bool = True
    verify_timeout: Duration = 10.0
    auto_failover: AutoFailover = AutoFailover()
    flapping: Flapping = Flapping()


class Probe(FrozenModel):
    """How lasthop itself reaches hosts and VIPs for checks: the address it sends from."""

    # Bound as the source of every check and VIP probe (a NOC host with several interfaces).
    source: Ipv4 | None = None
    # After a move, request each VIP through the router, as a client would.
    verify_vips: bool = False


class Roles(FrozenModel):
    """Slack IDs per role. Empty lists grant nothing: access is denied by default."""

    viewers: ListOf[SlackId] = ()
    operators: ListOf[SlackId] = ()
    approvers: ListOf[SlackId] = ()


class SlackSettings(FrozenModel):
    """Who may do what from chat, where, and under which slash commands."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    alert_channel: SlackId | None = None
    channels: ListOf[SlackId] = ()  # where commands are accepted; ("*",) anywhere
    roles: Roles = Roles()
    # Built by bot.config, which checks that no two commands share a name.
    commands: CommandNames = CommandNames()

    @property
    def viewers(self) -> tuple[str, ...]:
        return self.roles.viewers

    @property
    def operators(self) -> tuple[str, ...]:
        return self.roles.operators

    @property
    def approvers(self) -> tuple[str, ...]:
        return self.roles.approvers


DEFAULT_STATE_URL = "sqlite:///state/lasthop.db"


@dataclass(frozen=True)
class Inventory:
    routers: dict[str, Router]
    hosts: dict[str, Host]
    services: dict[str, Service]
    policy: Policy = field(default_factory=Policy)
    probe: Probe = field(default_factory=Probe)
    slack: SlackSettings = field(default_factory=SlackSettings)
    # repr=False: the resolved URL may carry a database password; the redacted one is for display.
    state_url: str = field(default=DEFAULT_STATE_URL, repr=False)
    state_url_redacted: str = DEFAULT_STATE_URL
    warnings: list[ConfigIssue] = field(default_factory=list)
    source: Path = Path("config/lasthop.yaml")
    # Problems with key_file, known_hosts or password_file, when loaded with defer_files: they stop only
    # the commands that log in to devices (see bot.cli), not history or check-config without --connect.
    file_issues: list[ConfigIssue] = field(default_factory=list)

    # -- lookups -----------------------------------------------------------------
    def service_for_prefix(self, prefix: IPv4Network | str) -> Service | None:
        """The service routed as exactly `prefix` (a string must be a valid network), else None."""
        if isinstance(prefix, str):
            try:
                prefix = IPv4Network(prefix.strip(), strict=True)
            except ValueError:
                return None
        for service in self.services.values():
            if service.prefix == prefix:
                return service
        return None

    def service_containing(self, address: IPv4Address) -> Service | None:
        """The service whose prefix holds `address` (prefixes never overlap, so at most one)."""
        for service in self.services.values():
            if address in service.prefix:
                return service
        return None

    def host_by_address(self, addr: IPv4Address | str) -> Host | None:
        """The host whose Ethernet address (the next hop of its routes) is `addr`, else None."""
        if isinstance(addr, str):
            try:
                addr = IPv4Address(addr.strip())
            except ValueError:
                return None
        for host in self.hosts.values():
            if host.address == addr:
                return host
        return None

    def services_on(self, router: str) -> list[Service]:
        return [s for s in self.services.values() if s.router == router]

    def resolve(self, name_or_prefix: str) -> tuple[Literal["service", "host"], str]:
        """Turn what a user typed into ("service" | "host", the inventory's own name).

        Accepts a service or host name (any case), a service prefix (`198.51.100.32/27`),
        an address inside a service prefix (a VIP), or a host's Ethernet address. The
        name returned is always the inventory's key, never the user's string, so what
        flows on from here is a value the config file vouched for.
        """
        text = name_or_prefix.strip() if isinstance(name_or_prefix, str) else ""
        key = text.lower()
        for name in self.services:
            if name == key:
                return "service", name
        for name in self.hosts:
            if name == key:
                return "host", name
        if "/" in text:
            return self._resolve_prefix(text)
        try:
            addr = ip_address(text)
        except ValueError:
            return self._unknown_name(text)
        if not isinstance(addr, IPv4Address):
            raise LookupError(f"{_echo(text)} is an IPv6 address: lasthop routes IPv4 only")
        host = self.host_by_address(addr)
        if host is not None:
            return "host", host.name
        service = self.service_containing(addr)
        if service is not None:
            return "service", service.name
        raise LookupError(f"{addr} is not in any service prefix and is no host's address")

    def _resolve_prefix(self, text: str) -> tuple[Literal["service", "host"], str]:
        try:
            net = ip_network(text, strict=False)
        except ValueError:
            raise LookupError(f"{_echo(text)} is not a prefix (write it like 198.51.100.32/27)") from None
        if not isinstance(net, IPv4Network):
            raise LookupError(f"{_echo(text)} is an IPv6 prefix: lasthop routes IPv4 only")
        service = self.service_for_prefix(net)
        if service is not None:
            return "service", service.name
        near = [s for s in self.services.values() if s.prefix.overlaps(net)]
        if near:
            hint = ", ".join(f"{s.prefix} ({s.name})" for s in near[:3])
            raise LookupError(f"{net} is not a service prefix; did you mean {hint}?")
        raise LookupError(f"{net} is not a service prefix")

    def _unknown_name(self, text: str) -> tuple[Literal["service", "host"], str]:
        names = [*self.services, *self.hosts]
        # Best first; equally close names in file order (difflib alone breaks ties backwards).
        ratio = {n: difflib.SequenceMatcher(None, text.lower(), n).ratio() for n in names}
        close = sorted((n for n in names if ratio[n] >= 0.6), key=lambda n: -ratio[n])[:3]
        if close:
            raise LookupError(f"no service or host {_named(text)}; did you mean {', '.join(close)}?")
        raise LookupError(
            f"no service or host {_named(text)} (services: {_listing(self.services)}; "
            f"hosts: {_listing(self.hosts)})"
        )

    # -- display -----------------------------------------------------------------
    def describe(self) -> str:
        """A short summary for a config check and the startup log; it never contains a secret."""
        counts = ", ".join(
            _count(len(items), what)
            for items, what in ((self.routers, "router"), (self.hosts, "host"), (self.services, "service"))
        )
        lines = [f"inventory {self.source}: {counts}; state {self.state_url_redacted}"]
        for r in self.routers.values():
            extras = [f"lan {', '.join(map(str, r.lan))}"]
            if r.save_config:
                extras.append("saves config")
            if r.revert_seconds is not None:
                extras.append(f"revert timer {format_duration(r.revert_seconds)}")
            lines.append(f"  router {r.name}: {r.driver} at {_ssh_target(r.ssh)}; {'; '.join(extras)}")
        for h in self.hosts.values():
            tags = f"; tags {', '.join(h.tags)}" if h.tags else ""
            lines.append(f"  host {h.name}: next hop {h.address}, ssh {_ssh_target(h.ssh)}{tags}")
        for s in self.services.values():
            c = s.check
            target = f"{c.kind}:{c.port}{c.path if c.kind != 'tcp' else ''}"
            check = f"{target} every {format_duration(c.interval)}"
            auto = ", auto failover" if s.auto_failover else ""
            lines.append(
                f"  service {s.name}: {s.prefix} on {s.router}, hosts {' > '.join(s.hosts)}, "
                f"vips {', '.join(map(str, s.vips))}; check {check}{auto}"
            )
        p = self.policy
        risky = [name for name, on in p.risky.model_dump().items() if on]
        auto_desc = (
            f"on, at most {p.auto_failover.max_moves} moves per {format_duration(p.auto_failover.window)}"
            if p.auto_failover.enabled else "off"
        )
        lines.append(
            f"  policy: approval within {format_duration(p.approval_timeout)}"
            f"{', two people' if p.two_person_rule else ''}; risky: {', '.join(risky) or 'nothing'}; "
            f"auto failover {auto_desc}; flapping at {p.flapping.changes} changes in "
            f"{format_duration(p.flapping.window)}"
        )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _ssh_target(spec: DeviceSpec) -> str:
    # Says which kinds of credential are set, never anything about their value.
    auth = [kind for kind, there in (("key", spec.key_file), ("password", spec.password)) if there]
    return f"{spec.username}@{spec.address}:{spec.port} ({' + '.join(auth) or 'no credentials'})"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _listing(names: Mapping[str, object]) -> str:
    shown = list(names)[:8]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return (", ".join(shown) or "none") + more


def _echo(text: str) -> str:
    return quoted(text, "that")  # chat text can hold mentions, markup or control characters (bot.echo)


def _named(text: str) -> str:
    shown = quoted(text, "")
    return f"named {shown}" if shown else "by that name"
