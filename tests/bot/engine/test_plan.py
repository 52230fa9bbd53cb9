"""Planning and risk are pure: every rule is checked here without a network."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bot import plain
from bot.chat import Message
from bot.engine.live import find_drift
from bot.engine.model import MoveRequest, Plan, Refusal
from bot.engine.plan import make_plan
from bot.health.state import Health
from bot.inventory import Inventory
from bot.values import replace
from bot.views import plan_parts

A, B, D = (IPv4Network(p) for p in ("198.51.100.32/27", "198.51.100.64/27", "198.51.100.96/27"))
WEB = {n: IPv4Address(f"192.0.2.{n + 1}") for n in (1, 2, 3)}


def live(a: int | None = 1, b: int | None = 2, d: int | None = 1, extra_a: int | None = None):  # type: ignore[no-untyped-def]
    def hops(n: int | None, extra: int | None = None) -> frozenset[IPv4Address]:
        s = {WEB[n]} if n else set()
        if extra:
            s.add(WEB[extra])
        return frozenset(s)

    return {"r1": {A: hops(a, extra_a), B: hops(b)}, "r2": {D: hops(d)}}


def all_up(inv: Inventory, **overrides: Health) -> dict[tuple[str, str], Health]:
    h = {(s, f"web{n}"): Health.UP for s in inv.services for n in (1, 2, 3)}
    for key, state in overrides.items():
        svc, host = key.rsplit("__", 1)
        h[(svc.replace("_", "-"), host)] = state
    return h


def req(target: str, kind: str = "service", to: str | None = None) -> MoveRequest:
    return MoveRequest(kind=kind, target=target, actor="alice", source="cli", to_host=to)  # type: ignore[arg-type]


def test_service_goes_to_first_healthy_host_in_preference(inv: Inventory) -> None:
    health = all_up(inv, www_a__web1=Health.DOWN, www_a__web2=Health.DOWN)
    plan = make_plan(inv, req("www-a"), live(), health)
    (m,) = plan.moves
    assert (m.from_host, m.to_host, m.to_hop) == ("web1", "web3", WEB[3])
    assert plan.commands["r1"] == [
        "configure terminal", "ip route 198.51.100.32/27 192.0.2.4", "end",
        "configure terminal", "no ip route 198.51.100.32/27 192.0.2.2", "end",
        "write memory",  # r1 saves (frr's default): the plan shows every line the move will send
    ]
    assert plan.summary == ("www-a (198.51.100.32/27 on r1): web1 -> web3",)
    assert not plan.risky  # source down, target up, one prefix


def test_the_save_step_is_shown_only_where_the_engine_will_save(inv: Inventory) -> None:

    health = all_up(inv, www_a__web1=Health.DOWN, www_d__web1=Health.DOWN)
    assert make_plan(inv, req("www-a"), live(), health).commands["r1"][-1] == "write memory"
    assert "write memory" not in make_plan(inv, req("www-d"), live(), health).commands["r2"]  # linux
    unsaved = replace(inv, policy=replace(inv.policy, save_after_change=False))
    assert "write memory" not in make_plan(unsaved, req("www-a"), live(), health).commands["r1"]
    r1 = inv.routers["r1"]
    no_save = replace(inv, routers={**inv.routers, "r1": replace(r1, options=replace(r1.options, save_config=False))})
    assert "write memory" not in make_plan(no_save, req("www-a"), live(), health).commands["r1"]


def test_service_goes_to_the_host_serving_fewest_other_services(inv: Inventory) -> None:
    # web2 serves www-b, web3 nothing: preference alone would pile www-a onto web2.
    plan = make_plan(inv, req("www-a"), live(), all_up(inv, www_a__web1=Health.DOWN))
    assert [m.to_host for m in plan.moves] == ["web3"]
    # web2 and web3 carry one service each: www-a's preference decides.
    tie = make_plan(inv, req("www-a"), live(d=3), all_up(inv, www_a__web1=Health.DOWN))
    assert [m.to_host for m in tie.moves] == ["web2"]


def test_hosts_in_maintenance_or_flapping_are_not_chosen(inv: Inventory) -> None:
    health = all_up(inv, www_a__web1=Health.DOWN)
    in_maintenance = make_plan(inv, req("www-a"), live(), health, maintenance={"web3"})
    flapping = make_plan(inv, req("www-a"), live(), health, flapping={"web3"})
    assert [m.to_host for m in in_maintenance.moves] == [m.to_host for m in flapping.moves] == ["web2"]
    with pytest.raises(Refusal, match=r"no healthy host to take www-a \(web2 flapping, web3 in maintenance\)"):
        make_plan(inv, req("www-a"), live(), health, maintenance={"web3"}, flapping={"web2"})


def test_a_requested_host_in_maintenance_is_refused_even_while_it_checks_up(inv: Inventory) -> None:
    # The CLI's live health says UP for a host in maintenance: only the store knows.
    with pytest.raises(Refusal, match="web2 is in maintenance"):
        make_plan(inv, req("www-a", to="web2"), live(), all_up(inv), maintenance={"web2"})
    with pytest.raises(Refusal, match="web2 is in maintenance"):
        make_plan(inv, req("web1", kind="host", to="web2"), live(), all_up(inv), maintenance={"web2"})
    # A flapping host may still be asked for by name: that person has seen it.
    assert make_plan(inv, req("www-a", to="web2"), live(), all_up(inv), flapping={"web2"}).moves


def test_a_rescue_that_concentrates_is_not_risky_and_says_why(inv: Inventory) -> None:
    # www-b and www-d on web2, web3 down: web2 is the only home for www-a, and web1 is down for it.
    health = all_up(inv, www_a__web1=Health.DOWN, www_a__web3=Health.DOWN)
    plan = make_plan(inv, req("www-a"), live(d=2), health)
    assert [m.to_host for m in plan.moves] == ["web2"]
    assert not plan.risky
    assert plan.notes == ("afterwards web2 serves every service: allowed, because web1 is down for www-a",)
    shown = plain.render(Message("plan", tuple(plan_parts(plan))))
    assert "• afterwards web2 serves every service: allowed" in shown


def test_linux_router_plan_shows_an_atomic_replace(inv: Inventory) -> None:
    plan = make_plan(inv, req("www-d", to="web2"), live(), all_up(inv, www_d__web1=Health.DOWN))
    assert plan.commands == {"r2": ["ip route replace 198.51.100.96/27 via 192.0.2.3 proto static"]}


def test_requested_target_must_be_allowed_and_not_in_maintenance(inv: Inventory) -> None:
    inv = replace(inv, services={**inv.services, "www-a": replace(inv.services["www-a"], hosts=("web1", "web2"))})
    with pytest.raises(Refusal, match=r"web3 may not serve www-a \(allowed: web1, web2\)"):
        make_plan(inv, req("www-a", to="web3"), live(), all_up(inv))
    with pytest.raises(Refusal, match="web2 is in maintenance"):
        make_plan(inv, req("www-a", to="web2"), live(), all_up(inv, www_a__web2=Health.DISABLED))


def test_moving_to_the_current_host_is_a_noop(inv: Inventory) -> None:
    plan = make_plan(inv, req("www-a", to="web1"), live(), all_up(inv))
    assert plan.moves == () and plan.noop == "www-a is already served by web1"


def test_no_healthy_target_is_refused_with_each_hosts_state(inv: Inventory) -> None:
    health = all_up(inv, www_a__web2=Health.DOWN, www_a__web3=Health.INIT)
    with pytest.raises(Refusal, match=r"no healthy host to take www-a \(web2 down, web3 init\)"):
        make_plan(inv, req("www-a"), live(), health)


def test_ecmp_on_the_router_refuses_to_plan(inv: Inventory) -> None:
    with pytest.raises(Refusal, match="has 2 next hops on r1"):
        make_plan(inv, req("www-a", to="web3"), live(extra_a=2), all_up(inv))


def test_drain_spreads_least_loaded_first(inv: Inventory) -> None:
    # web1 serves www-a and www-d; web2 serves www-b; web3 nothing.
    plan = make_plan(inv, req("web1", kind="host"), live(), all_up(inv))
    assert {m.service: m.to_host for m in plan.moves} == {"www-a": "web3", "www-d": "web2"}
    assert sorted(plan.commands) == ["r1", "r2"]


def test_drain_skips_hosts_in_maintenance_or_flapping(inv: Inventory) -> None:
    # Left alone the drain spreads www-a to web3 (test above); with web3 unusable web2 takes both.
    drain = req("web1", kind="host")
    for plan in (make_plan(inv, drain, live(), all_up(inv), maintenance={"web3"}),
                 make_plan(inv, drain, live(), all_up(inv), flapping={"web3"})):
        assert {m.service: m.to_host for m in plan.moves} == {"www-a": "web2", "www-d": "web2"}


def test_drain_of_an_idle_host_is_a_noop_and_drain_without_target_refuses(inv: Inventory) -> None:
    assert make_plan(inv, req("web3", kind="host"), live(), all_up(inv)).noop == "web3 serves nothing"
    health = {k: Health.DOWN for k in all_up(inv)}
    with pytest.raises(Refusal, match=r"cannot drain web1: no healthy host for www-a \(web2 down, web3 down\)"):
        make_plan(inv, req("web1", kind="host"), live(), health)


# -- risk: one test per rule ---------------------------------------------------------------
def rules(plan: Plan) -> set[str]:
    return {r.rule for r in plan.risks}


def test_risk_target_health_unknown(inv: Inventory) -> None:
    plan = make_plan(inv, req("www-a", to="web2"), live(), all_up(inv, www_a__web1=Health.DOWN,
                                                                    www_a__web2=Health.RISING))
    assert rules(plan) == {"target_health_unknown"}
    assert plan.risks[0].text == "web2's health for www-a is rising, not known good"


def test_risk_moves_from_healthy_host(inv: Inventory) -> None:
    plan = make_plan(inv, req("www-a", to="web2"), live(), all_up(inv))
    assert rules(plan) == {"moves_from_healthy_host"}
    falling = make_plan(inv, req("www-a", to="web2"), live(), all_up(inv, www_a__web1=Health.FALLING))
    assert rules(falling) == {"moves_from_healthy_host"}  # in doubt still counts as serving


def test_risk_multiple_prefixes(inv: Inventory) -> None:
    # www-d's health on web1 is not known yet: not healthy (so no other rule), not down (so no rescue).
    health = all_up(inv, www_a__web1=Health.DOWN, www_d__web1=Health.INIT)
    plan = make_plan(inv, req("web1", kind="host"), live(), health)
    assert rules(plan) == {"multiple_prefixes"}
    assert plan.risks[0].text == "moves 2 prefixes at once" and plan.notes == ()


def test_moving_every_service_off_a_dead_host_needs_no_second_person(inv: Inventory) -> None:
    health = all_up(inv, www_a__web1=Health.DOWN, www_d__web1=Health.DOWN)
    plan = make_plan(inv, req("web1", kind="host"), live(), health)
    assert len(plan.moves) == 2 and not plan.risky
    assert plan.notes == ("moves 2 prefixes at once: allowed, because web1 is down for www-a and www-d",)


def test_risk_one_host_serves_all(inv: Inventory) -> None:
    # www-b and www-d already on web2; moving www-a there leaves web2 serving everything,
    # and web1 is only rising (not down): nothing forces the move, so a second person decides.
    plan = make_plan(inv, req("www-a", to="web2"), live(d=2), all_up(inv, www_a__web1=Health.RISING))
    assert rules(plan) == {"one_host_serves_all"}
    assert "afterwards web2 would serve every service" in plan.risks[0].text
    assert plan.notes == ()


def test_one_host_serving_all_after_a_rescue_is_a_note_not_a_risk(inv: Inventory) -> None:
    # Asked for by name (as automatic failover does), web1 down for www-a: the same note as when chosen.
    plan = make_plan(inv, req("www-a", to="web2"), live(d=2), all_up(inv, www_a__web1=Health.DOWN))
    assert not plan.risky
    assert plan.notes == ("afterwards web2 serves every service: allowed, because web1 is down for www-a",)
    # Every other rule still applies to a rescue.
    risky = make_plan(inv, req("www-a", to="web2"), live(d=2),
                      all_up(inv, www_a__web1=Health.DOWN, www_a__web2=Health.RISING))
    assert rules(risky) == {"target_health_unknown"}
    assert risky.notes == plan.notes


def test_a_drain_is_exempt_only_when_every_move_is_a_rescue(inv: Inventory) -> None:
    # web2 serves www-b; draining web1 onto it leaves web2 serving everything.
    health = all_up(inv, www_a__web1=Health.DOWN, www_d__web1=Health.DOWN)
    rescue = make_plan(inv, req("web1", kind="host", to="web2"), live(), health)
    assert not rescue.risky
    assert rescue.notes == (
        "moves 2 prefixes at once: allowed, because web1 is down for www-a and www-d",
        "afterwards web2 serves every service: allowed, because web1 is down for www-a and www-d",
    )
    half = make_plan(inv, req("web1", kind="host", to="web2"), live(), {**health, ("www-d", "web1"): Health.INIT})
    assert rules(half) == {"multiple_prefixes", "one_host_serves_all"} and half.notes == ()


def test_risk_drift(inv: Inventory) -> None:
    expected = {A: WEB[3]}  # lasthop last put www-a on web3, someone moved it to web1
    plan = make_plan(inv, req("www-a", to="web2"), live(), all_up(inv, www_a__web1=Health.DOWN), expected)
    assert rules(plan) == {"drift"}
    assert "but lasthop last set web3 (192.0.2.4)" in plan.risks[0].text


def test_risk_rules_can_be_switched_off(inv: Inventory) -> None:
    # A copy, never the object itself: models share their default parts, so a mutation leaks into other tests.
    inv = replace(inv, policy=replace(inv.policy, risky=replace(inv.policy.risky, moves_from_healthy_host=False)))
    assert not make_plan(inv, req("www-a", to="web2"), live(), all_up(inv)).risky


def test_drift_kinds(inv: Inventory) -> None:
    texts = [d.text for d in find_drift(inv, live(a=None, extra_a=None), {})]
    assert texts == ["r1 198.51.100.32/27 has no route in the FIB"]
    unknown = {"r1": {A: frozenset({IPv4Address("192.0.2.20")}), B: frozenset({WEB[2]})}}
    assert [d.text for d in find_drift(inv, unknown, {})] == [
        "r1 198.51.100.32/27 points at 192.0.2.20, which is no known host"
    ]


def test_plan_round_trips_through_its_dict(inv: Inventory) -> None:
    plan = make_plan(inv, req("web1", kind="host"), live(), all_up(inv))
    again = Plan.from_dict(plan.to_dict())
    assert again.moves == plan.moves and again.risks == plan.risks and again.key == plan.key
    noted = make_plan(inv, req("www-a", to="web2"), live(d=2), all_up(inv, www_a__web1=Health.DOWN))
    assert noted.notes and Plan.from_dict(noted.to_dict()).notes == noted.notes
    # A plan stored before notes existed (an approval still pending across an upgrade) still loads.
    old = noted.to_dict()
    del old["notes"]
    assert Plan.from_dict(old).notes == ()
