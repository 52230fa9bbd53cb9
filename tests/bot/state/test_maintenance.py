"""Maintenance windows: set, replaced, ended by time or by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.state import StateStore


def test_maintenance_window_lifecycle(store: StateStore, clock: Any) -> None:
    assert store.maintenance() == {}
    rec = store.set_maintenance("web1", by="alice", reason="kernel update", until=clock.now + timedelta(minutes=30))
    assert rec.host == "web1" and rec.by == "alice" and rec.since == clock.now
    assert set(store.maintenance()) == {"web1"}
    store.set_maintenance("web1", by="bob")  # replaces alice's window, now open-ended
    (again,) = store.maintenance().values()
    assert again.by == "bob" and again.until is None
    store.set_maintenance("web2", by="alice", until=clock.now + timedelta(minutes=5))
    clock.advance(seconds=301)
    assert set(store.maintenance()) == {"web1"}  # web2's window has ended
    assert store.clear_maintenance("web1") is True
    assert store.clear_maintenance("web1") is False
    assert store.maintenance() == {}
