"""Access is denied by default; each grant is tested, and roles nest."""

from __future__ import annotations

import pytest

from bot.access import Who, needs_groups, refusal
from bot.inventory import SlackSettings

S = SlackSettings(channels=("C1",), viewers=("U_VIEW", "S_OPS_VIEW"), operators=("U_OP",), approvers=("U_APP",))


@pytest.mark.parametrize(
    ("who", "role", "ok"),
    [
        (Who("U_VIEW", "C1"), "viewer", True),
        (Who("U_VIEW", "C1"), "operator", False),
        (Who("U_OP", "C1"), "viewer", True),
        (Who("U_OP", "C1"), "operator", True),
        (Who("U_OP", "C1"), "approver", False),
        (Who("U_APP", "C1"), "operator", True),
        (Who("U_APP", "C1"), "approver", True),
        (Who("U_NOBODY", "C1"), "viewer", False),
        (Who("U_NOBODY", "C1", frozenset({"S_OPS_VIEW"})), "viewer", True),
        (Who("U_APP", "C_OTHER"), "viewer", False),
    ],
)
def test_roles(who: Who, role: str, ok: bool) -> None:
    assert (refusal(S, who, role) is None) is ok  # type: ignore[arg-type]


def test_nothing_configured_denies_everyone_even_status() -> None:
    assert refusal(SlackSettings(), Who("U1", "C1"), "viewer") == "lasthop does not take commands in this channel"
    open_channel = SlackSettings(channels=("*",))
    assert "not allowed to view status" in (refusal(open_channel, Who("U1", "C1"), "viewer") or "")


def test_explicit_star_grants_viewing_to_everyone() -> None:
    s = SlackSettings(channels=("*",), viewers=("*",))
    assert refusal(s, Who("U_ANY", "C9"), "viewer") is None
    assert refusal(s, Who("U_ANY", "C9"), "operator") == (
        "you are not allowed to move services (ask an admin to add you to the lasthop roles)")


def test_group_lookup_needed_only_when_a_role_names_a_group() -> None:
    assert needs_groups(S)
    assert not needs_groups(SlackSettings(viewers=("U1",)))


def test_the_alert_channel_always_accepts_clicks() -> None:
    s = SlackSettings(alert_channel="C_ALERTS", channels=("C_OPS",), approvers=("U_APP",))
    assert refusal(s, Who("U_APP", "C_ALERTS"), "approver") is None
    assert refusal(s, Who("U_APP", "C_ELSE"), "approver") == "lasthop does not take commands in this channel"
