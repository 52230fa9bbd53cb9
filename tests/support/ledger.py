"""The fault suite's ledger: one row per case run, for the README's reliability figures.

Each fault test records whether its case ended consistent (one next hop, the client served,
nothing left in flight, everything audited) and whether what lasthop said was true. With
LASTHOP_FAULTS_REPORT set (as `make faults` does), the rows are appended to that JSON-lines
file; `python -m tests.faults.figures` turns them into the table.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_ENV = "LASTHOP_FAULTS_REPORT"


@dataclass
class Ledger:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, case: str, *, consistent: bool, reported: bool, runs: int = 1, crashes: int = 0,
               tracebacks: int = 0, unauthorised: int = 0, **extra: Any) -> None:
        row = Row(case, runs, consistent, reported, crashes, tracebacks, unauthorised)
        self.rows.append(asdict(row) | extra)
        path = os.environ.get(REPORT_ENV)
        if path:
            with Path(path).open("a") as f:
                f.write(json.dumps(self.rows[-1], sort_keys=True) + "\n")


@dataclass(frozen=True)
class Row:
    case: str
    runs: int
    consistent: bool
    reported: bool
    crashes: int
    tracebacks: int
    unauthorised: int
