"""Access is denied by default; each grant is tested, and roles nest."""

from __future__ import annotations

import pytest

from bot.access import Who, needs_groups, refusal
from bot.inventory import Roles, SlackSettings

S = SlackSettings(channels=("C001",),
                  roles=Roles(viewers=("U0VIEW", "S0OPSVIEW"), operators=("U0OP",), approvers=("U0APP",)))


@pytest.mark.parametrize(
    ("who", "role", "ok"),
    [
        (Who("U0VIEW", "C001"), "viewer", True),
        (Who("U0VIEW", "C001"), "operator", False),
        (Who("U0OP", "C001"), "viewer", True),
        (Who("U0OP", "C001"), "operator", True),
        (Who("U0OP", "C001"), "approver", False),
        (Who("U0APP", "C001"), "operator", True),
        (Who("U0APP", "C001"), "approver", True),
        (Who("U0NOBODY", "C001"), "viewer", False),
        (Who("U0NOBODY", "C001", frozenset({"S0OPSVIEW"})), "viewer", True),
        (Who("U0APP", "C0OTHER"), "viewer", False),
    ],
)
def test_roles(who: Who, role: str, ok: bool) -> None:
    assert (refusal(S, who, role) is None) is ok  # type: ignore[arg-type]


def test_nothing_configured_denies_everyone_even_status() -> None:
    assert refusal(SlackSettings(), Who("U1", "C001"), "viewer") == "lasthop does not take commands in this channel"
    open_channel = SlackSettings(channels=("*",))
    assert "not allowed to view status" in (refusal(open_channel, Who("U1", "C001"), "viewer") or "")


def test_explicit_star_grants_viewing_to_everyone() -> None:
    s = SlackSettings(channels=("*",), roles=Roles(viewers=("*",)))
    assert refusal(s, Who("U_ANY", "C9"), "viewer") is None
    assert refusal(s, Who("U_ANY", "C9"), "operator") == (
        "you are not allowed to move services (ask an admin to add you to the lasthop roles)")


def test_group_lookup_needed_only_when_a_role_names_a_group() -> None:
    assert needs_groups(S)
    assert not needs_groups(SlackSettings(roles=Roles(viewers=("U001",))))


def test_the_alert_channel_always_accepts_clicks() -> None:
    s = SlackSettings(alert_channel="C0ALERTS", channels=("C0OPS",), roles=Roles(approvers=("U0APP",)))
    assert refusal(s, Who("U0APP", "C0ALERTS"), "approver") is None
    assert refusal(s, Who("U0APP", "C0ELSE"), "approver") == "lasthop does not take commands in this channel"
