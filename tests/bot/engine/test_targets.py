"""The one rule for choosing a target, one test per part of it; pure, no network.

The inventory is tests/bot/engine/conftest.py's: www-a [web1, web2, web3], www-b
[web2, web3, web1], www-d [web1, web2, web3].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bot.engine.targets import TargetChoice, choose_target, is_rescue
from bot.health.state import Health
from bot.inventory import Inventory

HOSTS = ("web1", "web2", "web3")
SERVICES = ("www-a", "www-b", "www-d")
# web2 serves nothing else, web3 serves www-b: left alone, the rule sends www-a to web2.
SPREAD: Mapping[str, str | None] = {"www-a": "web1", "www-b": "web3", "www-d": "web1"}


def up(**down: Health) -> dict[tuple[str, str], Health]:
    """Every (service, host) UP, except `www_a__web2=Health.DOWN`-style overrides."""
    health = {(s, h): Health.UP for s in SERVICES for h in HOSTS}
    for key, state in down.items():
        svc, host = key.split("__")
        health[(svc.replace("_", "-"), host)] = state
    return health


def choose(inv: Inventory, service: str = "www-a", **kw: Any) -> TargetChoice:
    args: dict[str, Any] = {"health": up(), "serving": SPREAD}
    args.update(kw)
    return choose_target(inv, service, **args)


def test_the_least_loaded_healthy_host_is_chosen(inv: Inventory) -> None:
    assert choose(inv) == TargetChoice("web2")


@pytest.mark.parametrize("state", [Health.DOWN, Health.FALLING, Health.RISING, Health.INIT, Health.DISABLED])
def test_a_host_not_up_for_the_service_is_never_chosen(inv: Inventory, state: Health) -> None:
    assert choose(inv, health=up(www_a__web2=state)).host == "web3"
    # Health is per service: web2 failing www-b's check does not rule it out for www-a.
    assert choose(inv, health=up(www_b__web2=state)).host == "web2"


def test_a_host_in_maintenance_is_never_chosen_even_if_up(inv: Inventory) -> None:
    assert choose(inv, maintenance={"web2"}).host == "web3"


def test_a_flapping_host_is_never_chosen_even_if_up(inv: Inventory) -> None:
    assert choose(inv, flapping={"web2"}).host == "web3"


def test_excluded_hosts_and_the_current_host_are_never_chosen(inv: Inventory) -> None:
    assert choose(inv, exclude={"web2"}).host == "web3"
    # www-a is on web2 now: web2 carries nothing else, but a move away from it cannot end on it.
    assert choose(inv, serving={"www-a": "web2", "www-b": "web3", "www-d": "web3"}).host == "web1"


def test_concentration_is_avoided_before_preference(inv: Inventory) -> None:
    # The case: www-b on web2; preference alone would put www-a on web2 too.
    choice = choose(inv, health=up(www_a__web1=Health.DOWN),
                    serving={"www-a": "web1", "www-b": "web2", "www-d": "web1"})
    assert choice == TargetChoice("web3")


def test_the_services_own_preference_breaks_ties(inv: Inventory) -> None:
    serving = {"www-a": "web1", "www-b": "web2", "www-d": "web3"}
    # web2 and web3 carry one service each: www-a prefers web2 ...
    assert choose(inv, serving=serving).host == "web2"
    # ... and www-b (on web2; web3 and web1 one each) prefers web3 over web1, whatever the names' order.
    assert choose(inv, "www-b", serving=serving).host == "web3"


def test_a_given_load_overrides_the_one_derived_from_serving(inv: Inventory) -> None:
    assert choose(inv, load={"web2": 2, "web3": 1}).host == "web3"  # SPREAD alone says web2
    crowded = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
    assert choose(inv, serving=crowded).host == "web3"
    assert choose(inv, serving=crowded, load={}).host == "web2"  # nobody loaded: preference decides


def test_a_rescue_may_concentrate_and_says_so(inv: Inventory) -> None:
    serving = {"www-a": "web1", "www-b": "web2", "www-d": "web2"}
    health = up(www_a__web1=Health.DOWN, www_a__web3=Health.DOWN)
    choice = choose(inv, health=health, serving=serving)
    assert choice == TargetChoice(
        "web2", notes=("afterwards web2 serves every service: allowed, because web1 is down for www-a",)
    )
    # Not a rescue (web1 only in doubt): same target, no note; the risk rules speak for it instead.
    assert choose(inv, health={**health, ("www-a", "web1"): Health.FALLING}, serving=serving) == TargetChoice("web2")
    # A rescue that does not concentrate needs no note.
    assert choose(inv, health=up(www_a__web1=Health.DOWN), serving=serving) == TargetChoice("web3")


def test_no_usable_host_says_why_for_each(inv: Inventory) -> None:
    choice = choose(inv, health=up(www_a__web2=Health.DOWN), maintenance={"web3"})
    assert choice == TargetChoice(None, "web2 down, web3 in maintenance")
    choice = choose(inv, health=up(www_a__web3=Health.INIT), flapping={"web2"})
    assert choice == TargetChoice(None, "web2 flapping, web3 init")


def test_is_rescue_only_away_from_a_host_down_for_that_service() -> None:
    health = {("www-a", "web1"): Health.DOWN, ("www-b", "web1"): Health.FALLING}
    assert is_rescue(health, "www-a", "web1")
    assert not is_rescue(health, "www-b", "web1")  # in doubt is not down
    assert not is_rescue(health, "www-d", "web1")  # unknown is not down
    assert not is_rescue(health, "www-a", None)  # from no known host: nothing to rescue it from
