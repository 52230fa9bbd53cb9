"""Starting and stopping a web host's web server (lab/webserver.py) inside its namespace."""

from __future__ import annotations

import sys
from pathlib import Path

from lab.errors import LabError
from lab.pids import pidfile_process, terminate
from lab.plan import WEB_PORT, Host
from lab.proc import base_env, in_namespace, start_daemon
from lab.state import StatePaths

# The repo root, so `-m lab.webserver` works when lasthop is not installed.
REPO_ROOT = Path(__file__).resolve().parent.parent


def running(paths: StatePaths, host: Host) -> int | None:
    pid_file = paths.web_pid(host.name)
    return pidfile_process(pid_file, str(pid_file))


def start(host: Host, paths: StatePaths) -> None:
    pid_file = paths.web_pid(host.name)
    argv = [
        sys.executable, "-m", "lab.webserver", "--name", host.name,
        "--port", str(WEB_PORT), "--pidfile", str(pid_file), "--daemon",
    ]  # fmt: skip
    env = base_env()
    env["PYTHONPATH"] = str(REPO_ROOT)
    log = paths.web_log(host.name)
    # Returns once the server listens and has written its pid file (see _daemonize).
    start_daemon(in_namespace(host.namespace, argv), log, env=env, cwd=REPO_ROOT)
    if running(paths, host) is None:
        raise LabError(f"web server on {host.namespace} did not start (log: {log})")


def stop(paths: StatePaths, host: Host) -> bool:
    """Stop the web server; True if one was running."""
    pid = running(paths, host)
    if pid is None:
        return False
    terminate([pid])
    paths.web_pid(host.name).unlink(missing_ok=True)
    return True
