"""The typed inventory: routers, hosts, services and policy, as the rest of lasthop sees them.

Everything here is built by `bot.config` from a validated file and is frozen, so
no handler can change what the bot believes the network looks like. Addresses are
`ipaddress` objects, never strings, because they end up in router commands.
`resolve()` is the one place where text a user typed becomes an inventory name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bot.commands import CommandNames
from bot.drivers.base import DeviceSpec
from bot.durations import format_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

CheckKind = Literal["http", "https", "tcp"]

# Only this much of what a user typed is ever echoed back, and only if it looks like a name or an
# address: chat text can hold mentions, markup or control characters.
_ECHO_SAFE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")


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


def one_line(text: str) -> str:
    """`text` with control characters escaped: a value from a file may hold a newline."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Router:
    name: str
    driver: str  # a kind bot.drivers.registry() knows; the config checked it
    ssh: DeviceSpec
    save_config: bool
    revert_seconds: int | None  # the device reverts a change by itself unless confirmed within this
    lan: tuple[IPv4Network, ...]

    def reaches(self, address: IPv4Address) -> bool:
        """Whether `address` can be a next hop of this router (it lies in one of its LANs)."""
        return any(address in net for net in self.lan)


@dataclass(frozen=True)
class Host:
    name: str
    # The Ethernet address static routes point at; management goes to ssh.address.
    address: IPv4Address
    ssh: DeviceSpec
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckSpec:
    kind: CheckKind = "http"
    port: int = 80
    path: str = "/"
    expect_status: int = 200
    body: str = ""
    host_header: str | None = None
    tls_verify: bool = True
    interval: float = 5.0
    timeout: float = 2.0
    fall: int = 3
    rise: int = 2
    fast_interval: float = 1.0


@dataclass(frozen=True)
class Service:
    name: str
    prefix: IPv4Network
    router: str
    # In order of preference; the first healthy one is where failover goes.
    hosts: tuple[str, ...]
    vips: tuple[IPv4Address, ...]
    check: CheckSpec = field(default_factory=CheckSpec)
    auto_failover: bool = False


@dataclass(frozen=True)
class RiskRules:
    """Which conditions make a plan risky (a risky plan needs an approval)."""

    target_health_unknown: bool = True
    moves_from_healthy_host: bool = True
    multiple_prefixes: bool = True
    one_host_serves_all: bool = True
    drift: bool = True


@dataclass(frozen=True)
class AutoFailover:
    enabled: bool = False
    max_moves: int = 3
    window: float = 3600.0
    failback: bool = False
    hold_down: float = 600.0
    # Above this share of hosts down at once, assume the checker is cut off, not the hosts.
    partition_threshold: float = 0.5


@dataclass(frozen=True)
class Flapping:
    """A host whose health changes `changes` times within `window` is flapping: alerts and moves wait."""

    changes: int = 4
    window: float = 300.0


@dataclass(frozen=True)
class Policy:
    risky: RiskRules = field(default_factory=RiskRules)
    approval_timeout: float = 900.0
    two_person_rule: bool = True
    save_after_change: bool = True
    verify_timeout: float = 10.0
    auto_failover: AutoFailover = field(default_factory=AutoFailover)
    flapping: Flapping = field(default_factory=Flapping)


@dataclass(frozen=True)
class Probe:
    """How lasthop itself reaches hosts and VIPs for checks: the address it sends from."""

    # Bound as the source of every check and VIP probe (a NOC host with several interfaces).
    source: IPv4Address | None = None
    # After a move, request each VIP through the router, as a client would.
    verify_vips: bool = False


@dataclass(frozen=True)
class SlackSettings:
    """Who may do what from chat. Empty role lists grant nothing: access is denied by default."""

    alert_channel: str | None = None
    channels: tuple[str, ...] = ()  # where commands are accepted; ("*",) anywhere
    viewers: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    commands: CommandNames = field(default_factory=CommandNames)  # the slash commands the Slack app installs


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
        risky = [name for name, on in vars(p.risky).items() if on]
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
    return repr(text) if _ECHO_SAFE.fullmatch(text) else "that"


def _named(text: str) -> str:
    return f"named {text!r}" if _ECHO_SAFE.fullmatch(text) else "by that name"
