"""What a health-check scheduler runs and hands on: the job of one target, and the callbacks.

The scheduler itself is `LoopScheduler` (bot/health/loop_scheduler.py): one asyncio loop that
schedules every target and runs its check, one writer thread that hands each result to the
consumer. Its contract, which the daemon relies on:

* at most one check per target is ever in flight, so results per target arrive in order;
* the consumer decides the next delay from the very result it just saw (`set_next` inside
  `on_result`: fast while in doubt), and that delay is the one used;
* a slow or black-holed host delays only its own target;
* `on_result` is never called concurrently, so the consumer (state machines, the store) needs
  no locks; `call_soon` hands other threads' work to that same writer thread.

(Until 3 December 2026 this module held `CheckScheduler`, one APScheduler `date` job per check
in a thread pool: it peaked near 1,400 checks a second on two cores; see bench/README.md.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.health.machine import TargetKey

# How many recent lateness samples p50 and max are computed over.
LATENESS_SAMPLES = 1024
# A check's exception becomes its failure reason, cut so one odd error cannot flood a Slack thread.
DETAIL_MAX = 200


@dataclass(frozen=True)
class CheckJob:
    key: TargetKey
    interval: float
    fast_interval: float
    timeout: float


RunCheck = Callable[[CheckJob], tuple[bool, str]]
OnResult = Callable[[CheckJob, bool, str, float], None]
