"""A real PgBouncer on loopback in front of the tests' PostgreSQL, in the pool mode a test asks for.

PgBouncer will not run as root: it runs as the `postgres` user (Debian's package makes it), from a
directory of its own that is removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

PGBOUNCER = "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pgbouncer(url: str, *, pool_mode: str) -> Iterator[str]:
    """`url` (a PostgreSQL URL with user and password) reached through a new PgBouncer: its URL."""
    if not Path(PGBOUNCER).exists() or os.geteuid() != 0:
        reason = "needs PgBouncer (scripts/install.sh test installs it) and root to run it as postgres"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    target = make_url(url)
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="lasthop-pgbouncer-"))
    user = pwd.getpwnam("postgres")
    (home / "users.txt").write_text(f'"{target.username}" "{target.password}"\n')
    (home / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{target.database} = host={target.host or '127.0.0.1'} port={target.port or 5432} "
        f"dbname={target.database}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = plain\nauth_file = {home}/users.txt\n"
        f"pool_mode = {pool_mode}\ndefault_pool_size = 4\nmax_client_conn = 100\n"
        f"logfile = {home}/pgbouncer.log\n"
        "ignore_startup_parameters = extra_float_digits,options,application_name\n"
    )
    os.chmod(home, 0o700)
    for path in (home, *home.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen([PGBOUNCER, str(home / "pgbouncer.ini")], user=user.pw_uid, group=user.pw_gid,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (home / "pgbouncer.log").read_text() if (home / "pgbouncer.log").exists() else ""
                    raise AssertionError(f"PgBouncer did not start: {log[-2000:]}") from None
                time.sleep(0.1)
        yield target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(home, ignore_errors=True)
