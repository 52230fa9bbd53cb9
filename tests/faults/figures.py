"""The fault suite's figures, from the ledger's report file: `PYTHONPATH=tests python -m faults.figures REPORT`.

Prints a Markdown table with a line per group (moves on the lab, chat text, config files, Slack
requests, buttons) and a total. With --readme it also replaces the table between the README's
markers, so the figures there are the last `make faults` run's and never typed by hand. Exits 1
when any figure that must be zero is not, or when the report holds no case.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from support.ledger import Row, read_rows

BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"
HEAD = ("| Group | Cases | Runs | Inconsistent | Unreported | Crashes | Tracebacks | Unauthorised moves |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|")


@dataclass(frozen=True)
class Figures:
    cases: int
    runs: int
    inconsistent: int
    unreported: int
    crashes: int
    tracebacks: int
    unauthorised: int

    @classmethod
    def of(cls, rows: list[Row]) -> Figures:
        return cls(len(rows), sum(r.runs for r in rows), sum(not r.consistent for r in rows),
                   sum(not r.reported for r in rows), sum(r.crashes for r in rows),
                   sum(r.tracebacks for r in rows), sum(r.unauthorised for r in rows))

    @property
    def clean(self) -> bool:
        return self.cases > 0 and not (self.inconsistent or self.unreported or self.crashes or self.tracebacks
                                       or self.unauthorised)

    def cells(self) -> str:
        return " | ".join(f"{n:,}" for n in (self.cases, self.runs, self.inconsistent, self.unreported,
                                             self.crashes, self.tracebacks, self.unauthorised))


def table(rows: list[Row]) -> str:
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    lines = [HEAD, *(f"| {g} | {Figures.of(rs).cells()} |" for g, rs in groups.items())]
    lines.append(f"| **all** | {Figures.of(rows).cells()} |")
    return "\n".join(lines)


def failures(rows: list[Row]) -> list[str]:
    """The cases behind any figure that is not zero, so a red table says where to look."""
    return [f"{r.group}: {r.case}" for r in rows
            if not (r.consistent and r.reported) or r.crashes or r.tracebacks or r.unauthorised]


def into_readme(readme: Path, text: str) -> None:
    old = readme.read_text()
    start, end = old.find(BEGIN), old.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} markers to put the figures between")
    new = old[:start + len(BEGIN)] + "\n" + text + "\n" + old[end:]
    tmp = readme.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m faults.figures", description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="the JSON-lines file LASTHOP_FAULTS_REPORT named")
    p.add_argument("--readme", type=Path, help="replace the figures between this file's markers")
    args = p.parse_args(argv)
    try:
        rows = read_rows(args.report)
    except (OSError, ValueError, TypeError) as e:
        print(f"figures: cannot read {args.report}: {e}", file=sys.stderr)
        return 2
    text = table(rows)
    print(text)
    if args.readme:
        when = datetime.fromtimestamp(args.report.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        into_readme(args.readme, f"{text}\n\n_From the `make faults` run of {when}._")
    bad = failures(rows)
    for line in bad:
        print(f"not clean: {line}", file=sys.stderr)
    return 0 if rows and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
