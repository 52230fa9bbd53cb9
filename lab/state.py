"""Where one lab keeps its files, and the lab.json other tools read."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.plan import LabPlan

DEFAULT_STATE_ROOT = Path("/run/lasthop-lab")


@dataclass(frozen=True)
class StatePaths:
    root: Path
    prefix: str

    @property
    def dir(self) -> Path:
        return self.root / self.prefix

    @property
    def lab_json(self) -> Path:
        return self.dir / "lab.json"

    @property
    def inventory(self) -> Path:
        """lasthop's inventory for this lab: `lasthop --config <this>`."""
        return self.dir / "lasthop.yaml"

    @property
    def key_file(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def device_dir(self, device: str) -> Path:
        return self.dir / device

    def host_key(self, device: str) -> Path:
        return self.device_dir(device) / "ssh_host_ed25519_key"

    def sshd_config(self, device: str) -> Path:
        return self.device_dir(device) / "sshd_config"

    def sshd_pid(self, device: str) -> Path:
        return self.device_dir(device) / "sshd.pid"

    def sshd_log(self, device: str) -> Path:
        return self.device_dir(device) / "sshd.log"

    def web_pid(self, host: str) -> Path:
        return self.device_dir(host) / "webserver.pid"

    def web_log(self, host: str) -> Path:
        return self.device_dir(host) / "webserver.log"

    def frr_log(self, device: str) -> Path:
        return self.device_dir(device) / "frr.log"

    @property
    def token(self) -> str:
        """A string in the command line of every daemon of this lab that reads a state file.

        The trailing slash keeps prefix "lh" from matching lab "lh2".
        """
        return f"{self.dir}/"


def create(paths: StatePaths, devices: list[str]) -> None:
    # 0755 root-owned all the way down: sshd's StrictModes refuses an
    # AuthorizedKeysFile under a directory others can write to.
    for directory in (paths.root, paths.dir, *(paths.device_dir(d) for d in devices)):
        directory.mkdir(mode=0o755, exist_ok=True)
        os.chmod(directory, 0o755)


def remove(paths: StatePaths) -> None:
    shutil.rmtree(paths.dir, ignore_errors=True)


def write_inventory(plan: LabPlan, paths: StatePaths) -> None:
    from lab.inventory import inventory_yaml

    tmp = paths.inventory.with_suffix(".tmp")
    tmp.write_text(inventory_yaml(plan, paths.dir))
    tmp.replace(paths.inventory)


def write_lab_json(plan: LabPlan, paths: StatePaths) -> None:
    from lab import sshd  # late: sshd needs StatePaths from here

    data: dict[str, Any] = plan.to_dict()
    data["state_dir"] = str(paths.dir)
    data["key_file"] = str(paths.key_file)
    data["known_hosts"] = str(paths.known_hosts)
    data["authorized_keys"] = str(paths.authorized_keys)
    data["username"] = "root"
    data["logins"] = {d.name: sshd.login(d) for d in plan.devices}  # r1: the non-root FRR login
    data["inventory"] = str(paths.inventory)
    tmp = paths.lab_json.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    # Atomic: a reader never sees half a file, and its presence means "fully built".
    tmp.replace(paths.lab_json)


def read_lab_json(paths: StatePaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.lab_json.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_slot(paths: StatePaths) -> int | None:
    """The slot the lab at `paths` was built with, if it exists."""
    data = read_lab_json(paths)
    slot = data.get("slot") if data else None
    return slot if isinstance(slot, int) and not isinstance(slot, bool) else None


def other_labs(paths: StatePaths) -> list[str]:
    """Prefixes of other labs under the same state root."""
    try:
        entries = list(paths.root.iterdir())
    except OSError:
        return []
    return [e.name for e in entries if e.is_dir() and e.name != paths.prefix]
