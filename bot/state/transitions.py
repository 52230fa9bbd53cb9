"""Which status a change may take next: the one table the store enforces, for every process.

A change starts `planned`; `applying` is the first moment a router may differ; `verifying`
follows a commit the router took; it ends `done`, `rolled_back` (the old next hops verified
back), `failed` (it never touched the router) or `refused`. `needs_human` is a router in a
state lasthop could not settle; only a later settlement (reconcile, a person) ends it, and
only as `done` or `rolled_back`. Ended changes never change again: a second reconciler, a
retried click or a process that lost its lock cannot rewrite what happened.
"""

from __future__ import annotations

from collections.abc import Mapping

CHANGE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "planned": frozenset({"applying", "failed", "refused"}),
    # done from applying: a process that died after the commit, settled against the live router.
    "applying": frozenset({"verifying", "done", "rolled_back", "needs_human", "failed"}),
    "verifying": frozenset({"done", "rolled_back", "needs_human"}),
    "needs_human": frozenset({"done", "rolled_back"}),
    "done": frozenset(),
    "rolled_back": frozenset(),
    "failed": frozenset(),
    "refused": frozenset(),
}
CHANGE_STATUSES = frozenset(CHANGE_TRANSITIONS)
ENDED = frozenset(status for status, after in CHANGE_TRANSITIONS.items() if not after)


def allowed_from(status: str) -> frozenset[str]:
    """The statuses a change may be in to move to `status`."""
    return frozenset(old for old, after in CHANGE_TRANSITIONS.items() if status in after)
