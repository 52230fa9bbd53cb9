"""Shared test setup: the `lab` marker and the session-wide network-namespace lab."""

from __future__ import annotations

import os

import pytest

from lab import Lab

LAB_PREFIX = "lt"
LAB_SLOT = 7
_NEEDS_ROOT = "needs root (network namespaces); CI runs these as root"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root and builds the network-namespace lab")


def require_root() -> None:
    """Skip a lab test when not root, except in CI: there a skipped lab test would hide a failure."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"lab tests must run as root in CI ({_NEEDS_ROOT})", pytrace=False)
    pytest.skip(_NEEDS_ROOT)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    """A lab (prefix lt, slot 7) for the whole session, torn down at its end."""
    require_root()
    the_lab = Lab(prefix=LAB_PREFIX, slot=LAB_SLOT)
    # Registered before up(): a lab that fails half-way up is torn down too.
    request.addfinalizer(the_lab.down)
    the_lab.up()
    return the_lab
