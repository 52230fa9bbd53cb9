"""The result record every benchmark writes, and the reader that validates one.

A benchmark's `run` returns a `Measurement` (what it measured); the runner adds what it
knows (the name, the time, the machine, the settings) and writes a `Result` as JSON:
`results/NAME-<UTC timestamp>.json` for the history and `results/NAME.json` for the latest,
each written to a temporary file and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

SCHEMA = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results"

Better = Literal["higher", "lower"]


class ResultError(ValueError):
    """A result file that is missing, unreadable or not a well-formed result."""


@dataclass(frozen=True)
class Target:
    """One target of a benchmark: `measured` against `target`, `at_least` or at most."""

    name: str
    target: float
    unit: str
    measured: float
    at_least: bool
    met: bool

    @classmethod
    def judge(cls, name: str, measured: float, target: float, unit: str, *, at_least: bool) -> Target:
        met = measured >= target if at_least else measured <= target
        return cls(name, target, unit, measured, at_least, met)

    def missed_by(self) -> float:
        """How far from the target, as a fraction of it (0 when met)."""
        if self.met or self.target == 0:
            return 0.0
        return abs(self.target - self.measured) / abs(self.target)


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    kernel: str
    python: str
    commit: str
    load_average: tuple[float, float, float]


@dataclass
class Measurement:
    """What a benchmark's run() returns.

    `samples` are the raw values of the main figure, one per repetition (their median is the
    figure the table shows); `stages` is where the time goes, stage name -> median seconds;
    `details` is anything else worth keeping, JSON-able (per-step tables, profiles).
    """

    metric: str
    unit: str
    better: Better
    samples: list[float]
    stages: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    name: str
    when: str  # ISO 8601, UTC
    machine: Machine
    settings: dict[str, Any]
    repetitions: int
    metric: str
    unit: str
    better: Better
    samples: list[float]
    median: float
    p95: float
    min: float
    max: float
    stages: dict[str, float]
    targets: list[Target]
    notes: list[str]
    details: dict[str, Any]
    schema: int = SCHEMA
    seconds: float = 0.0  # how long the run took, wall time

    @classmethod
    def of(cls, name: str, m: Measurement, *, machine: Machine, settings: dict[str, Any], when: datetime,
           seconds: float) -> Result:
        if not m.samples:
            raise ResultError(f"{name}: a measurement needs at least one sample")
        s = sorted(m.samples)
        return cls(
            name=name, when=when.astimezone(UTC).isoformat(timespec="seconds"), machine=machine,
            settings=settings, repetitions=len(s), metric=m.metric, unit=m.unit, better=m.better,
            samples=list(m.samples), median=percentile(s, 0.5), p95=percentile(s, 0.95), min=s[0], max=s[-1],
            stages=dict(m.stages), targets=list(m.targets), notes=list(m.notes), details=m.details,
            seconds=seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `samples` need not be sorted."""
    if not samples:
        raise ValueError("percentile of no samples")
    s = sorted(samples)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def machine_info(repo: Path | None = None) -> Machine:
    """The machine as it is now; the load average says how much else was running at the start."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return Machine(cpus=os.cpu_count() or 1, cpu_model=model, kernel=platform.release(),
                   python=platform.python_version(), commit=_commit(repo or Path(__file__).resolve().parent.parent),
                   load_average=(round(load[0], 2), round(load[1], 2), round(load[2], 2)))


def _commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() if out.returncode == 0 else ""
    if not commit:
        return "unknown"
    return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def write(result: Result, directory: Path = RESULTS_DIR) -> Path:
    """Write the timestamped record and the stable NAME.json; returns the timestamped path."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
    stamp = datetime.fromisoformat(result.when).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{result.name}-{stamp}.json"
    _atomic(path, text)
    _atomic(directory / f"{result.name}.json", text)
    return path


def _atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; a result is for everyone to read
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> Result:
    """Read and validate one result file; ResultError names the first problem found."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ResultError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise ResultError(f"{path}: not JSON: {e}") from None
    try:
        return _parse(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None


def latest(directory: Path = RESULTS_DIR) -> list[Result]:
    """The stable NAME.json of every benchmark that has run, by name; an invalid one raises."""
    if not directory.is_dir():
        return []
    return [read(p) for p in sorted(directory.glob("*.json")) if "-" not in p.stem]


def _parse(data: Any) -> Result:
    d = _obj(data, "the result")
    if d.get("schema") != SCHEMA:
        raise ResultError(f"schema {d.get('schema')!r}, expected {SCHEMA}")
    m = _obj(d.get("machine"), "machine")
    load = m.get("load_average")
    if not (isinstance(load, list) and len(load) == 3):
        raise ResultError("machine.load_average must be three numbers")
    machine = Machine(
        cpus=_int(m.get("cpus"), "machine.cpus", low=1), cpu_model=_str(m.get("cpu_model"), "machine.cpu_model"),
        kernel=_str(m.get("kernel"), "machine.kernel"), python=_str(m.get("python"), "machine.python"),
        commit=_str(m.get("commit"), "machine.commit"),
        load_average=(_num(load[0], "load"), _num(load[1], "load"), _num(load[2], "load")),
    )
    samples = d.get("samples")
    if not (isinstance(samples, list) and samples):
        raise ResultError("samples must be a non-empty list")
    values = [_num(x, "samples[]") for x in samples]
    stats = {k: _num(d.get(k), k) for k in ("median", "p95", "min", "max")}
    if not stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]:
        raise ResultError(f"min <= median <= p95 <= max does not hold: {stats}")
    if stats["min"] != min(values) or stats["max"] != max(values):
        raise ResultError("min and max disagree with the samples")
    repetitions = _int(d.get("repetitions"), "repetitions", low=1)
    if repetitions != len(values):
        raise ResultError(f"repetitions {repetitions} but {len(values)} samples")
    stages = _obj(d.get("stages"), "stages")
    for k, v in stages.items():
        if _num(v, f"stages.{k}") < 0:
            raise ResultError(f"stages.{k} is negative")
    targets = []
    raw_targets = d.get("targets")
    if not isinstance(raw_targets, list):
        raise ResultError("targets must be a list")
    for t in raw_targets:
        t = _obj(t, "targets[]")
        at_least = t.get("at_least")
        met = t.get("met")
        if not isinstance(at_least, bool) or not isinstance(met, bool):
            raise ResultError("targets[].at_least and .met must be true or false")
        target = Target(_str(t.get("name"), "targets[].name"), _num(t.get("target"), "targets[].target"),
                        _str(t.get("unit"), "targets[].unit"), _num(t.get("measured"), "targets[].measured"),
                        at_least, met)
        if Target.judge(target.name, target.measured, target.target, target.unit, at_least=at_least).met != met:
            raise ResultError(f"target {target.name!r}: met={met} contradicts its figures")
        targets.append(target)
    notes = d.get("notes")
    if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        raise ResultError("notes must be a list of strings")
    better = d.get("better")
    if better not in ("higher", "lower"):
        raise ResultError(f"better must be 'higher' or 'lower', not {better!r}")
    when = _str(d.get("when"), "when")
    try:
        datetime.fromisoformat(when)
    except ValueError:
        raise ResultError(f"when {when!r} is not an ISO 8601 time") from None
    return Result(
        name=_str(d.get("name"), "name"), when=when, machine=machine, settings=_obj(d.get("settings"), "settings"),
        repetitions=repetitions, metric=_str(d.get("metric"), "metric"), unit=_str(d.get("unit"), "unit"),
        better=better, samples=values, stages={k: float(v) for k, v in stages.items()}, targets=targets,
        notes=notes, details=_obj(d.get("details"), "details"), seconds=_num(d.get("seconds"), "seconds"),
        median=stats["median"], p95=stats["p95"], min=stats["min"], max=stats["max"],
    )


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ResultError(f"{what} must be an object")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise ResultError(f"{what} must be a non-empty string")
    return v


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ResultError(f"{what} must be a finite number, not {v!r}")
    return float(v)


def _int(v: Any, what: str, *, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ResultError(f"{what} must be an integer of at least {low}, not {v!r}")
    return v


def now() -> tuple[datetime, float]:
    """The wall time to stamp a result with and a monotonic start to time the run by."""
    return datetime.now(UTC), time.monotonic()
