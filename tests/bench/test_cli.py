"""`python -m bench`: listing, settings from the command line, and clear refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import load, names
from bench.cli import main, make_settings, settings_parser

ROOT = Path(__file__).resolve().parents[2]


def test_helpers_and_framework_modules_are_not_benchmarks() -> None:
    found = names()
    assert "checks" in found and "checks_asyncio" in found
    assert {"ack", "click"} <= set(found)
    helpers = {"_httpd", "_async_checker", "_front", "_memory", "_slack_standin"}
    assert not {"cli", "render", "results", *helpers} & set(found)


def test_list_names_each_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == names()  # every one, by name, sorted
    assert any(line.startswith("checks ") and "health-check scale" in line for line in out.splitlines())


def test_unknown_benchmark_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nosuch"]) == 2
    assert "no benchmark named 'nosuch' (known: ack, checks, checks_asyncio, click" in capsys.readouterr().err


def test_settings_come_from_the_dataclass_fields() -> None:
    bench = load("checks")
    ns = settings_parser(bench).parse_args(["--tiny", "--sizes", "5,7", "--window", "1.5", "--workers", "4"])
    s = make_settings(bench, ns)
    assert (s.sizes, s.window, s.workers) == ((5, 7), 1.5, 4)
    assert s.rates == bench.tiny().rates  # the rest from tiny()
    assert make_settings(bench, settings_parser(bench).parse_args([])) == bench.settings()


def test_bad_settings_change_nothing_and_say_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "--tiny", "--sizes", "0", "--out", str(tmp_path)]) == 2
    assert "checks: bad settings: sizes must be 1 to 50,000" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_python_m_bench_runs_from_the_checkout() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and "checks_asyncio" in done.stdout
