"""The command line without a network: usage errors, config errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_check_config_prints_every_error_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "lasthop.yaml"
    bad.write_text(
        "routers:\n  r1: {driver: frr, adress: 198.18.7.11, lan: [198.51.100.0/27]}\n"
        "hosts:\n  web1: {address: 198.51.100.2}\n"
        "services:\n  www-a: {prefix: 198.51.100.33/27, router: r9, hosts: [web1]}\n"
    )
    assert main(["--config", str(bad), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "lasthop.yaml:2: routers.r1: unknown key 'adress' (did you mean 'address'?)" in err
    assert "lasthop.yaml:6: services.www-a.router: unknown router 'r9' (known: r1)" in err
    assert "lasthop.yaml:6: services.www-a" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) >= 3


def test_failover_of_an_unknown_name_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k"
    kh = tmp_path / "kh"
    key.write_text("")
    kh.write_text("")
    cfg = tmp_path / "lasthop.yaml"
    cfg.write_text(
        f"state_url: sqlite:///{tmp_path}/s.db\n"
        f"defaults: {{username: ops, key_file: {key}, known_hosts: {kh}}}\n"
        "routers:\n  r1: {driver: frr, address: 198.18.7.11, lan: [198.51.100.0/27]}\n"
        "hosts:\n  web1: {address: 198.51.100.2}\n  web2: {address: 198.51.100.3}\n"
        "services:\n  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}\n"
    )
    assert main(["--config", str(cfg), "failover", "www-q"]) == 2
    assert "www-q" in capsys.readouterr().err
    assert main(["--config", str(cfg), "failover", "www-a", "--to", "www-a"]) == 2
    assert "--to takes a host" in capsys.readouterr().err
    assert main(["--config", str(cfg), "history"]) == 0
    assert "(no audit records)" in capsys.readouterr().out


def test_bad_usage_exits_2() -> None:
    with pytest.raises(SystemExit) as e:
        main(["failover"])
    assert e.value.code == 2


@pytest.mark.parametrize(("argv", "says"), [
    (["demo", "--prefix", "Bad!"], "bad lab prefix 'Bad!'"),
    (["demo", "--prefix", "zq", "--slot", "999"], "bad lab slot 999: must be 0..255"),
])
def test_demo_refuses_a_bad_lab_name_and_builds_nothing(argv: list[str], says: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from lab.state import DEFAULT_STATE_ROOT

    assert main(argv) == 1
    err = capsys.readouterr().err
    # Root is checked first: without it, that is the one problem named.
    assert err.startswith("lasthop demo: ")
    assert (says if os.geteuid() == 0 else "the lab needs root") in err
    assert not (Path(DEFAULT_STATE_ROOT) / "zq").exists()


def _inventory(tmp_path: Path, *, key: bool = True) -> Path:
    kh = tmp_path / "kh"
    kh.write_text("")
    if key:
        (tmp_path / "k").write_text("")
    cfg = tmp_path / "lasthop.yaml"
    cfg.write_text(
        f"state_url: sqlite:///{tmp_path}/s.db\n"
        f"defaults: {{username: ops, key_file: {tmp_path}/k, known_hosts: {kh}}}\n"
        "routers:\n  r1: {driver: frr, address: 198.18.7.11, lan: [198.51.100.0/27]}\n"
        "hosts:\n  web1: {address: 198.51.100.2}\n  web2: {address: 198.51.100.3}\n"
        "services:\n  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}\n"
    )
    return cfg


@pytest.mark.parametrize("order", ["before", "after"])
def test_config_goes_before_or_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  order: str) -> None:
    cfg = _inventory(tmp_path)
    for command in (["history"], ["check-config"], ["maintenance", "web1", "off"]):
        argv = ["--config", str(cfg), *command] if order == "before" else [*command, "--config", str(cfg)]
        assert main(argv) == 0, command
    out = capsys.readouterr().out
    assert "(no audit records)" in out and "router r1" in out and "web1 was not in maintenance" in out


def test_config_after_the_command_wins_over_one_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _inventory(tmp_path)
    assert main(["--config", str(tmp_path / "nowhere.yaml"), "history", "--config", str(cfg)]) == 0
    assert main(["--config", str(cfg), "history", "--config", str(tmp_path / "nowhere.yaml")]) == 2
    assert "nowhere.yaml does not exist" in capsys.readouterr().err


def test_no_inventory_anywhere_names_every_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LASTHOP_CONFIG", raising=False)
    monkeypatch.setattr("lab.state.DEFAULT_STATE_ROOT", tmp_path / "no-lab")
    assert main(["history"]) == 2
    err = capsys.readouterr().err
    assert "no inventory found" in err
    for place in ("--config FILE: not given", "$LASTHOP_CONFIG: not set", "config/lasthop.yaml",
                  str(tmp_path / "no-lab" / "lh" / "lasthop.yaml")):
        assert place in err


def test_a_missing_key_file_stops_only_the_commands_that_log_in(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _inventory(tmp_path, key=False)
    assert main(["history", "--config", str(cfg)]) == 0
    assert main(["maintenance", "web1", "off", "--config", str(cfg)]) == 0
    assert main(["slack-manifest", "--config", str(cfg)]) == 0
    assert main(["check-config", "--config", str(cfg)]) == 0
    captured = capsys.readouterr()
    assert "warning: lasthop.yaml:2: defaults.key_file: key_file" in captured.err  # check-config says so
    for command, name in ((["status"], "status"), (["failover", "www-a", "--dry-run"], "failover"),
                          (["maintenance", "web1", "on"], "maintenance on"),
                          (["check-config", "--connect"], "check-config --connect")):
        assert main([*command, "--config", str(cfg)]) == 2, command
        err = capsys.readouterr().err
        assert f"key_file {tmp_path}/k does not exist" in err
        assert f"lasthop {name} logs in to devices and needs that file; nothing was done" in err
    assert main(["history", "--config", str(cfg)]) == 0
    audit = capsys.readouterr().out.splitlines()  # the refused commands did nothing, so logged nothing
    assert [line.split("] ", 1)[1] for line in audit if "] " in line] == ["maintenance web1: off"]


@pytest.mark.parametrize(("given", "says"), [
    ("10", "--for needs a unit: 10m, 2h, 30s (got '10')"),
    ("1.5", "--for needs a unit: 10m, 2h, 30s (got '1.5')"),
    ("10x", "--for: '10x' is not a duration"),
    ("10s", "--for: a maintenance window lasts from 1m to 7 days"),
])
def test_maintenance_for_needs_a_unit_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          given: str, says: str) -> None:
    cfg = _inventory(tmp_path)
    assert main(["maintenance", "web1", "on", "--for", given, "--config", str(cfg)]) == 2
    assert says in capsys.readouterr().err
    assert main(["history", "--config", str(cfg)]) == 0
    assert "(no audit records)" in capsys.readouterr().out
