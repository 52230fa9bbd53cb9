"""r1: one FRR instance (zebra + staticd) in its own pathspace, named after r1's namespace.

The pathspace (`-N`) keeps its config, sockets and pid files apart from the
machine's own FRR and from other labs' r1, so several can run at once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lab import netns
from lab.errors import LabError
from lab.pids import pidfile_process
from lab.plan import LabPlan
from lab.proc import in_namespace, run, start_daemon
from lab.wait import wait_until

FRR_BIN = Path("/usr/lib/frr")
CONFIG_ROOT = Path("/etc/frr")
RUN_ROOT = Path("/var/run/frr")
VTYSH = "/usr/bin/vtysh"
# zebra first: staticd hands its routes to zebra over the zserv socket.
DAEMONS = ("zebra", "staticd")
ROUTER = "r1"
_OWNER = "frr"


def config_dir(plan: LabPlan) -> Path:
    return CONFIG_ROOT / plan.frr_pathspace


def config_file(plan: LabPlan) -> Path:
    return config_dir(plan) / "frr.conf"


def run_dir(plan: LabPlan) -> Path:
    return RUN_ROOT / plan.frr_pathspace


def pidfile(plan: LabPlan, daemon: str) -> Path:
    return run_dir(plan) / f"{daemon}.pid"


def token(plan: LabPlan) -> str:
    """In every FRR daemon's command line (its pid file path); the slash keeps lh-r1 from matching lh2-r1."""
    return f"{run_dir(plan)}/"


def render_config(plan: LabPlan) -> str:
    lines = [
        "frr defaults traditional",
        f"hostname {plan.frr_pathspace}",
        "ip forwarding",
        "!",
        *(f"ip route {r.destination} {r.gateway}" for r in plan.static_routes(ROUTER)),
        "!",
        "line vty",
        "!",
    ]
    return "\n".join(lines) + "\n"


def write_config(plan: LabPlan) -> None:
    """Fresh config and run dirs, owned by frr: the daemons drop root and `write memory` as frr."""
    conf_dir, rdir = config_dir(plan), run_dir(plan)
    RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
    for directory in (conf_dir, rdir):
        directory.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(directory, _OWNER, _OWNER)
    files = {config_file(plan): render_config(plan), conf_dir / "vtysh.conf": ""}
    for path, text in files.items():
        path.write_text(text)
        path.chmod(0o640)
        shutil.chown(path, _OWNER, _OWNER)


def has_config(plan: LabPlan) -> bool:
    return config_file(plan).is_file() and run_dir(plan).is_dir()


def running(plan: LabPlan) -> dict[str, int | None]:
    return {d: pidfile_process(pidfile(plan, d), token(plan)) for d in DAEMONS}


def start(plan: LabPlan, daemon: str, log: Path) -> None:
    argv = [
        str(FRR_BIN / daemon), "-N", plan.frr_pathspace, "-d", "-F", "traditional",
        "-f", str(config_file(plan)), "-i", str(pidfile(plan, daemon)),
    ]  # fmt: skip
    start_daemon(in_namespace(plan.frr_pathspace, argv), log)


def vtysh(plan: LabPlan, command: str, *, timeout: float = 10.0) -> str:
    # Inside r1's namespace and UTS: vtysh writes its own hostname into saved configs.
    argv = in_namespace(plan.frr_pathspace, [VTYSH, "-N", plan.frr_pathspace, "-c", command])
    return run(argv, timeout=timeout).stdout


def routes_installed(plan: LabPlan, *, as_planned: bool = True) -> bool:
    """Every service prefix of r1 is installed in FRR's RIB and in r1's kernel table.

    as_planned: also via the plan's next hop. A restart after a failover was
    saved (`write memory`) brings the moved route back, and that is right too.
    """
    try:
        rib = json.loads(vtysh(plan, "show ip route static json", timeout=5.0) or "{}")
    except (LabError, ValueError):
        # vtysh fails while a daemon is still starting: that is "not yet", not an error.
        return False
    kernel = netns.routes(plan.frr_pathspace)
    for route in plan.static_routes(ROUTER):
        entries = rib.get(str(route.destination), []) if isinstance(rib, dict) else []
        if not any(e.get("installed") for e in entries if isinstance(e, dict)):
            return False
        gateways = kernel.get(route.destination, set())
        if not gateways or (as_planned and route.gateway not in gateways):
            return False
    return True


def wait_routes(plan: LabPlan, *, as_planned: bool = True, timeout: float = 15.0) -> None:
    wait_until(
        lambda: routes_installed(plan, as_planned=as_planned),
        timeout=timeout,
        what=f"static routes on {plan.frr_pathspace}",
    )


def remove_files(plan: LabPlan) -> None:
    for directory in (config_dir(plan), run_dir(plan)):
        shutil.rmtree(directory, ignore_errors=True)
