"""The fault suite: every case records itself in the ledger (support.ledger) for the figures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.ledger import Ledger

from lab import Lab


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def web1_down(lab: Lab, lab_home: None) -> Iterator[None]:
    """web1's web server is stopped: moving www-a to web2 is the safe, wanted move."""
    lab.break_host("web1")
    try:
        yield
    finally:
        lab.heal("web1")
