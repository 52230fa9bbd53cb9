"""Fixtures for the Slack listener tests: the three-host network with Slack roles, and a harness over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.slack_fakes import ROLES, Harness, harness

from bot.inventory import Inventory


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    """tests/support/lan.py's network; alice operates, bob approves, vic views, in #ops (and #alerts)."""
    return inventory_from_text(tmp_path, THREE_HOSTS + ROLES)


@pytest.fixture
def h(inv: Inventory) -> Iterator[Harness]:
    """The listeners' context over `inv`, with a stub workflow answering "the answer"."""
    with harness(inv) as made:
        yield made
