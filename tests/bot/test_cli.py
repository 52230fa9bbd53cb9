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
