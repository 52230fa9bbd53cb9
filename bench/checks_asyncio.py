"""The checks benchmark run by the prototype asyncio checker (bench/_async_checker.py), for comparison.

Same endpoints, server, ladder and figures as `checks`; only the checker differs. Its record
is `checks_asyncio.json`, so the table shows both designs side by side.
"""

from __future__ import annotations

from bench import _async_checker
from bench.checks import Settings, measure, plot
from bench.results import Measurement

SUMMARY = "health-check scale, prototype: one asyncio loop schedules and runs the checks (not lasthop's path)"

__all__ = ["SUMMARY", "Settings", "plot", "run"]


def run(settings: Settings) -> Measurement:
    m = measure(settings, _async_checker.engine, "asyncio prototype")
    m.notes.insert(0, "prototype checker (bench/_async_checker.py), not lasthop's code path")
    return m
