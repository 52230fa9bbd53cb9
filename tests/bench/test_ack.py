"""bench ack at its tiny size: signed slash commands through lasthop's endpoint during a move.

No assertion is about speed: that every command was answered 200 while the move ran, and the
record is well formed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import ack, load
from bench import results as rs
from bench.cli import run_one


def test_tiny_run_answers_every_command_during_the_move(tmp_path: Path) -> None:
    bench = load("ack")
    result, path = run_one(bench, bench.tiny(), tmp_path)
    assert rs.read(path) == result == rs.read(tmp_path / "ack.json")
    assert result.repetitions == bench.tiny().commands * bench.tiny().rounds  # one sample per command
    assert result.details["not_200"] == 0
    assert result.details["overlapped"] == [True]  # the move ran from before the first to after the last
    [round_] = result.details["rounds"]
    assert round_["statuses"] == [200] * bench.tiny().commands and len(round_["handler"]) == bench.tiny().commands
    assert set(result.stages) == {"handler", "connection_and_wait"}
    assert [t.name for t in result.targets] == ["ack p99"]
    assert result.details["p50"] <= result.details["p99"] <= result.details["max"]


def test_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="commands"):
        ack.Settings(commands=0)
    with pytest.raises(ValueError, match="move_seconds"):
        ack.Settings(move_seconds=0.0)
