"""Several real `lasthop serve` processes on one PostgreSQL store and the lab, for the HA tests.

Each instance is the real CLI in a child process, with its own HTTP port (Slack events, /metrics,
/healthz) and its own log file, talking to a Slack stand-in on loopback. The store's own records
say who leads; the tests read them with a StateStore of their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.state import LeaderRecord, StateStore

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STATE_URL_ENV = "HA_STATE_URL"  # the config names it: a password may not be written in the file


def ha_config(lab_yaml: Path, out: Path, *, alert_channel: str, channels: list[str],
              operators: list[str], approvers: list[str], auto: bool = True) -> Path:
    """The lab's inventory with the shared store (from $HA_STATE_URL) and Slack settings, written to `out`."""
    data: dict[str, Any] = yaml.safe_load(lab_yaml.read_text())
    data["state_url"] = "${" + STATE_URL_ENV + "}"
    data["slack"] = {"alert_channel": alert_channel, "channels": channels,
                     "roles": {"viewers": ["*"], "operators": operators, "approvers": approvers}}
    for name, svc in data["services"].items():
        svc["auto_failover"] = auto and name == "www-a"
    data["policy"]["auto_failover"]["enabled"] = auto
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@dataclass
class Instance:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    config: Path

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as r:
            return str(r.read().decode())

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return int(r.status) == 200
        except OSError:
            return False


@dataclass
class Cluster:
    """Starts instances; stops every one it started (SIGTERM, then SIGKILL) at the end."""

    tmp: Path
    env: dict[str, str]
    started: list[Instance] = field(default_factory=list)

    def start(self, name: str, config: Path, state_url: str, *, extra_env: dict[str, str] | None = None) -> Instance:
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LASTHOP_"))}
        env.update(self.env, PYTHONUNBUFFERED="1", **{STATE_URL_ENV: state_url}, **(extra_env or {}))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--config", str(config), "--port", str(port),
                 "--instance", name], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        instance = Instance(name, port, log, proc, config)
        self.started.append(instance)
        return instance

    def stop(self) -> None:
        for i in self.started:
            if i.alive():
                i.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for i in self.started:
            try:
                i.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                i.kill()


def leader_now(store: StateStore) -> LeaderRecord | None:
    record = store.leader()
    return record if record is not None and record.leading else None
