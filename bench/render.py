"""`python -m bench render`: the latest result of every benchmark as a Markdown table and PNG charts.

Writes results/results.md (the table, also printed; with `--readme README.md` also between the
README's bench markers) and, when matplotlib is installed (the
`bench` extra), results/stages.png (where the time goes, stage by stage, per benchmark) and
results/NAME.png for each benchmark that draws its own chart. Without matplotlib the table is
still written and the charts are skipped, saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import BenchError, load
from bench import results as rs

TABLE = "results.md"


def table(results: list[rs.Result]) -> str:
    """One row per benchmark: the main figure, its targets, met or by how much missed."""
    lines = ["| Benchmark | Figure | Target | Result | When (UTC), load average |",
             "|---|---|---|---|---|"]
    for r in results:
        figure = f"{r.metric}: **{_fmt(r.median)} {r.unit}** (median of {r.repetitions}; {_fmt(r.min)}–{_fmt(r.max)})"
        targets = "<br>".join(f"{t.name} {'≥' if t.at_least else '≤'} {_fmt(t.target)} {t.unit}"
                              for t in r.targets) or "—"
        verdicts = "<br>".join(_verdict(t) for t in r.targets) or "—"
        when = f"{r.when.replace('+00:00', '').replace('T', ' ')}, {r.machine.load_average[0]:.2f} on {r.machine.cpus}"
        lines.append(f"| `{r.name}` | {figure} | {targets} | {verdicts} | {when} |")
    return "\n".join(lines) + "\n"


def _verdict(t: rs.Target) -> str:
    if t.met:
        return f"met: {_fmt(t.measured)} {t.unit}"
    return f"**missed by {t.missed_by():.0%}**: {_fmt(t.measured)} {t.unit}"


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def charts(results: list[rs.Result], directory: Path) -> list[Path]:
    """The PNG charts; matplotlib must be importable."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    from matplotlib.figure import Figure

    written: list[Path] = []
    staged = [r for r in results if r.stages]
    if staged:
        fig = Figure(figsize=(8, 1.2 + 1.4 * len(staged)))
        axes = fig.subplots(len(staged), 1, squeeze=False)
        for ax, r in zip(axes[:, 0], staged, strict=True):
            names = list(r.stages)
            ax.barh(names, [r.stages[n] * 1000 for n in names])
            ax.set_title(f"{r.name}: median per stage", fontsize=9)
            ax.set_xlabel("ms")
            ax.invert_yaxis()
        fig.tight_layout()
        path = directory / "stages.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    for r in results:
        try:
            bench = load(r.name)
        except BenchError:
            continue  # a result whose benchmark has gone: the table still shows it
        if bench.plot is None:
            continue
        fig = Figure(figsize=(10, 4))
        bench.plot(r, fig)
        fig.tight_layout()
        path = directory / f"{r.name}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def render(directory: Path = rs.RESULTS_DIR) -> tuple[str, list[Path], str]:
    """Write the table and the charts; returns the table, the charts written and a word on charts."""
    results = rs.latest(directory)
    text = table(results)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TABLE).write_text(text)
    if importlib.util.find_spec("matplotlib") is None:
        return text, [], "charts skipped: matplotlib not installed (pip install 'lasthop[bench]')"
    written = charts(results, directory)
    return text, written, f"charts: {', '.join(p.name for p in written) or 'none (no results)'}"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def readme_block(results: list[rs.Result], text: str) -> str:
    """What goes between the README's markers: each benchmark's own summary table, then `text`."""
    parts: list[str] = []
    for r in results:
        try:
            bench = load(r.name)
        except BenchError:
            continue
        if bench.summary_table is not None:
            parts.append(bench.summary_table(r))
    return "\n".join([*parts, text])


def into_readme(readme: Path, text: str) -> None:
    """Put `text` between the README's markers (BEGIN, END), in place; ValueError if they are not there once each."""
    body = readme.read_text()
    if body.count(BEGIN) != 1 or body.count(END) != 1 or body.index(BEGIN) > body.index(END):
        raise ValueError(f"{readme} needs one {BEGIN} line and, after it, one {END} line")
    head, rest = body.split(BEGIN)
    _old, tail = rest.split(END)
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    tmp.replace(readme)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench render", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--dir", type=Path, default=rs.RESULTS_DIR, help=f"results directory (default {rs.RESULTS_DIR})")
    p.add_argument("--readme", type=Path, help=f"also write the table into this file, between {BEGIN} and {END}")
    a = p.parse_args(argv)
    try:
        text, _written, word = render(a.dir)
        if a.readme is not None:
            into_readme(a.readme, readme_block(rs.latest(a.dir), text))
    except (rs.ResultError, ValueError, OSError) as e:
        print(f"cannot render: {e}", file=sys.stderr)
        return 1
    print(text, end="")
    print(f"table: {a.dir / TABLE}")
    print(word)
    return 0
