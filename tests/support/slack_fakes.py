"""What the Slack listener tests call handlers with: Bolt's ack/respond/client as recorders, and a stub workflow.

The listeners (handlers/commands.py, actions.py, forms.py) are module-level functions that find
lasthop's SlackContext in Bolt's context under `handlers.context.KEY`. `Harness` builds one whose
workflow is a `StubWorkflow`: it records each call and returns a fixed `Answer` (the workflow itself
is tested in tests/bot/test_workflow.py). Work the listeners hand to `ctx.submit` runs on a real
thread pool; `Harness.drain()` waits for it, boundedly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.chat import Answer, Message
from bot.inventory import Inventory
from handlers.context import KEY, SlackAccess, SlackContext
from handlers.poster import Poster

ALICE, BOB, VIC, EVE = "U0ALICE", "U0BOB", "U0VIC", "U0EVE"  # operator, approver, viewer, nobody
OPS, ALERTS, ELSEWHERE = "C0OPS", "C0ALERTS", "C0RANDOM"
WAIT = 10.0  # seconds: the bound on every wait; nothing here should take more than a fraction of it
ROLES = f"""
slack:
  alert_channel: {ALERTS}
  channels: [{OPS}]
  roles:
    viewers: [{VIC}]
    operators: [{ALICE}]
    approvers: [{BOB}]
"""


class Calls:
    """A callable that records how it was called: Bolt's `ack` and `respond` in these tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append((args, kwargs))

    @property
    def texts(self) -> list[str]:
        """The text of each call, given by position (ack("…")) or as text=."""
        return [str(args[0]) if args else str(kwargs.get("text", "")) for args, kwargs in self.calls]

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        return [kwargs for _, kwargs in self.calls]


class FakeClient:
    """The WebClient methods the listeners use, recorded as (method, kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def views_open(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("views_open", kwargs))
        return {"ok": True}

    def chat_postEphemeral(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("chat_postEphemeral", kwargs))
        return {"ok": True, "message_ts": "1700000000.000900"}


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class StubWorkflow:
    """The workflow's face to the handlers: each call is recorded and answered with `answer`.

    `progress`: sent through the call's progress callback first, when it has one. `gate`: when set,
    a call waits for it (at most WAIT seconds) before answering, so a test can see what happened
    before the work finished. `error`: raised instead of answering.
    """

    inv: Inventory
    answer: Answer | None = field(default_factory=lambda: Answer(Message.of("the answer"), replace=True))
    progress: Message | None = None
    gate: threading.Event | None = None
    error: Exception | None = None
    calls: list[Call] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def _answer(self, method: str, *args: Any, **kwargs: Any) -> Answer | None:
        self.calls.append(Call(method, args, kwargs))
        report: Callable[[Message], None] | None = kwargs.get("progress")
        if self.progress is not None and report is not None:
            report(self.progress)
        if self.gate is not None:
            self.gate.wait(WAIT)
        self.finished.set()
        if self.error is not None:
            raise self.error
        return self.answer

    def status(self, *args: Any, **kwargs: Any) -> Answer | None:
        return self._answer("status", *args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Answer | None:
        return self._answer("request", *args, **kwargs)

    def maintenance(self, *args: Any, **kwargs: Any) -> Answer | None:
        return self._answer("maintenance", *args, **kwargs)

    def press(self, *args: Any, **kwargs: Any) -> Answer | None:
        return self._answer("press", *args, **kwargs)

    def audit_refusal(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call("audit_refusal", args, kwargs))

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]


class RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that keeps every future it hands out, so a test can wait for all the work."""

    def __init__(self) -> None:
        super().__init__(4, "slack-test-work")
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


@dataclass
class Harness:
    ctx: SlackContext
    workflow: StubWorkflow
    executor: RecordingExecutor
    client: FakeClient
    ack: Calls = field(default_factory=Calls)
    respond: Calls = field(default_factory=Calls)

    @property
    def context(self) -> dict[str, Any]:
        """Bolt's per-request context, as handlers.app's middleware fills it."""
        return {KEY: self.ctx}

    def settle(self) -> list[Future[Any]]:
        """Wait (at most WAIT seconds) for all the work handed to ctx.submit, whatever its end."""
        _, pending = wait(self.executor.futures, timeout=WAIT)
        assert not pending, f"{len(pending)} background job(s) still running after {WAIT}s"
        return list(self.executor.futures)

    def drain(self) -> list[Any]:
        """settle(), then the work's results, raising its errors."""
        return [f.result() for f in self.settle()]


@contextmanager
def harness(inv: Inventory, **stub: Any) -> Iterator[Harness]:
    """A SlackContext over `inv`'s Slack roles (real SlackAccess, no network) and a StubWorkflow."""
    client = FakeClient()
    workflow = StubWorkflow(inv, **stub)
    executor = RecordingExecutor()
    poster = Poster(client)  # type: ignore[arg-type]  # no message is posted: it never calls the client
    ctx = SlackContext(workflow, client, poster, SlackAccess(inv.slack, client),  # type: ignore[arg-type]
                       executor=executor)
    h = Harness(ctx, workflow, executor, client)
    try:
        yield h
    finally:
        if workflow.gate is not None:
            workflow.gate.set()
        ctx.close()
