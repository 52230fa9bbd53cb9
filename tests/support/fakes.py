"""Small stand-ins shared by unit tests of pure logic."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_inventory
from bot.inventory import Inventory


class ManualClock:
    """A monotonic clock the test moves by hand (`clock.now += 30`)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def inventory_from_text(tmp_path: Path, text: str) -> Inventory:
    """An inventory from YAML text; key files are not checked, no environment is read."""
    path = tmp_path / "lasthop.yaml"
    path.write_text(text)
    return load_inventory(path, env={}, check_files=False)
