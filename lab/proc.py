"""Running commands: always with a timeout, inside a lab namespace when asked.

A hung `ip` or daemon start must not hang the lab (or the test run) forever, so
nothing here can run a command without a timeout.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.errors import CommandError, LabError

DEFAULT_TIMEOUT = 10.0

# Runs the command with the UTS hostname set to the namespace name, so prompts,
# logs and configs saved by FRR carry the device's name, not the machine's.
_SET_HOSTNAME = 'hostname "$0" && exec "$@"'


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """argv run inside `namespace` and a private UTS namespace named after it."""
    return [
        "ip", "netns", "exec", namespace,
        "unshare", "--uts", "sh", "-c", _SET_HOSTNAME, namespace,
        *argv,
    ]  # fmt: skip


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture its output as text; CommandError on failure when `check`."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # No stdin unless given: a command that prompts must fail, not wait.
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout:g}s: {_show(argv)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]}") from exc
    if check and done.returncode != 0:
        raise CommandError(f"{_show(argv)} failed ({done.returncode}): {_last_line(done)}")
    return done


def start_daemon(
    argv: Sequence[str],
    log: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a command that forks into the background and returns.

    Its output goes to `log`, never to a pipe: a daemon that kept our pipe open
    would make us wait for it until the timeout.
    """
    with open(log, "ab") as out:
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=timeout,
                check=False,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"timed out after {timeout:g}s: {_show(argv)}") from exc
        except FileNotFoundError as exc:
            raise LabError(f"command not found: {argv[0]}") from exc
    if done.returncode != 0:
        raise CommandError(f"{_show(argv)} failed ({done.returncode}): {_tail(log)} (log: {log})")


def base_env() -> dict[str, str]:
    """A small, predictable environment for the lab's daemons."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _show(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    for stream in (done.stderr, done.stdout):
        lines = [ln.strip() for ln in (stream or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return "no output"


def _tail(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"
