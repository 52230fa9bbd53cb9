"""lasthop's benchmarks: `python -m bench NAME`, `python -m bench --list`, `python -m bench render`.

A benchmark is a module `bench/<name>.py` (name: lower case, digits, underscores) with:

* `SUMMARY`: one line for --list;
* `Settings`: a dataclass whose fields all have defaults (the full-size run). Each field is a
  command-line option (`--field-name VALUE`; int, float, str, bool, or tuple of int/float given
  comma-separated), and a classmethod `tiny()` returns the settings the test suite runs it at
  (a few seconds, no lab);
* `run(settings) -> results.Measurement`: measure and return the raw samples, the stages, the
  targets judged, notes and details. The runner adds the name, time, machine and settings and
  writes the record (see results.py);
* optionally `plot(result, figure)`: draw the benchmark's own chart on a matplotlib Figure;
* optionally `summary_table(result) -> str`: a Markdown table of its own, which `render --readme`
  puts in the README above the table of every benchmark.

Modules whose name starts with an underscore are helpers, never benchmarks.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, is_dataclass
from types import ModuleType
from typing import Any

from bench.results import Measurement, Result

# Framework modules: not benchmarks, whatever they define.
_FRAMEWORK = frozenset({"cli", "render", "results"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class BenchError(Exception):
    """A benchmark that does not exist or does not follow the interface."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    settings: type[Any]
    run: Callable[[Any], Measurement]
    plot: Callable[[Result, Any], None] | None
    summary_table: Callable[[Result], str] | None = None

    def tiny(self) -> Any:
        return self.settings.tiny()


def names() -> list[str]:
    """Every benchmark module's name, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if _NAME.match(m.name) and m.name not in _FRAMEWORK and not m.ispkg)


def load(name: str) -> Benchmark:
    if name not in names():
        known = ", ".join(names()) or "none"
        raise BenchError(f"no benchmark named {name!r} (known: {known})")
    module = importlib.import_module(f"bench.{name}")
    return _describe(name, module)


def _describe(name: str, module: ModuleType) -> Benchmark:
    settings = getattr(module, "Settings", None)
    run = getattr(module, "run", None)
    summary = getattr(module, "SUMMARY", None)
    if not (isinstance(settings, type) and is_dataclass(settings) and callable(getattr(settings, "tiny", None))):
        raise BenchError(f"bench/{name}.py: Settings must be a dataclass with a tiny() classmethod")
    if not callable(run) or not isinstance(summary, str):
        raise BenchError(f"bench/{name}.py: needs run(settings) and a SUMMARY string")
    plot = getattr(module, "plot", None)
    table = getattr(module, "summary_table", None)
    return Benchmark(name, summary, settings, run, plot if callable(plot) else None,
                     table if callable(table) else None)
