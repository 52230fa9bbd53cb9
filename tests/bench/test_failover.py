"""bench failover's pure parts: the client's outage window, keepalived's configuration, the settings."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from bench import _keepalived as ka
from bench import drain, failover, load
from bench import results as rs
from bench.failover import Answer, window

V = "198.51.100.33"


def answers(*rows: tuple[float, float, str | None]) -> list[Answer]:
    return [Answer(V, sent, done, host, None if host else "timeout") for sent, done, host in rows]


def test_the_window_ends_at_the_first_answer_from_another_host() -> None:
    seen = answers((9.0, 9.01, "web1"), (10.0, 10.5, None), (10.2, 10.21, None), (10.4, 10.41, "web2"),
                   (10.6, 10.61, "web2"))
    w = window(seen, V, 10.0, "web1")
    assert w is not None
    assert w.restored == pytest.approx(0.41) and w.settled == pytest.approx(0.41)
    assert w.failures == 2 and w.last_old is None  # the answer from web1 came before the break


def test_a_time_out_ending_after_the_restore_does_not_move_the_settled_time() -> None:
    # Sent into the outage at 10.3, it times out at 11.3, long after web2 answers from 10.4 on.
    seen = answers((10.3, 11.3, None), (10.4, 10.41, "web2"), (10.5, 10.51, "web2"))
    w = window(seen, V, 10.0, "web1")
    assert w is not None and w.settled == pytest.approx(0.41)


def test_failures_after_the_first_new_answer_push_settled_later() -> None:
    # Make before break: for a moment both next hops exist and some requests still reach dead web1.
    seen = answers((10.4, 10.41, "web2"), (10.5, 10.9, None), (10.6, 10.61, "web2"))
    w = window(seen, V, 10.0, "web1")
    assert w is not None and w.restored == pytest.approx(0.41) and w.settled == pytest.approx(0.61)


def test_answers_from_the_broken_host_are_not_a_restore_and_none_at_all_is_none() -> None:
    seen = answers((10.1, 10.11, "web1"), (10.2, 10.7, None))
    assert window(seen, V, 10.0, "web1") is None
    w = window([*seen, *answers((10.8, 10.81, "web3"))], V, 10.0, "web1")
    assert w is not None and w.last_old == pytest.approx(0.11) and w.restored == pytest.approx(0.81)
    assert window(seen, "198.51.100.240", 10.0, "web1") is None  # another VIP's answers do not count


def test_keepalived_config_tracks_the_http_check_with_the_run_settings(tmp_path: Path) -> None:
    conf = ka.config(host="web2", priority=100, interface="eth0", address=IPv4Interface("198.51.100.29/27"),
                     fifo=tmp_path / "web2.fifo", check_url="http://198.51.100.240:80/",
                     vrrp=ka.VrrpSettings(advert_int=1.0, interval=1, fall=2, rise=2, timeout=0.5))
    assert "priority 100" in conf and "advert_int 1\n" in conf
    assert "interval 1\n" in conf and "fall 2\n" in conf and "rise 2\n" in conf
    assert f'"{ka.CURL} --silent --fail --max-time 0.5 --output /dev/null http://198.51.100.240:80/"' in conf
    assert "198.51.100.29/27 dev eth0" in conf and f"notify_fifo {tmp_path / 'web2.fifo'}" in conf
    assert conf.count("{") == conf.count("}")
    with pytest.raises(ValueError, match="priority"):
        ka.config(host="web1", priority=255, interface="eth0", address=IPv4Interface("198.51.100.29/27"),
                  fifo=tmp_path / "f", check_url="http://x/", vrrp=ka.VrrpSettings())


def test_fifo_lines_of_our_instance_give_the_state() -> None:
    assert ka.parse_fifo_line(f'INSTANCE "{ka.INSTANCE}" MASTER 100') == "MASTER"
    assert ka.parse_fifo_line(f'INSTANCE "{ka.INSTANCE}" FAULT 150') == "FAULT"
    assert ka.parse_fifo_line('INSTANCE "someone_else" MASTER 100') is None
    assert ka.parse_fifo_line('GROUP "g" MASTER') is None and ka.parse_fifo_line("") is None


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"interval": 1.5}, "whole number"),
    ({"timeout": 1.0}, "timeout"),
    ({"breaks": ("service", "power")}, "breaks"),
    ({"breaks": ()}, "breaks"),
    ({"repetitions": 0}, "repetitions"),
    ({"fast_interval": 2.0}, "fast_interval"),
    ({"lab_prefix": "Not A Prefix"}, "prefix"),
])
def test_settings_refuse_what_cannot_run(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        failover.Settings(**kwargs)  # type: ignore[arg-type]


def test_the_keepalived_service_is_outside_every_lab_address() -> None:
    from lab.plan import LabPlan

    plan = LabPlan("lt", 7)
    used = set(plan.all_addresses())
    assert failover.K_VIP not in used and failover.VRRP_ADDRESS.ip not in used
    assert not any(failover.K_PREFIX.overlaps(s.prefix) for s in plan.services)
    assert not failover.K_PREFIX.overlaps(drain.BLOCK)


def test_the_summary_table_has_a_row_per_break_with_both_tools_and_the_verdict() -> None:
    def row(kind: str, lasthop: float, keepalived: float) -> dict[str, object]:
        stages = dict.fromkeys(failover.LASTHOP_STAGES, 0.01)
        return {"break": kind, "lasthop": {"outage": lasthop, "settled": lasthop, "decided_to_fib": 0.2,
                                           "decided_to_restored": 0.3, **stages},
                "keepalived": {"outage": keepalived, "settled": keepalived, "detect": 1.0, "takeover": 0.5,
                               "arp": 0.01}}

    m = failover.summarise(failover.Settings(repetitions=1), [row("service", 1.0, 2.0), row("link", 1.0, 4.0)],
                           "Keepalived v2.2.7 (01/16,2022)")
    assert [t.met for t in m.targets] == [False, True, False]  # 0.5 > 0.35; 0.25 <= 0.5; 200 ms > 150 ms
    machine = rs.Machine(2, "cpu", "kernel", "3.11", "abcdef0123-dirty", (0.5, 0.4, 0.3))
    result = rs.Result.of("failover", m, machine=machine, settings={}, when=datetime(2026, 12, 3, tzinfo=UTC),
                          seconds=1.0)
    table = failover.summary_table(result)
    assert table.splitlines()[0].startswith("| Break | lasthop, outage | Keepalived v2.2.7, outage |")
    service, link = (line for line in table.splitlines() if line.startswith(("| service", "| link")))
    assert "**1.00 s**" in service and "**2.00 s**" in service and "0.50 (≤ 0.35): **missed by 43%**" in service
    assert "**4.00 s**" in link and "0.25 (≤ 0.5): met" in link
    assert "commit abcdef0-dirty" in table
    assert load("failover").summary_table is not None  # render --readme finds it
