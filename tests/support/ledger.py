"""The fault suite's ledger: one row per case run, for the README's reliability figures.

A case is one fault on the lab (a link cut at one fault point, say) or one fuzz test with its
many inputs. Lab tests judge themselves and call `record` before they assert: whether the case
ended consistent (one next hop, the client served, nothing left in flight, everything audited)
and whether what lasthop said was true. Fuzz tests count their inputs with a `Tally`; the
conftest's hook writes the tally's row when the test ends, consistent and reported when it
passed. Either way the hook adds what the test cannot see itself: an exception other than a
failed assertion (a crash) and tracebacks in the captured output.

With LASTHOP_FAULTS_REPORT set (as `make faults` does), rows are appended to that JSON-lines
file; `make faults` (faults.figures) turns them into the README's table.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_ENV = "LASTHOP_FAULTS_REPORT"
_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)


def tracebacks(*texts: str) -> int:
    """How many Python tracebacks these outputs hold: each one is a promise broken."""
    return sum(len(_TRACEBACK.findall(t)) for t in texts)


@dataclass(frozen=True)
class Row:
    group: str
    case: str
    runs: int
    consistent: bool
    reported: bool
    crashes: int = 0
    tracebacks: int = 0
    unauthorised: int = 0


@dataclass
class Tally:
    """The inputs one fuzz test ran; the tracebacks its outputs held, and moves run without the role."""

    case: str
    runs: int = 0
    tracebacks: int = 0
    unauthorised: int = 0

    def run(self, n: int = 1) -> None:
        self.runs += n


@dataclass
class Ledger:
    rows: list[Row] = field(default_factory=list)
    group: str = "other"  # the running test module's LEDGER_GROUP, set by the conftest
    _pending: list[Tally] = field(default_factory=list)
    _recorded: int = 0  # rows of the running test, so the hook can add what it saw to them

    def begin(self, group: str) -> None:
        self.group, self._pending, self._recorded = group, [], 0

    def record(self, case: str, *, consistent: bool, reported: bool, runs: int = 1, crashes: int = 0,
               tracebacks: int = 0, unauthorised: int = 0, **extra: Any) -> None:
        self._write(Row(self.group, case, runs, consistent, reported, crashes, tracebacks, unauthorised), extra)
        self._recorded += 1

    def tally(self, case: str) -> Tally:
        t = Tally(case)
        self._pending.append(t)
        return t

    def end(self, *, passed: bool, crashed: bool, seen_tracebacks: int, name: str) -> None:
        """The running test is over: write its tallies, or a row for a case that never recorded itself."""
        for t in self._pending:
            self.record(t.case, consistent=passed, reported=passed, runs=t.runs, crashes=int(crashed),
                        tracebacks=t.tracebacks + seen_tracebacks, unauthorised=t.unauthorised)
            crashed, seen_tracebacks = False, 0
        if self._recorded == 0 and not passed:
            # It failed before it could judge itself: count it, as a failure, rather than lose it.
            self.record(name, consistent=False, reported=False, crashes=int(crashed), tracebacks=seen_tracebacks)
        elif crashed or seen_tracebacks:
            last = self.rows[-1]
            self.rows[-1] = Row(**(asdict(last) | {"crashes": last.crashes + int(crashed),
                                                   "tracebacks": last.tracebacks + seen_tracebacks}))
            self._append({"amend": True, **asdict(self.rows[-1])})
        self._pending = []

    def _write(self, row: Row, extra: dict[str, Any]) -> None:
        self.rows.append(row)
        self._append(asdict(row) | extra)

    @staticmethod
    def _append(data: dict[str, Any]) -> None:
        path = os.environ.get(REPORT_ENV)
        if path:
            with Path(path).open("a") as f:
                f.write(json.dumps(data, sort_keys=True) + "\n")


def read_rows(path: Path) -> list[Row]:
    """The rows of a report file; an `amend` line replaces the row written just before it."""
    rows: list[Row] = []
    names = set(Row.__dataclass_fields__)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        row = Row(**{k: v for k, v in data.items() if k in names})
        if data.get("amend") and rows:
            rows[-1] = row
        else:
            rows.append(row)
    return rows
