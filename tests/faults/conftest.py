"""The fault suite: every case records itself in the ledger (support.ledger) for the figures."""

from __future__ import annotations

import pytest
from support.ledger import Ledger


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return Ledger()
