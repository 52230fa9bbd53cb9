"""What a web host really has on its loopback, read over SSH.

A VIP's presence is never judged by requesting it from the host itself: a host
that lost its VIP forwards the request to the active server and gets an answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bot.drivers.base import DeviceSpec, Transcript
from bot.drivers.errors import CommandRejected, DriverError, ParseError
from bot.drivers.parsers.host import (
    LoopbackAddress,
    parse_ifconfig,
    parse_ip_addr_json,
    parse_ip_o_addr,
    parse_route_get_json,
    parse_sysctl,
)
from bot.drivers.ssh import ExecSession

ARP_SYSCTLS = (
    "net.ipv4.conf.all.arp_ignore",
    "net.ipv4.conf.all.arp_announce",
)
MAX_LABEL = 9999


@dataclass(frozen=True)
class LoopbackReport:
    host: str
    addresses: tuple[LoopbackAddress, ...]
    source: str

    def has(self, vip: IPv4Address) -> bool:
        return any(a.address == vip for a in self.addresses)


@dataclass(frozen=True)
class VipCheck:
    host: str
    present: tuple[IPv4Address, ...]
    missing: tuple[IPv4Address, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.missing


class HostVerifier:
    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        # One shell per connection: each exec channel would cost a channel open and a session on
        # the host's sshd, many times what the reads themselves take.
        self.ssh = ExecSession(spec, shell=True)
        self._batch = True  # until the host shows it cannot answer the VIP check in one exchange

    @property
    def name(self) -> str:
        return self.spec.name

    def _run(self, command: str, transcript: Transcript | None = None, *, retry: bool = True) -> tuple[int, str]:
        res = self.ssh.run(command, retry=retry)
        if transcript is not None:
            transcript.add(command, (res.stdout + res.stderr).strip(), res.seconds)
        return res.exit_status, res.stdout if res.exit_status == 0 else res.stderr

    def loopback(self) -> LoopbackReport:
        """Addresses on lo and its aliases, from the newest tool the host has."""
        status, out = self._run("ip -j -4 addr show dev lo")
        if status == 0:
            try:
                return LoopbackReport(self.name, tuple(parse_ip_addr_json(self.name, out)), "ip -j addr")
            except ParseError:
                pass  # an iproute2 too old for -j prints text or an error; try the next form
        status, out = self._run("ip -o -4 addr show dev lo")
        if status == 0:
            return LoopbackReport(self.name, tuple(parse_ip_o_addr(self.name, out)), "ip -o addr")
        status, out = self._run("/sbin/ifconfig -a")
        if status == 0:
            return LoopbackReport(self.name, tuple(parse_ifconfig(self.name, out)), "ifconfig")
        raise DriverError(self.name, "cannot list loopback addresses: neither ip nor ifconfig worked")

    def is_local(self, vip: IPv4Address) -> bool:
        """The kernel's own answer: would a packet to `vip` be delivered on this host?"""
        if not isinstance(vip, IPv4Address):
            raise TypeError("is_local takes an IPv4Address")
        status, out = self._run(f"ip -j route get {vip}")
        if status != 0:
            raise CommandRejected(self.name, f"ip -j route get {vip}", out)
        got = parse_route_get_json(self.name, out)
        return got.is_local

    def arp_warnings(self) -> list[str]:
        """Loopback-VIP hygiene: advisory only, since in the routed design ARP is not used for VIPs."""
        status, out = self._run("sysctl " + " ".join(ARP_SYSCTLS))
        if status != 0:
            return ["could not read the ARP sysctls"]
        values = parse_sysctl(self.name, out)
        warnings = []
        if values.get("net.ipv4.conf.all.arp_ignore", "0") == "0":
            warnings.append("arp_ignore is 0: the host answers ARP for its loopback VIPs on eth0")
        if values.get("net.ipv4.conf.all.arp_announce", "0") in ("0", "1"):
            warnings.append("arp_announce is below 2: ARP requests may carry a VIP as source")
        return warnings

    def check_vips(self, vips: Iterable[IPv4Address], *, arp: bool = True) -> VipCheck:
        """Every VIP must be bound to lo and be local to the kernel; anything else is missing."""
        wanted = list(vips)
        if any(not isinstance(v, IPv4Address) for v in wanted):
            raise TypeError("check_vips takes IPv4Addresses")
        tried = self._batch and bool(wanted)
        found = self._check_in_one_exchange(wanted) if tried else None
        if found is None:
            report = self.loopback()
            found = {vip: report.has(vip) and self.is_local(vip) for vip in wanted}
            if tried:
                # The reads one by one worked where the one exchange did not (no `ip -j`, a shell
                # that takes one command): this host is asked one by one from now on.
                self._batch = False
        present = tuple(v for v in wanted if found[v])
        missing = tuple(v for v in wanted if not found[v])
        warnings = tuple(self.arp_warnings()) if arp else ()
        return VipCheck(self.name, present, missing, warnings)

    def _check_in_one_exchange(self, vips: list[IPv4Address]) -> dict[IPv4Address, bool] | None:
        """The loopback and the kernel's route for each VIP in one command, still read live.

        Each exec channel costs a round trip and a shell start on the host (about 180 ms on the
        lab): the same reads one by one made a 30-service drain spend seconds in its pre-checks.
        The command is built from addresses only. Anything unexpected (no `ip -j`, a restricted
        shell, a failed command) falls back to the reads one by one, which say what went wrong;
        check_vips then stops asking a host this way once the reads one by one worked.
        """
        command = " && ".join(["ip -j -4 addr show dev lo", *(f"ip -j route get {v}" for v in vips)])
        status, out = self._run(command)
        if status != 0:
            return None
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            if len(lines) != len(vips) + 1:
                raise ParseError(self.name, "one-exchange VIP check: not one line per command")
            bound = {a.address for a in parse_ip_addr_json(self.name, lines[0])}
            routes = [parse_route_get_json(self.name, line) for line in lines[1:]]
        except ParseError:
            return None
        return {vip: vip in bound and route.dst == vip and route.is_local
                for vip, route in zip(vips, routes, strict=True)}

    def bind_vip(self, vip: IPv4Address, label: int) -> Transcript:
        """Bind `vip`/32 to lo as lo:`label`; binding it again changes nothing."""
        if not isinstance(vip, IPv4Address) or not isinstance(label, int) or not 0 < label <= MAX_LABEL:
            raise TypeError("bind_vip takes an IPv4Address and a label number 1-9999")
        transcript = Transcript(self.name)
        command = f"ip addr replace {vip}/32 dev lo label lo:{label}"
        status, out = self._run(command, transcript)
        if status != 0:
            raise CommandRejected(self.name, command, out)
        return transcript

    def unbind_vip(self, vip: IPv4Address) -> Transcript:
        """Remove `vip` from lo; removing an absent VIP changes nothing."""
        if not isinstance(vip, IPv4Address):
            raise TypeError("unbind_vip takes an IPv4Address")
        transcript = Transcript(self.name)
        if self.loopback().has(vip):
            command = f"ip addr del {vip}/32 dev lo"
            status, out = self._run(command, transcript)
            if status != 0:
                raise CommandRejected(self.name, command, out)
        return transcript

    def close(self) -> None:
        self.ssh.close()
