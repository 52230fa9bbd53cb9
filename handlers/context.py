"""What every Slack handler needs, built once per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient

from bot.access import Role, Who, needs_groups, refusal
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from bot.status import StatusView, collect_status
from handlers.poster import Poster

log = logging.getLogger("lasthop.slack")
GROUP_CACHE_SECONDS = 300.0


@dataclass
class SlackContext:
    inv: Inventory
    engine: Engine
    store: StateStore
    client: WebClient
    poster: Poster
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "slack-work"))
    status: Callable[[str | None], StatusView] | None = None
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Work after the ack: SSH, the database and health checks never run before it."""
        def guarded() -> Any:
            try:
                return fn()
            except Exception:
                log.exception("Slack background work failed")
                raise
        return self.executor.submit(guarded)

    def read_status(self, only: str | None) -> StatusView:
        if self.status is not None:
            return self.status(only)
        return collect_status(self.engine, only=only)

    def quick_refusal(self, user: str, channel: str, role: Role) -> str | None:
        """The access check that needs no network (no user groups named): usable before the ack."""
        if needs_groups(self.inv.slack):
            return None
        return refusal(self.inv.slack, Who(user, channel), role)

    def full_refusal(self, user: str, channel: str, role: Role) -> str | None:
        return refusal(self.inv.slack, Who(user, channel, self._user_groups(user)), role)

    def _user_groups(self, user: str) -> frozenset[str]:
        if not needs_groups(self.inv.slack):
            return frozenset()
        now = time.monotonic()
        with self._lock:
            cached = self._groups.get(user)
            if cached and now - cached[0] < GROUP_CACHE_SECONDS:
                return cached[1]
        groups = set()
        for gid in {m for attr in ("viewers", "operators", "approvers") for m in getattr(self.inv.slack, attr)
                    if m.startswith("S")}:
            try:
                users: list[str] = self.client.usergroups_users_list(usergroup=gid).get("users", [])
            except Exception:  # an unreadable group grants nothing
                log.warning("cannot read Slack user group %s", gid)
                continue
            if user in users:
                groups.add(gid)
        with self._lock:
            self._groups[user] = (now, frozenset(groups))
        return frozenset(groups)

    def audit_refusal(self, user: str, source: str, action: str, target: str, reason: str) -> None:
        self.store.audit(actor=f"slack:{user}", source=source, action=action, target=target or "-",
                         result="refused", detail=reason)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.poster.close()
