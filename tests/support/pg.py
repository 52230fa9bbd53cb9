"""A scratch PostgreSQL database for tests outside tests/bot/state (whose conftest has its own).

Same rules as there: no server is a skip with the reason, unless CI is set: then it fails, so a
CI run never passes with the PostgreSQL half untested.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def _unavailable(reason: str) -> None:
    if _ci():
        pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run (scripts/postgres.sh makes one)",
                    pytrace=False)
    pytest.skip(f"{reason}; run `sudo bash scripts/postgres.sh` to run the PostgreSQL half")


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """URL of a new database `<prefix>_<pid>` (one per test process), dropped on leaving."""
    found = _admin_url()
    if found is None:
        _unavailable(f"no PostgreSQL for the tests: LASTHOP_TEST_PG_URL is unset and {PG_URL_FILE} is missing")
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    admin_url = make_url(found)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        try:
            with admin.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            where = f"{admin_url.host}:{admin_url.port or 5432}"
            _unavailable(f"PostgreSQL at {where} is unreachable ({str(exc.orig).strip().splitlines()[0]})")
        name = f"{prefix}_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def empty_public_schema(url: str) -> None:
    """Everything a test made in the database gone, the database itself kept for the next test."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database made for this test session, dropped when it ends. Registered once, in
    tests/bot/conftest.py: imported into two conftest files it would be two fixtures, each making
    (and dropping) the same database."""
    with scratch_database("lasthop_test") as url:
        yield url
