"""SSH into the devices: one sshd per device namespace, keys and known_hosts made by the lab.

The lab writes its own known_hosts from the host keys it generated, so every
client can (and must) keep strict host-key checking on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from lab import frr
from lab.pids import pidfile_process, pids_matching
from lab.plan import Device, LabPlan
from lab.proc import in_namespace, run, start_daemon
from lab.state import StatePaths
from lab.wait import wait_until

SSHD = "/usr/sbin/sshd"
# sshd refuses to start without its privilege-separation directory.
PRIVSEP_DIR = Path("/run/sshd")
_PRIVSEP_MARKER = "created-run-sshd"
# Bind each (source, target) pair, then exec the rest: `sh -c` args are src dst ... -- argv.
_BIND_THEN_EXEC = (
    'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; exec "$@"'
)


def login(device: Device) -> str:
    """The user lasthop and the lab's tests log in to `device` as."""
    return frr.LOGIN if device.kind == "frr" else "root"


def ensure_key(path: Path, comment: str) -> bool:
    """Generate an ed25519 key without passphrase at `path` unless it exists; True if made."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return False
    for stale in (path, path.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return True


def ensure_keys(plan: LabPlan, paths: StatePaths) -> list[str]:
    """The client key and every device's host key; names of the devices whose key is new."""
    ensure_key(paths.key_file, f"lasthop-lab-{plan.prefix}")
    return [d.name for d in plan.devices if ensure_key(paths.host_key(d.name), d.namespace)]


def keys_present(plan: LabPlan, paths: StatePaths) -> bool:
    files = [paths.key_file, paths.authorized_keys, paths.known_hosts]
    files += [paths.host_key(d.name) for d in plan.devices]
    return all(f.is_file() for f in files)


def write_client_files(plan: LabPlan, paths: StatePaths) -> None:
    """authorized_keys (the lab's client key) and known_hosts (every device's host key)."""
    # 0644: sshd reads it as the user logging in, and r1's login is not root; it is a public key.
    _write(paths.authorized_keys, paths.key_file.with_suffix(".pub").read_text(), 0o644)
    lines = []
    for device in plan.devices:
        key_type, key_data = paths.host_key(device.name).with_suffix(".pub").read_text().split()[:2]
        lines.append(f"{device.address} {key_type} {key_data}\n")
    _write(paths.known_hosts, "".join(lines), 0o644)


def render_config(plan: LabPlan, device: Device, paths: StatePaths) -> str:
    options = [
        ("ListenAddress", str(device.address)),
        ("Port", "22"),
        ("HostKey", str(paths.host_key(device.name))),
        ("PidFile", str(paths.sshd_pid(device.name))),
        ("AuthorizedKeysFile", str(paths.authorized_keys)),
        ("PermitRootLogin", "prohibit-password"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        ("UsePAM", "no"),
        ("PrintMotd", "no"),
        ("PrintLastLog", "no"),
    ]
    if device.kind == "frr":
        # As on a real router: only the non-root login, whose shell is vtysh (see lab.frr).
        options.append(("AllowUsers", frr.LOGIN))
    return "".join(f"{key} {value}\n" for key, value in options)


def write_config(plan: LabPlan, device: Device, paths: StatePaths) -> None:
    _write(paths.sshd_config(device.name), render_config(plan, device, paths), 0o644)


def running(paths: StatePaths, device: Device) -> int | None:
    # The listener's proctitle keeps its arguments, so the config path identifies it.
    return pidfile_process(paths.sshd_pid(device.name), str(paths.sshd_config(device.name)))


def start(device: Device, paths: StatePaths, binds: Sequence[tuple[Path, Path]] = ()) -> None:
    """Start the device's sshd; `binds` are mounted for it (and its sessions) alone, in a private mount namespace."""
    pid_file = paths.sshd_pid(device.name)
    pid_file.unlink(missing_ok=True)
    log = paths.sshd_log(device.name)
    argv = [SSHD, "-f", str(paths.sshd_config(device.name)), "-E", str(log)]
    if binds:
        pairs = [str(p) for pair in binds for p in pair]
        argv = ["unshare", "--mount", "--propagation", "private",
                "sh", "-c", _BIND_THEN_EXEC, "sh", *pairs, "--", *argv]
    start_daemon(in_namespace(device.namespace, argv), log)
    # The pid file is written after the listening socket is bound: then it is ready.
    wait_until(
        lambda: running(paths, device) is not None,
        timeout=10.0,
        what=f"sshd on {device.namespace} (log: {log})",
    )


def ensure_privsep_dir(paths: StatePaths) -> None:
    if PRIVSEP_DIR.is_dir():
        return
    PRIVSEP_DIR.mkdir(mode=0o755)
    # Remember that the lab made it, so the last lab's `down` can take it away again.
    (paths.root / _PRIVSEP_MARKER).touch()


def release_privsep_dir(paths: StatePaths, other_labs: list[str]) -> None:
    """Remove /run/sshd if a lab made it, no lab is left and no sshd at all still runs."""
    marker = paths.root / _PRIVSEP_MARKER
    if other_labs or not marker.exists():
        return
    marker.unlink(missing_ok=True)
    if pids_matching([SSHD, "sshd:"]):
        return  # an sshd outside the lab may have come to rely on it: it is theirs now
    # Not empty: someone else uses it now.
    with contextlib.suppress(OSError):
        PRIVSEP_DIR.rmdir()


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    os.chmod(path, mode)
