"""What the lab benchmarks share: the lab for a run, and vtysh on its r1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from lab import Lab, frr, netns
from lab.errors import LabError
from lab.plan import LabPlan
from lab.proc import in_namespace
from lab.proc import run as lab_run


@contextlib.contextmanager
def lab_up(prefix: str, slot: int) -> Iterator[Lab]:
    """The lab `prefix`/`slot`, built or repaired; a lab that was not there is taken down again after."""
    lab = Lab(prefix, slot, report=lambda _m: None)
    existed = any(ns in netns.existing_namespaces() for ns in lab.plan.namespaces)
    try:
        lab.up()
        yield lab
    finally:
        if not existed:
            lab.down()


def vtysh(plan: LabPlan, commands: Sequence[str], *, timeout: float = 30.0) -> str:
    """Run `commands` in r1's vtysh (its namespace), one `-c` each; LabError on any `%` line."""
    argv = [frr.VTYSH, "-N", plan.frr_pathspace]
    for c in commands:
        argv += ["-c", c]
    out = lab_run(in_namespace(plan.frr_pathspace, argv), timeout=timeout).stdout
    refused = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("%")]
    if refused:
        raise LabError(f"vtysh on {plan.frr_pathspace} refused: {'; '.join(refused)}")
    return out
