"""r1: one FRR instance (zebra + staticd) in its own pathspace, named after r1's namespace.

The pathspace (`-N`) keeps its config, sockets and pid files apart from the
machine's own FRR and from other labs' r1, so several can run at once.

lasthop logs in to r1 as LOGIN, a non-root system user whose shell is vtysh, as on
a real router: in frrvty (the daemons' vty sockets are frr:frrvty 0770) and frr
(/etc/frr is frr:frr 0750, and the config directory is frr:frr 2770 so that its
`write memory` may replace frr.conf, and the new file keeps group frr so the
daemons still read it after a restart). The user is a host change shared by every
lab: `up` makes it if missing, the last lab's `down` removes it (see LOGIN_COMMENT).
"""

from __future__ import annotations

import grp
import json
import pwd
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
LOGIN = "lasthop-lab"
LOGIN_GROUP = "frrvty"  # primary: no group of its own to make and remove
LOGIN_GROUPS = ("frr",)
# Also the mark that the lab made this user: `down` removes only a user carrying it.
LOGIN_COMMENT = "lasthop lab r1 login, removed by the last lasthop lab down"


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
    """Fresh config and run dirs, owned by frr: the daemons drop root to frr.

    The config dir is group-writable and setgid: LOGIN's `write memory` renames frr.conf to
    frr.conf.sav and creates a new frr.conf (0640, its own, group frr from the directory).
    """
    conf_dir, rdir = config_dir(plan), run_dir(plan)
    RUN_ROOT.mkdir(mode=0o755, exist_ok=True)
    for directory, mode in ((conf_dir, 0o2770), (rdir, 0o755)):
        directory.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(directory, _OWNER, _OWNER)
        directory.chmod(mode)  # after chown, and explicit: mkdir's mode passes through the umask
    files = {config_file(plan): render_config(plan), conf_dir / "vtysh.conf": ""}
    for path, text in files.items():
        path.write_text(text)
        path.chmod(0o640)
        shutil.chown(path, _OWNER, _OWNER)


def login_problem() -> str | None:
    """What is wrong with LOGIN as r1's login; None if it is there and right."""
    try:
        entry = pwd.getpwnam(LOGIN)
    except KeyError:
        return f"user {LOGIN} is missing"
    if entry.pw_gecos != LOGIN_COMMENT:
        return f"user {LOGIN} exists but was not made by the lab"
    groups = {LOGIN_GROUP, *LOGIN_GROUPS}
    have = {g.gr_name for g in grp.getgrall() if LOGIN in g.gr_mem} | {grp.getgrgid(entry.pw_gid).gr_name}
    if entry.pw_shell != VTYSH or not groups <= have:
        return f"user {LOGIN} has shell {entry.pw_shell} and groups {', '.join(sorted(have))}"
    return None


def ensure_login() -> str | None:
    """Make LOGIN (or put its shell and groups back); what was done, None if it was right.

    Idempotent, and it never takes over a user of that name it did not make.
    """
    problem = login_problem()
    if problem is None:
        return None
    if problem.endswith("was not made by the lab"):
        raise LabError(f"{problem} (its comment is not {LOGIN_COMMENT!r}): remove it or rename it")
    # '*' as password: no password login, but not "locked" ('!'), which sshd refuses even for keys.
    account = ["--shell", VTYSH, "--gid", LOGIN_GROUP, "--groups", ",".join(LOGIN_GROUPS), "--password", "*"]
    if problem.endswith("is missing"):
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--no-user-group",
             "--comment", LOGIN_COMMENT, *account, LOGIN])
        return f"created system user {LOGIN} (r1's login)"
    run(["usermod", *account, LOGIN])
    return f"restored shell and groups of user {LOGIN}"


def remove_login() -> bool:
    """Remove LOGIN if the lab made it; True if removed. Only when no lab is left to use it."""
    try:
        entry = pwd.getpwnam(LOGIN)
    except KeyError:
        return False
    if entry.pw_gecos != LOGIN_COMMENT:
        return False  # not ours: leave it
    run(["userdel", LOGIN])
    return True


def login_binds(plan: LabPlan) -> list[tuple[Path, Path]]:
    """Mounts for r1's sshd: its pathspace where a plain `vtysh` (LOGIN's shell, no -N) looks."""
    return [(run_dir(plan), RUN_ROOT), (config_dir(plan), CONFIG_ROOT)]


def has_config(plan: LabPlan) -> bool:
    return config_file(plan).is_file() and run_dir(plan).is_dir()


def running(plan: LabPlan) -> dict[str, int | None]:
    return {d: pidfile_process(pidfile(plan, d), token(plan)) for d in DAEMONS}


def start(plan: LabPlan, daemon: str, log: Path, *, ecmp: int | None = None) -> None:
    """Start one daemon of r1; `ecmp` (zebra only) caps the next hops of one route, as `zebra -e N` does."""
    argv = [
        str(FRR_BIN / daemon), "-N", plan.frr_pathspace, "-d", "-F", "traditional",
        "-f", str(config_file(plan)), "-i", str(pidfile(plan, daemon)),
    ]  # fmt: skip
    if ecmp is not None:
        if daemon != "zebra":
            raise LabError(f"only zebra takes an ECMP limit, not {daemon}")
        argv += ["-e", str(ecmp)]
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
