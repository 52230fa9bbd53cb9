"""The tests' PostgreSQL: one database per test session, for every test under tests/bot.

`pg_database` is registered once, in tests/bot/conftest.py: a session fixture imported into two
conftest files would be two fixtures, each making (and dropping) the same `lasthop_test_<pid>`.
When the server cannot be reached the PostgreSQL tests are skipped with the reason, unless CI is
set: then they fail, so a CI run can never pass with half the store untested.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

# scripts/postgres.sh (run by `make test`) makes the tests' own role and writes its URL here.
PG_URL_FILE = Path(os.environ.get("LASTHOP_TEST_PG_URL_FILE", "/var/lib/lasthop/test-postgres.url"))


def _admin_url() -> str | None:
    if os.environ.get("LASTHOP_TEST_PG_URL"):
        return os.environ["LASTHOP_TEST_PG_URL"]
    try:
        return PG_URL_FILE.read_text().strip() or None
    except OSError:
        return None


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this test session, dropped when it ends."""
    found = _admin_url()
    if found is None:
        reason = f"no PostgreSQL for the tests: LASTHOP_TEST_PG_URL is unset and {PG_URL_FILE} is missing"
        if _ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL state-store tests must run "
                        "(scripts/postgres.sh makes one)", pytrace=False)
        pytest.skip(f"{reason}; run `sudo bash scripts/postgres.sh` to run the PostgreSQL half")
    admin_url = make_url(found)
    where = f"{admin_url.host}:{admin_url.port or 5432}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL at {where} is unreachable ({str(exc.orig).strip().splitlines()[0]})"
        if _ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL state-store tests must run", pytrace=False)
        pytest.skip(f"{reason}; set up PostgreSQL to run the PostgreSQL half")
    name = f"lasthop_test_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_public_schema(url: str) -> None:
    """Drop and recreate `public`: a test starts on an empty database and leaves nothing behind."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
