"""The one entry point: `python -m bench ...` and `lasthop bench ...` both call main().

Exit status: 0 done, 1 the benchmark failed to run, 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import BenchError, Benchmark, load, names
from bench import results as rs

OK, FAILED, USAGE = 0, 1, 2

USAGE_TEXT = """usage: python -m bench NAME [--tiny] [--out DIR] [--SETTING VALUE ...]
       python -m bench --list
       python -m bench render [--dir DIR]
(`lasthop bench ...` takes the same arguments; `python -m bench NAME --help` lists NAME's settings)"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE_TEXT)
        return OK if args else USAGE
    if args[0] in ("--list", "-l"):
        return _list()
    if args[0] == "render":
        from bench import render

        return render.main(args[1:])
    if args[0].startswith("-"):
        print(f"unknown option {args[0]!r}\n{USAGE_TEXT}", file=sys.stderr)
        return USAGE
    try:
        bench = load(args[0])
    except BenchError as e:
        print(str(e), file=sys.stderr)
        return USAGE
    parser = settings_parser(bench)
    ns = parser.parse_args(args[1:])
    try:
        settings = make_settings(bench, ns)
    except (TypeError, ValueError) as e:
        print(f"{bench.name}: bad settings: {e}", file=sys.stderr)
        return USAGE
    try:
        result, path = run_one(bench, settings, ns.out)
    except KeyboardInterrupt:
        print(f"{bench.name}: interrupted; no result written", file=sys.stderr)
        return FAILED
    except (OSError, RuntimeError, rs.ResultError) as e:
        print(f"{bench.name}: failed: {e}", file=sys.stderr)
        return FAILED
    print(summary(result))
    print(f"written: {path} (and {path.parent / (bench.name + '.json')})")
    return OK


def _list() -> int:
    for name in names():
        try:
            print(f"{name:16} {load(name).summary}")
        except BenchError as e:
            print(f"{name:16} (broken: {e})")
    return OK


def run_one(bench: Benchmark, settings: Any, out: Path | None = None) -> tuple[rs.Result, Path]:
    """Run one benchmark and write its record; returns the record and the timestamped file."""
    machine = rs.machine_info()  # before the run: the load average is the one the run started under
    when, start = rs.now()
    measurement = bench.run(settings)
    result = rs.Result.of(bench.name, measurement, machine=machine, settings=_jsonable(dataclasses.asdict(settings)),
                          when=when, seconds=round(time.monotonic() - start, 3))
    return result, rs.write(result, out or rs.RESULTS_DIR)


def summary(r: rs.Result) -> str:
    lines = [f"{r.name}: {r.metric}: median {r.median:.4g} {r.unit} (min {r.min:.4g}, max {r.max:.4g}, "
             f"{r.repetitions} repetition{'s' if r.repetitions != 1 else ''}); load average at start "
             f"{r.machine.load_average[0]:.2f} on {r.machine.cpus} CPUs"]
    for t in r.targets:
        sign = ">=" if t.at_least else "<="
        verdict = "met" if t.met else f"MISSED by {t.missed_by():.0%}"
        lines.append(f"  target {t.name}: {t.measured:.4g} {t.unit} (target {sign} {t.target:g}): {verdict}")
    lines.extend(f"  note: {n}" for n in r.notes)
    return "\n".join(lines)


def settings_parser(bench: Benchmark) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m bench {bench.name}", description=bench.summary)
    parser.add_argument("--tiny", action="store_true", help="the test suite's size: seconds, no lab")
    parser.add_argument("--out", type=Path, default=None, help=f"results directory (default {rs.RESULTS_DIR})")
    hints = typing.get_type_hints(bench.settings)
    defaults = bench.settings()
    for f in dataclasses.fields(bench.settings):
        kind = hints[f.name]
        opt = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{f.metadata.get('help', '')} (default {_show(default)})".strip()
        if kind is bool:
            parser.add_argument(opt, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(opt, dest=f.name, type=_converter(kind, f.name), default=None, metavar="VALUE",
                                help=help_text)
    return parser


def make_settings(bench: Benchmark, ns: argparse.Namespace) -> Any:
    base = bench.tiny() if ns.tiny else bench.settings()
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(bench.settings) if getattr(ns, f.name) is not None}
    return dataclasses.replace(base, **given)  # __post_init__ validates and raises ValueError


def _converter(kind: Any, name: str) -> Any:
    if kind in (int, float, str):
        return kind
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if item in (int, float, str):
            def parse(text: str) -> tuple[Any, ...]:
                return tuple(item(x) for x in text.split(",") if x.strip())
            return parse
    raise BenchError(f"setting {name}: type {kind!r} has no command-line form (use int, float, str, bool or "
                     "a tuple of one of them)")


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
