"""`lasthop bench`: the same entry point as `python -m bench`, and a clear word without a checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.cli import main


def test_lasthop_bench_delegates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    assert "checks " in capsys.readouterr().out


def test_lasthop_bench_without_the_bench_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no bench/ here to fall back on
    for name in ("bench", "bench.cli"):
        monkeypatch.setitem(sys.modules, name, None)  # and none importable
    assert main(["bench", "--list"]) == 2
    err = capsys.readouterr().err
    assert "lasthop bench needs a lasthop checkout" in err and "Traceback" not in err
