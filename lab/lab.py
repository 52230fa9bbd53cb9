"""The lab as one object: bring it up, look at it, break and heal hosts, tear it down."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from lab import frr, netns, noc, packages, sshd, state, web
from lab.errors import LabError, NotRootError
from lab.netns import Interface
from lab.pids import namespace_pids, pidfile_process, pids_matching, terminate
from lab.plan import ALLOWED_RANGES, DEFAULT_ROUTE, Device, Host, LabPlan, Service
from lab.probe import ClientGetError, client_get
from lab.proc import DEFAULT_TIMEOUT, in_namespace, run
from lab.state import DEFAULT_STATE_ROOT, StatePaths
from lab.status import DeviceStatus, LabStatus, ServiceStatus
from lab.wait import wait_until

Report = Callable[[str], None]
_STATUS_GET_TIMEOUT = 1.5
_Snapshot = dict[str, dict[str, Interface]]


def _to_stderr(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr)


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError()


class Lab:
    """One lab: namespaces named `<prefix>-*`, mgmt net 198.18.<slot>.0/24."""

    def __init__(
        self,
        prefix: str = "lh",
        slot: int = 0,
        state_root: Path = DEFAULT_STATE_ROOT,
        *,
        report: Report = _to_stderr,
    ) -> None:
        self._plan = LabPlan(prefix, slot)
        self._paths = StatePaths(Path(state_root), prefix)
        self._report = report

    @property
    def plan(self) -> LabPlan:
        return self._plan

    @property
    def state_dir(self) -> Path:
        return self._paths.dir

    @property
    def key_file(self) -> Path:
        return self._paths.key_file

    @property
    def known_hosts(self) -> Path:
        return self._paths.known_hosts

    @property
    def lab_json(self) -> Path:
        return self._paths.lab_json

    @property
    def inventory(self) -> Path:
        return self._paths.inventory

    # --- up ----------------------------------------------------------------

    def up(self) -> list[str]:
        """Build the lab, or repair what is missing; returns what it did ([] if healthy)."""
        require_root()
        actions: list[str] = []
        if packages.ensure_installed(self._report):
            actions.append("installed frr and openssh-server")
        made = frr.ensure_login()  # before any sshd: r1's only login
        if made:
            self._report(made)
            actions.append(made)
        self._check_mgmt_net_free()
        snapshot = self._snapshot()
        problem = self._structure_problem(snapshot)
        if problem is not None:
            if problem != "not built":
                self._report(f"{self._plan.prefix}: rebuilding ({problem})")
            self._teardown()
            self._build()
            actions.append(f"built lab {self._plan.prefix} (slot {self._plan.slot})")
            return actions
        repairs = self._repair(snapshot)
        for action in repairs:
            self._report(f"{self._plan.prefix}: {action}")
        return actions + repairs

    def _check_mgmt_net_free(self) -> None:
        clashes = netns.root_address_conflicts(self._plan)
        if clashes:
            raise LabError(
                f"{self._plan.mgmt_net} is already in use in the root namespace "
                f"({'; '.join(clashes)}): choose another --slot"
            )

    def _snapshot(self) -> _Snapshot:
        present = netns.existing_namespaces()
        return {ns: netns.interfaces(ns) for ns in self._plan.namespaces if ns in present}

    def _structure_problem(self, snapshot: _Snapshot) -> str | None:
        """Why the lab must be (re)built from scratch; None if repairing in place will do."""
        plan, paths = self._plan, self._paths
        recorded = state.recorded_slot(paths)
        if recorded is None:
            return "not built"
        if recorded != plan.slot:
            return f"it was built with slot {recorded}"
        for namespace in plan.namespaces:
            if namespace not in snapshot:
                return f"namespace {namespace} is missing"
        root = netns.interfaces(None).get(plan.root_mgmt_ifname)
        if root is None or plan.root_mgmt not in root.addresses:
            return f"{plan.root_mgmt_ifname} or its address is missing"
        for link in plan.links:
            iface = snapshot[link.namespace].get(link.ifname)
            if iface is None or link.address not in iface.addresses:
                return f"{link.ifname} in {link.namespace} or its address is missing"
            if link.switch_port not in snapshot[plan.switch_ns]:
                return f"switch port {link.switch_port} is missing"
        for host in plan.hosts:
            lo = snapshot[host.namespace].get("lo")
            if lo is None or any(v.interface not in lo.addresses for v in plan.vips):
                return f"a VIP is missing on {host.namespace}"
        if not sshd.keys_present(plan, paths):
            return "SSH keys are missing"
        if not frr.has_config(plan):
            return "FRR config is missing"
        return None

    def _build(self) -> None:
        plan, paths = self._plan, self._paths
        state.create(paths, list(plan.device_names))
        sshd.ensure_privsep_dir(paths)
        sshd.ensure_keys(plan, paths)
        sshd.write_client_files(plan, paths)
        for device in plan.devices:
            sshd.write_config(plan, device, paths)
        netns.build(plan)
        frr.write_config(plan)
        for daemon in frr.DAEMONS:
            frr.start(plan, daemon, paths.frr_log(frr.ROUTER))
        for device in plan.devices:
            sshd.start(device, paths, self._binds(device))
        for host in plan.hosts:
            web.start(host, paths)
        frr.wait_routes(plan)
        for service in plan.services:
            self._wait_answer(service, service.initial_host)
        state.write_inventory(plan, paths)
        # Last: lab.json is what marks the lab as completely built.
        state.write_lab_json(plan, paths)

    def _wait_answer(self, service: Service, host: str, timeout: float = 15.0) -> None:
        last = ["no answer yet"]

        def answers() -> bool:
            try:
                last[0] = f"answered {self.client_get(service.vip, timeout=1.0)!r}"
            except ClientGetError as exc:
                last[0] = str(exc)
            return last[0] == f"answered {host!r}"

        try:
            wait_until(answers, timeout=timeout, what=f"{service.name} ({service.vip}) to answer {host}")
        except LabError as exc:
            raise LabError(f"{exc}; last try: {last[0]}") from None

    def _repair(self, snapshot: _Snapshot) -> list[str]:
        """Put back what is down or missing without undoing routes someone moved."""
        plan, paths = self._plan, self._paths
        actions: list[str] = []
        host_namespaces = {h.namespace for h in plan.hosts}
        for namespace in plan.namespaces:
            if namespace in host_namespaces:
                continue  # hosts are healed below, the same way `heal` does it
            down = [name for name, iface in snapshot[namespace].items() if not iface.admin_up]
            if down:
                netns.apply(namespace, [f"link set {name} up" for name in down])
                netns.apply(namespace, netns.namespace_commands(plan, namespace))
                actions.append(f"{namespace}: set {', '.join(sorted(down))} up")
                if namespace == plan.frr_pathspace:
                    # zebra puts the static routes back on its own once the link is up.
                    frr.wait_routes(plan, as_planned=False)
        if not noc.present(plan):
            noc.ensure(plan)
            actions.append(f"root namespace: restored probe routing table {plan.probe_table}")
        present = netns.routes(plan.client_ns)
        if any(r.gateway not in present.get(r.destination, set()) for r in plan.client_routes):
            netns.apply(plan.client_ns, netns.namespace_commands(plan, plan.client_ns))
            actions.append(f"{plan.client_ns}: restored routes")
        commands = netns.missing_router_routes(plan, netns.LINUX_ROUTER)
        if commands:
            netns.apply(plan.ns(netns.LINUX_ROUTER), commands)
            actions.append(f"{plan.ns(netns.LINUX_ROUTER)}: restored {len(commands)} route(s)")
        actions += self._repair_frr()
        for device in plan.devices:
            if sshd.running(paths, device) is None:
                sshd.write_config(plan, device, paths)
                sshd.start(device, paths, self._binds(device))
                actions.append(f"{device.name}: restarted sshd")
        for host in plan.hosts:
            actions += self._heal(host)
        return actions

    def _binds(self, device: Device) -> list[tuple[Path, Path]]:
        return frr.login_binds(self._plan) if device.kind == "frr" else []

    def _repair_frr(self) -> list[str]:
        plan, log = self._plan, self._paths.frr_log(frr.ROUTER)
        pids = frr.running(plan)
        if all(pids.values()):
            return []
        if pids["zebra"] is None:
            # staticd without its zebra holds routes nobody installs: restart both, in order.
            terminate([p for p in pids.values() if p is not None])
            to_start = list(frr.DAEMONS)
        else:
            to_start = [d for d, p in pids.items() if p is None]
        for daemon in to_start:
            frr.start(plan, daemon, log)
        frr.wait_routes(plan, as_planned=False)
        return [f"{frr.ROUTER}: restarted {', '.join(to_start)}"]

    # --- down --------------------------------------------------------------

    def down(self) -> None:
        """Stop every process of the lab and remove everything it made. Fine if nothing is there."""
        require_root()
        self._teardown()
        # r1's login is shared by every lab on the machine (whatever its state root): the last one takes it.
        if not any(d.is_dir() for d in frr.CONFIG_ROOT.glob("*-r1")):
            frr.remove_login()

    def _teardown(self) -> None:
        plan, paths = self._plan, self._paths
        # Daemons can fork (an sshd session) while we kill: repeat until nothing is left.
        for _ in range(3):
            pids = self._lab_pids()
            if not pids:
                break
            terminate(pids)
        netns.delete(plan)
        frr.remove_files(plan)
        state.remove(paths)
        others = state.other_labs(paths)
        sshd.release_privsep_dir(paths, others)
        if not others:
            # Not empty: something else lives there, not ours to remove.
            with contextlib.suppress(OSError):
                paths.root.rmdir()
        left = [ns for ns in plan.namespaces if ns in netns.existing_namespaces()]
        if left:
            raise LabError(f"could not delete namespace(s) {', '.join(left)}")
        if plan.root_mgmt_ifname in netns.interfaces(None):
            raise LabError(f"could not delete interface {plan.root_mgmt_ifname}")

    def _lab_pids(self) -> set[int]:
        plan, paths = self._plan, self._paths
        tokens = [paths.token, frr.token(plan), f"{frr.config_dir(plan)}/"]
        pids: set[int] = set()
        for pid_file in [*paths.dir.glob("*/*.pid"), *frr.run_dir(plan).glob("*.pid")]:
            pid = pidfile_process(pid_file, str(pid_file.parent))
            if pid is not None:
                pids.add(pid)
        present = netns.existing_namespaces()
        for namespace in plan.namespaces:
            if namespace in present:
                pids |= namespace_pids(namespace)
        # Also by command line: a process can outlive its namespace's name
        # (a half-deleted lab), and then only its arguments say it is ours.
        return pids | pids_matching(tokens)

    # --- status ------------------------------------------------------------

    def status(self) -> LabStatus:
        require_root()
        plan, paths = self._plan, self._paths
        snapshot = self._snapshot()
        devices = [self._device_status(name, snapshot) for name in plan.device_names]
        client_ifs = snapshot.get(plan.client_ns, {})
        devices.append(
            DeviceStatus(
                name="client",
                namespace=plan.client_ns,
                kind="client",
                mgmt=None,
                present=plan.client_ns in snapshot,
                processes={},
                links={lk.ifname: _link_state(client_ifs, lk.ifname) for lk in plan.links_in(plan.client_ns)},
            )
        )
        root = netns.interfaces(None).get(plan.root_mgmt_ifname)
        recorded = state.recorded_slot(paths)
        return LabStatus(
            prefix=plan.prefix,
            slot=plan.slot if recorded is None else recorded,
            state_dir=paths.dir,
            mgmt_net=plan.mgmt_net,
            root_link=root.state if root else "missing",
            namespaces={ns: ns in snapshot for ns in plan.namespaces},
            devices=tuple(devices),
            services=self._service_status(snapshot),
        )

    def _device_status(self, name: str, snapshot: _Snapshot) -> DeviceStatus:
        plan, paths = self._plan, self._paths
        device = plan.device(name)
        processes = {"sshd": sshd.running(paths, device) is not None}
        if device.kind == "frr":
            processes.update({d: pid is not None for d, pid in frr.running(plan).items()})
        if device.kind == "host":
            processes["webserver"] = web.running(paths, plan.host(name)) is not None
        ifs = snapshot.get(device.namespace, {})
        return DeviceStatus(
            name=device.name,
            namespace=device.namespace,
            kind=device.kind,
            mgmt=device.address,
            present=device.namespace in snapshot,
            processes=processes,
            links={lk.ifname: _link_state(ifs, lk.ifname) for lk in plan.links_in(device.namespace)},
        )

    def _service_status(self, snapshot: _Snapshot) -> tuple[ServiceStatus, ...]:
        plan = self._plan
        names = {str(h.address.ip): h.name for h in plan.hosts}

        def probe(service: Service) -> ServiceStatus:
            hops: tuple[str, ...] = ()
            answered, error = None, None
            if plan.ns(service.router) in snapshot:
                table = netns.routes(plan.ns(service.router))
                gateways = table.get(service.prefix, set())
                hops = tuple(sorted(names.get(str(g), str(g)) for g in gateways if g is not None))
            if plan.client_ns not in snapshot:
                error = f"{plan.client_ns} is missing"
            else:
                try:
                    answered = self.client_get(service.vip, timeout=_STATUS_GET_TIMEOUT)
                except LabError as exc:
                    error = str(exc).rsplit(": ", 1)[-1]
            return ServiceStatus(service.name, service.vip, service.prefix, service.router, hops, answered, error)

        # In parallel: a dead host costs one timeout, not one per service.
        with ThreadPoolExecutor(max_workers=len(plan.services)) as pool:
            return tuple(pool.map(probe, plan.services))

    # --- break / heal ------------------------------------------------------

    def break_host(self, name: str, link: bool = False) -> list[str]:
        """Stop a web host's web server, or (link=True) take its eth0 down instead."""
        require_root()
        host = self._existing_host(name)
        if link:
            iface = netns.interfaces(host.namespace).get("eth0")
            if iface is None or not iface.admin_up:
                return []
            netns.set_link(host.namespace, "eth0", up=False)
            return [f"{host.name}: eth0 down"]
        return [f"{host.name}: web server stopped"] if web.stop(self._paths, host) else []

    def heal(self, name: str) -> list[str]:
        """Start the host's web server and bring its eth0 (and default route) back; [] if fine."""
        require_root()
        return self._heal(self._existing_host(name))

    def _existing_host(self, name: str) -> Host:
        host = self._plan.host(name)
        if host.namespace not in netns.existing_namespaces():
            raise LabError(f"lab {self._plan.prefix} is not up ({host.namespace} missing): run `lab up` first")
        return host

    def _heal(self, host: Host) -> list[str]:
        plan, paths = self._plan, self._paths
        actions: list[str] = []
        ifs = netns.interfaces(host.namespace)
        down = [lk.ifname for lk in plan.links_in(host.namespace) if not _admin_up(ifs, lk.ifname)]
        route_ok = plan.gateway in netns.routes(host.namespace).get(DEFAULT_ROUTE, set())
        if down or not route_ok:
            # Taking a link down drops the routes through it: put the default route back too.
            netns.apply(host.namespace, netns.namespace_commands(plan, host.namespace))
            fixed = [f"{', '.join(down)} up"] if down else []
            fixed.append(f"default route via {plan.gateway}")
            actions.append(f"{host.name}: {', '.join(fixed)}")
        if web.running(paths, host) is None:
            web.start(host, paths)
            actions.append(f"{host.name}: web server started")
        return actions

    def restart_router(self, *, ecmp: int | None = None) -> list[str]:
        """Restart r1's FRR from the lab's own configuration (what `lab up` writes: every service
        on its initial host, whatever was saved since), zebra allowing at most `ecmp` next hops
        per route if given (None: FRR's own limit).

        With `ecmp=1` staticd refuses a second next hop for a prefix ("Route cannot have more
        than 1 ECMP nexthops"), so every make-before-break change is rejected by the router
        itself: a deterministic refusal for the fault tests. `restart_router()` puts it back.
        """
        require_root()
        plan, log = self._plan, self._paths.frr_log(frr.ROUTER)
        if plan.frr_pathspace not in netns.existing_namespaces():
            raise LabError(f"lab {plan.prefix} is not up ({plan.frr_pathspace} missing): run `lab up` first")
        # Both, whichever is running: a staticd left without its zebra holds routes nobody installs.
        terminate([p for p in frr.running(plan).values() if p is not None])
        frr.write_config(plan)
        for daemon in frr.DAEMONS:
            frr.start(plan, daemon, log, ecmp=ecmp if daemon == "zebra" else None)
        frr.wait_routes(plan)
        limit = f" with at most {ecmp} next hop{'s' if ecmp != 1 else ''} per route" if ecmp is not None else ""
        return [f"{frr.ROUTER}: FRR restarted{limit}"]

    # --- using the lab -----------------------------------------------------

    def client_get(self, vip: IPv4Address | str, timeout: float = 2.0) -> str:
        """GET http://VIP/ from the client namespace; the stripped body (the host's name)."""
        require_root()
        try:
            address = ip_address(str(vip))
        except ValueError as exc:
            raise LabError(f"not an IP address: {vip!r}") from exc
        if not isinstance(address, IPv4Address) or not any(address in n for n in ALLOWED_RANGES):
            raise LabError(f"{address} is not a lab address")
        return client_get(self._plan, address, timeout)

    def exec(
        self,
        ns_suffix: str,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv in one of the lab's namespaces ("r1", "web2", "client", ...), output captured."""
        require_root()
        namespace = self._namespace(ns_suffix)
        if namespace not in netns.existing_namespaces():
            raise LabError(f"namespace {namespace} does not exist: run `lab up` first")
        return run(in_namespace(namespace, argv), timeout=timeout, check=check)

    def _namespace(self, ns_suffix: str) -> str:
        plan = self._plan
        for namespace in plan.namespaces:
            if ns_suffix in (namespace, namespace.removeprefix(f"{plan.prefix}-")):
                return namespace
        choices = ", ".join(ns.removeprefix(f"{plan.prefix}-") for ns in plan.namespaces)
        raise LabError(f"unknown namespace {ns_suffix!r}: choose {choices}")


def _admin_up(ifs: dict[str, Interface], name: str) -> bool:
    iface = ifs.get(name)
    return iface is not None and iface.admin_up


def _link_state(ifs: dict[str, Interface], name: str) -> str:
    iface = ifs.get(name)
    return iface.state if iface else "missing"
