"""What every Slack listener needs, built once per process and handed to them by Bolt's context."""

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
from bot.chat import Actor, Message
from bot.commands import CommandNames
from bot.inventory import SlackSettings
from bot.web import Activity
from bot.workflow import Workflow
from handlers.poster import Poster

log = logging.getLogger("lasthop.slack")
GROUP_CACHE_SECONDS = 300.0
ACK_FIRST_WAIT = 0.25  # seconds work after an ack may wait for the other requests' acks
KEY = "lasthop"  # where the context sits in Bolt's per-request context
FAILED = Message.of(":x: lasthop hit an error and could not finish this. Check the routes with the status "
                    "command before trying again; the details are in lasthop's log.")


@dataclass
class SlackAccess:
    """Slack's roles (bot.access), with the user groups a role may name looked up and cached."""

    settings: SlackSettings
    client: WebClient
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def quick(self, actor: Actor, role: Role) -> str | None:
        """The check that needs no network (no user group named): usable before the ack."""
        if needs_groups(self.settings):
            return None
        return refusal(self.settings, Who(actor.id, actor.channel), role)

    def refusal(self, actor: Actor, role: Role) -> str | None:
        if actor.backend != "slack":
            return "only Slack users act through the Slack app"
        return refusal(self.settings, Who(actor.id, actor.channel, self._user_groups(actor.id)), role)

    def _user_groups(self, user: str) -> frozenset[str]:
        if not needs_groups(self.settings):
            return frozenset()
        now = time.monotonic()
        with self._lock:
            cached = self._groups.get(user)
            if cached and now - cached[0] < GROUP_CACHE_SECONDS:
                return cached[1]
        groups = set()
        complete = True
        for gid in {m for attr in ("viewers", "operators", "approvers") for m in getattr(self.settings, attr)
                    if m.startswith("S")}:
            try:
                users: list[str] = self.client.usergroups_users_list(usergroup=gid).get("users", [])
            except Exception:  # an unreadable group grants nothing, this time
                log.warning("cannot read Slack user group %s", gid)
                complete = False
                continue
            if user in users:
                groups.add(gid)
        if complete:  # one Slack error must not lock an operator out for the whole cache time
            with self._lock:
                self._groups[user] = (now, frozenset(groups))
        return frozenset(groups)


@dataclass
class SlackContext:
    workflow: Workflow
    client: WebClient  # Bolt's own (acks, views.open); channel posts go through `poster`
    poster: Poster
    access: SlackAccess
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "slack-work"))
    # The HTTP server's requests in flight (HTTP mode): work waits for the acks first, boundedly.
    activity: Activity | None = None

    @property
    def names(self) -> CommandNames:
        return self.workflow.inv.slack.commands

    def submit(self, fn: Callable[[], Any], on_error: Callable[[Message], Any] | None = None) -> Future[Any]:
        """Work after the ack: SSH, the database and health checks never run before it.

        Work that fails is logged with its traceback, and the person is told in one plain line
        (`on_error`), never left looking at "Planning…" and never shown the exception.
        """
        def guarded() -> Any:
            if self.activity is not None:
                # Acks first: a burst of requests is acknowledged before any of its work starts. The
                # bound keeps a steady stream of requests from holding the work back for longer.
                self.activity.wait_quiet(ACK_FIRST_WAIT)
            try:
                return fn()
            except Exception:
                log.exception("Slack background work failed")
                if on_error is not None:
                    try:
                        on_error(FAILED)
                    except Exception:
                        log.exception("telling the person about the failure failed too")
                raise
        return self.executor.submit(guarded)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.poster.close()


def context_of(context: Any) -> SlackContext:
    ctx = context[KEY]
    assert isinstance(ctx, SlackContext)
    return ctx
