"""The lasthop inventory for one lab, written beside its keys so `--config` can point at it.

config/lab.yaml is this file for the default lab (prefix lh, slot 0), checked in; a test
keeps the two in step.
"""

from __future__ import annotations

from pathlib import Path

from lab.plan import SERVER_LAN, LabPlan
from lab.sshd import login

# Preference order per service: the initial host first, then the others in turn.
_HOSTS = ("web1", "web2", "web3")
# Lively for a demo: a failure is seen in about interval + fall x fast_interval.
CHECK = "{kind: http, port: 80, interval: 2s, timeout: 1s, fall: 2, rise: 2, fast_interval: 500ms}"
AUTO_SERVICE = "www-a"
# A newcomer breaks and heals web1 several times in a few minutes; with production's
# flapping rule (the default) the second round would already be "web1 is flapping" and silence.
FLAPPING = [
    "  # Demo settings: 8 changes (4 break/heal rounds) within 1m before a host counts as flapping,",
    "  # so the story can be replayed. Production keeps the default, 4 changes in 5m: a host that",
    "  # keeps bouncing is left alone (no alerts, no moves) instead of paging on every bounce.",
    "  flapping: {changes: 8, window: 1m}",
]


def _preference(first: str) -> list[str]:
    i = _HOSTS.index(first)
    return [*_HOSTS[i:], *_HOSTS[:i]]


def inventory_yaml(plan: LabPlan, state_dir: Path, state_url: str | None = None) -> str:
    r1, r2 = plan.device("r1"), plan.device("r2")
    lines = [
        f"# lasthop inventory of lab {plan.prefix} (slot {plan.slot}), written by `lasthop lab up`.",
        f"state_url: {state_url or f'sqlite:///{state_dir}/lasthop.db'}",
        "probe:",
        f"  source: {plan.root_mgmt.ip}",
        "  verify_vips: true",
        "defaults:",
        "  username: root",
        f"  key_file: {state_dir}/id_ed25519",
        f"  known_hosts: {state_dir}/known_hosts",
        "routers:",
        # A non-root login in frrvty with vtysh as its shell, as a real FRR router is managed.
        f"  r1: {{driver: frr, address: {r1.address}, username: {login(r1)}, save_config: true, lan: [{SERVER_LAN}]}}",
        f"  r2: {{driver: linux, address: {r2.address}, save_config: false, lan: [{SERVER_LAN}]}}",
        "hosts:",
    ]
    for host in plan.hosts:
        mgmt = plan.device(host.name).address
        lines.append(f"  {host.name}: {{address: {host.address.ip}, ssh: {{address: {mgmt}}}}}")
    lines.append("services:")
    for s in plan.services:
        hosts = ", ".join(_preference(s.initial_host))
        auto = ", auto_failover: true" if s.name == AUTO_SERVICE else ""
        lines.append(f"  {s.name}: {{prefix: {s.prefix}, router: {s.router}, hosts: [{hosts}], vips: [{s.vip}]{auto},")
        lines.append(f"    check: {CHECK}}}")
    lines += ["policy:", "  auto_failover: {enabled: true, max_moves: 3, window: 1h, failback: false}", *FLAPPING]
    return "\n".join(lines) + "\n"
