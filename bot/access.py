"""Who may do what from chat. Pure: the caller supplies the user's groups.

Denied by default: a user or channel that no setting names can do nothing, not even
/status. Roles nest: an approver may also operate and view, an operator may also view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.inventory import SlackSettings

Role = Literal["viewer", "operator", "approver"]
_GRANTED_BY: dict[Role, tuple[str, ...]] = {
    "viewer": ("viewers", "operators", "approvers"),
    "operator": ("operators", "approvers"),
    "approver": ("approvers",),
}
_VERB: dict[Role, str] = {"viewer": "view status", "operator": "move services", "approver": "approve moves"}


@dataclass(frozen=True)
class Who:
    user: str
    channel: str
    groups: frozenset[str] = field(default_factory=frozenset)


def _names(members: tuple[str, ...], who: Who) -> bool:
    return "*" in members or who.user in members or bool(who.groups & set(members))


def refusal(settings: SlackSettings, who: Who, role: Role) -> str | None:
    """None when allowed; otherwise the short reason to show the person."""
    # The alert channel always counts: lasthop posts its approval buttons there.
    if "*" not in settings.channels and who.channel not in (*settings.channels, settings.alert_channel):
        return "lasthop does not take commands in this channel"
    if not any(_names(getattr(settings, attr), who) for attr in _GRANTED_BY[role]):
        return f"you are not allowed to {_VERB[role]} (ask an admin to add you to the lasthop roles)"
    return None


def needs_groups(settings: SlackSettings) -> bool:
    """Whether any role names a user group, so the caller must look up the user's groups."""
    return any(m.startswith("S") for attr in ("viewers", "operators", "approvers") for m in getattr(settings, attr))
