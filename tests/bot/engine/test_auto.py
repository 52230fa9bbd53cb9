"""Automatic failover decisions: the plain move, and each guardrail on its own.

Every guardrail test starts from the situation of `test_plain_move...` (web1 down for
www-a, web2 and web3 up, web2 already serving www-b) and changes one thing, so removing
that rule makes it fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.fakes import ManualClock as Clock
from support.fakes import inventory_from_text

from bot.engine.auto import AutoDecision, AutoPolicy
from bot.engine.model import MoveRequest
from bot.health.state import Health
from bot.inventory import Inventory
from bot.values import replace

INVENTORY = """
defaults: {username: ops, key_file: /k, known_hosts: /kh}
routers:
  r1: {driver: frr, address: 198.18.7.11, lan: [192.0.2.0/27]}
hosts:
  web1: {address: 192.0.2.2}
  web2: {address: 192.0.2.3}
  web3: {address: 192.0.2.4}
  web4: {address: 192.0.2.5}
services:
  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2, web3], vips: [198.51.100.33], auto_failover: true}
  www-b: {prefix: 198.51.100.64/27, router: r1, hosts: [web2, web3, web1], vips: [198.51.100.65], auto_failover: true}
  www-c: {prefix: 198.51.100.96/27, router: r1, hosts: [web1, web2], vips: [198.51.100.97]}
policy:
  auto_failover: {enabled: true, max_moves: 3, window: 1h, hold_down: 10m, partition_threshold: 0.5}
"""

U, D = Health.UP, Health.DOWN


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory_from_text(tmp_path, INVENTORY)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


def _auto(inv: Inventory, **changes: Any) -> Inventory:
    """`inv` with policy.auto_failover fields replaced."""
    auto = replace(inv.policy.auto_failover, **changes)
    return replace(inv, policy=replace(inv.policy, auto_failover=auto))


def _health(**states: Health) -> dict[tuple[str, str], Health]:
    """Every (service, host) UP, except `web1_www_a=DOWN`-style overrides."""
    health = {(s, h): U for s in ("www-a", "www-b", "www-c") for h in ("web1", "web2", "web3", "web4")}
    for name, state in states.items():
        host, _, service = name.partition("_")
        health[(service.replace("_", "-"), host)] = state
    return health


SERVING: Mapping[str, str | None] = {"www-a": "web1", "www-b": "web2", "www-c": "web1"}


def _decide(policy: AutoPolicy, service: str = "www-a", **kw: Any) -> AutoDecision:
    args: dict[str, Any] = {
        "health": _health(web1_www_a=D), "serving": SERVING, "flapping": set(), "maintenance": set(),
    }
    args.update(kw)
    return policy.decide(service, **args)


# ---------------------------------------------------------------- decide()


def test_plain_move_goes_to_the_healthy_host_serving_fewest_other_services(inv: Inventory, clock: Clock) -> None:
    # web2 (www-a's second choice) already serves www-b; web3 serves nothing: www-a goes to web3,
    # so that the move neither piles everything onto web2 nor needs approval for doing so.
    d = AutoPolicy(inv, clock=clock).decide(
        "www-a", health=_health(web1_www_a=D), serving=SERVING, flapping=set(), maintenance=set()
    )
    assert d.action == "move" and d.service == "www-a"
    assert d.request == MoveRequest(
        kind="service", target="www-a", actor="lasthop", source="auto", to_host="web3", reason=d.reason
    )
    assert d.reason == "web1 down: lasthop moves www-a to web3 automatically"


def test_preference_breaks_a_tie_in_load(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(inv, clock=clock), serving={**SERVING, "www-c": "web3"})
    assert d.request is not None and d.request.to_host == "web2"


def test_a_move_onto_the_last_healthy_host_goes_ahead_and_says_it_concentrates(inv: Inventory, clock: Clock) -> None:
    # web3 is down for www-a only (so the partition guard stays quiet): web2, which serves every
    # other service, is the only home; one host serving everything beats www-a staying down.
    serving = {**SERVING, "www-c": "web2"}
    d = _decide(AutoPolicy(inv, clock=clock), serving=serving, health=_health(web1_www_a=D, web3_www_a=D))
    assert d.action == "move" and d.request is not None and d.request.to_host == "web2"
    assert d.reason == (
        "web1 down: lasthop moves www-a to web2 automatically; "
        "afterwards web2 serves every service: allowed, because web1 is down for www-a"
    )
    assert d.request.reason == d.reason


def test_nothing_to_decide_while_the_active_host_is_not_down_for_the_service(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(inv, clock=clock)
    # web1 down for www-b only: www-a on web1 is fine; www-b is served by web2.
    assert policy.decide(
        "www-a", health=_health(web1_www_b=D), serving=SERVING, flapping=set(), maintenance=set()
    ).action == "none"
    # Only in doubt: FALLING is not DOWN.
    assert policy.decide(
        "www-a", health=_health(web1_www_a=Health.FALLING), serving=SERVING, flapping=set(), maintenance=set()
    ).action == "none"
    # Who serves it is unknown: not a failover, a human's job.
    unknown = policy.decide(
        "www-a", health=_health(web1_www_a=D), serving={"www-a": None}, flapping=set(), maintenance=set()
    )
    assert (unknown.action, unknown.request) == ("none", None)


def test_hold_when_auto_failover_is_off_in_the_policy(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(_auto(inv, enabled=False), clock=clock))
    assert d == _hold("www-a", "automatic failover is off for www-a: suggested lasthop failover www-a", routine=True)


def test_hold_when_auto_failover_is_off_for_the_service(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(inv, clock=clock), "www-c", health=_health(web1_www_c=D))
    assert d == _hold("www-c", "automatic failover is off for www-c: suggested lasthop failover www-c", routine=True)


def test_the_switch_starts_from_the_inventory_and_flips_at_run_time(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(inv, clock=clock)
    marked = [s.name for s in inv.services.values() if s.auto_failover]
    assert policy.auto_on() == marked and "www-c" not in marked
    assert policy.set_auto(False) == []
    assert _decide(policy).routine and _decide(policy).action == "hold"
    assert policy.set_auto(True, "www-c") == ["www-c"]
    assert _decide(policy, "www-c", health=_health(web1_www_c=D)).action == "move"
    assert _decide(policy).action == "hold"  # www-a stays off: only www-c was switched on
    assert policy.set_auto(True) == list(inv.services)
    assert policy.set_auto(False, "www-a") == [s for s in inv.services if s != "www-a"]


def test_the_switch_turns_on_a_policy_that_the_inventory_left_off(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, enabled=False), clock=clock)
    assert policy.auto_on() == []
    policy.set_auto(True)
    assert _decide(policy).action == "move"


def test_the_switch_refuses_an_unknown_service_and_changes_nothing(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(inv, clock=clock)
    before = policy.auto_on()
    with pytest.raises(KeyError):
        policy.set_auto(False, "www-z")
    assert policy.auto_on() == before


def test_hold_when_more_than_the_partition_threshold_of_hosts_fail_at_once(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(inv, clock=clock)
    # 3 of 4 > 0.5: more likely lasthop is cut off than three hosts died together.
    d = _decide(policy, health=_health(web1_www_a=D, web3_www_b=D, web4_www_a=D))
    assert d == _hold("www-a", "3 of 4 hosts failed at once: lasthop suspects its own network and moves nothing")
    # Exactly half is not more than half; web1 down twice counts as one host.
    ok = _decide(policy, health=_health(web1_www_a=D, web1_www_b=D, web4_www_a=D))
    assert ok.action == "move"
    # Hosts cut off together fail a check apart: one still in doubt counts as failing.
    doubt = _decide(policy, health=_health(web1_www_a=D, web3_www_b=Health.FALLING, web4_www_a=D))
    assert doubt.action == "hold" and "3 of 4 hosts failed at once" in doubt.reason


def test_hold_when_a_router_is_unreachable(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(inv, clock=clock), routers_down={"r1"})
    assert d.action == "hold"
    assert "suspects its own network and moves nothing" in d.reason


def test_hold_when_the_active_host_is_flapping(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(inv, clock=clock), flapping={"web1"})
    assert d.action == "hold" and "web1 is flapping" in d.reason and d.flapping


def test_hold_after_max_moves_within_the_window_and_move_again_once_they_age_out(
    inv: Inventory, clock: Clock
) -> None:
    policy = AutoPolicy(inv, clock=clock)
    for at in (clock.now - 3000, clock.now - 2000, clock.now - 10):
        policy.record_move("www-b", at=at)
    assert policy.recent_moves() == 3
    d = _decide(policy)
    assert d == _hold("www-a", "3 automatic moves in the last 1h: waiting for a human")
    clock.now += 601  # the oldest is now more than an hour old
    assert policy.recent_moves() == 2
    assert _decide(policy).action == "move"


def test_record_move_without_a_time_uses_the_clock(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, max_moves=1), clock=clock)
    policy.record_move("www-a")
    assert _decide(policy).action == "hold"
    clock.now += 3600
    assert _decide(policy).action == "move"


def test_a_queued_move_counts_from_when_it_is_queued_and_a_change_keeps_it(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, max_moves=1), clock=clock)
    policy.record_move("www-b", to_host="web3")
    assert _decide(policy).action == "hold"  # still running: counted all the same
    policy.settle("www-b", changed=True)
    assert policy.recent_moves() == 1 and _decide(policy).action == "hold"


def test_a_queued_move_that_changed_nothing_gives_its_count_back(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, max_moves=2), clock=clock)
    policy.record_move("www-b", at=clock.now - 3000)  # an earlier move of the same service, done
    policy.record_move("www-b")
    assert _decide(policy).action == "hold"
    policy.settle("www-b", changed=False)
    assert policy.recent_moves() == 1 and _decide(policy).action == "move"
    clock.now += 601
    assert policy.recent_moves() == 0  # what was given back is the refused move, not the earlier one


def test_a_queued_move_counts_for_its_target_s_load_until_it_settles(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(inv, clock=clock)
    policy.record_move("www-c", to_host="web3")  # web3 is about to serve www-c; web2 serves www-b
    d = _decide(policy)
    assert d.request is not None and d.request.to_host == "web2"  # a tie: www-a's preference wins
    policy.settle("www-c", changed=False)
    d = _decide(policy)
    assert d.request is not None and d.request.to_host == "web3"


@pytest.mark.parametrize(
    ("change", "skipped"),
    [
        ({"health": _health(web1_www_a=D, web3_www_a=Health.RISING)}, "web3 rising"),
        ({"maintenance": {"web3"}}, "web3 in maintenance"),
        ({"flapping": {"web3"}}, "web3 flapping"),
    ],
)
def test_a_target_must_be_up_out_of_maintenance_and_not_flapping(
    inv: Inventory, clock: Clock, change: dict[str, Any], skipped: str
) -> None:
    policy = AutoPolicy(inv, clock=clock)
    # web3 would be chosen (it serves nothing); skipped, web2 takes www-a.
    d = _decide(policy, **change)
    assert d.action == "move" and d.request is not None and d.request.to_host == "web2"
    # Take web2 away too (down for this service only, so the partition guard stays quiet).
    health = change.get("health", _health(web1_www_a=D))
    assert isinstance(health, dict)
    d = _decide(policy, **{**change, "health": {**health, ("www-a", "web2"): D}})
    assert d == _hold("www-a", f"no healthy host to take www-a (web2 down, {skipped})")


def test_guards_apply_in_order_off_before_partition(inv: Inventory, clock: Clock) -> None:
    d = _decide(AutoPolicy(_auto(inv, enabled=False), clock=clock), routers_down={"r1"})
    assert d.reason.startswith("automatic failover is off")


# -------------------------------------------------------------- failback()


def _failback(policy: AutoPolicy, **kw: Any) -> AutoDecision:
    args: dict[str, Any] = {
        "health": _health(), "serving": {**SERVING, "www-a": "web2"},
        "healthy_since": {"web1": 0.0}, "maintenance": set(),
    }
    args.update(kw)
    return policy.failback("www-a", **args)


def test_failback_is_off_by_default(inv: Inventory, clock: Clock) -> None:
    assert inv.policy.auto_failover.failback is False
    d = _failback(AutoPolicy(inv, clock=clock))
    assert d.action == "none" and d.request is None


def test_failback_waits_for_the_hold_down_then_moves_home(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, failback=True), clock=clock)
    since = {"web1": clock.now - 599}
    early = _failback(policy, healthy_since=since)
    assert early.action == "none" and early.request is None
    assert "goes back after 10m" in early.reason
    clock.now += 1
    d = _failback(policy, healthy_since=since)
    assert d.action == "move"
    assert d.request == MoveRequest(
        kind="service", target="www-a", actor="lasthop", source="auto", to_host="web1", reason=d.reason,
        accepts=frozenset({"moves_from_healthy_host"}), accepted_by="policy auto_failover.failback",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"serving": SERVING},  # already home
        {"health": _health(web1_www_a=Health.RISING)},
        {"maintenance": {"web1"}},
        {"flapping": {"web1"}},
        {"healthy_since": {}},
    ],
)
def test_failback_needs_home_to_be_up_free_and_known_healthy(
    inv: Inventory, clock: Clock, change: dict[str, Any]
) -> None:
    policy = AutoPolicy(_auto(inv, failback=True), clock=clock)
    assert _failback(policy).action == "move"
    assert _failback(policy, **change).action == "none"


def test_failback_counts_against_the_move_cap(inv: Inventory, clock: Clock) -> None:
    policy = AutoPolicy(_auto(inv, failback=True, max_moves=1), clock=clock)
    policy.record_move("www-a")
    d = _failback(policy)
    assert d == _hold("www-a", "1 automatic move in the last 1h: waiting for a human")


def _hold(service: str, reason: str, *, routine: bool = False) -> AutoDecision:
    return AutoDecision("hold", service, reason, routine=routine)
