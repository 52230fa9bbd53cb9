"""Fuzzing the inventory loader (issue 11): thousands of broken config files, none may crash it.

Each mutation of config/example.yaml or config/lab.yaml either loads (and check-config's summary
of it renders) or is refused with a `ConfigError`: one short line per problem, each naming its
line, never a Python exception's name or a traceback. Loading writes nothing and stays fast:
pytest-timeout bounds every test, so an alias bomb that took minutes would fail here.

The mutations are seeded, so a failure names a case that replays exactly.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.ledger import Tally, tracebacks

from bot.config import ConfigError, load_inventory

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261202
STRUCTURAL_MUTATIONS = 1200  # changes to the parsed YAML, dumped again
TEXT_MUTATIONS = 900  # changes to the file's bytes
LEDGER_GROUP = "config files"
MUTATIONS = STRUCTURAL_MUTATIONS + TEXT_MUTATIONS
CLI_CASES = 20

# The example's and the lab's absolute key paths, pointed at files the test makes next to the config.
_KEY_PATHS = {
    "/etc/lasthop/id_ed25519": "id_test",
    "/etc/lasthop/known_hosts": "known_hosts",
    "/run/lasthop-lab/lh/id_ed25519": "id_test",
    "/run/lasthop-lab/lh/known_hosts": "known_hosts",
}
ENV = {"LASTHOP_EDGE_PASSWORD": "fuzz-not-a-secret"}

# What only Python (or pydantic) says, never a message for the person who wrote the file. A word
# the mutated file itself contains may be echoed back as a value, so those are not held against it.
_NOISE = ("Traceback", 'File "', "Error(", "Exception", "pydantic", "validation error", "input_value",
          "For further information", "errors.pydantic.dev")
_PYTHON_ERROR = re.compile(r"\b(?:[A-Z][a-z]+)+(?:Error|Exception|Warning)\b")
MAX_LINE = 300  # characters in one line of an error: a value from the file is shortened, never echoed whole
_LINE_HEAD = re.compile(r"lasthop\.yaml:(\d+): ")


def base_texts() -> dict[str, str]:
    texts = {}
    for name in ("example", "lab"):
        text = (ROOT / "config" / f"{name}.yaml").read_text(encoding="utf-8")
        for absolute, local in _KEY_PATHS.items():
            text = text.replace(absolute, local)
        texts[name] = text
    return texts


BASES = base_texts()
_PARSED = {name: yaml.load(text, Loader=yaml.CSafeLoader) for name, text in BASES.items()}


# -- hostile values ------------------------------------------------------------------------------


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def _alias_bomb(levels: int = 9, width: int = 9) -> object:
    # The dumper writes each list once with an anchor, then aliases: a few hundred bytes of YAML
    # that expand to width**levels values if anything walks them naively.
    value: object = ["lol"] * width
    for _ in range(levels):
        value = [value] * width
    return value


def _cycle() -> object:
    loop: list[object] = []
    loop.append(loop)
    return loop


@dataclass(frozen=True)
class Raw:
    """A scalar written as it stands: Python itself cannot turn a 5000-digit int into text."""

    tag: str
    text: str


class _Dumper(yaml.SafeDumper):
    pass


class _FastDumper(yaml.CSafeDumper):
    pass


for _dumper in (_Dumper, _FastDumper):
    _dumper.add_representer(Raw, lambda dumper, raw: dumper.represent_scalar(raw.tag, raw.text))


def _dump(doc: object, **options: Any) -> str:
    try:
        return yaml.dump(doc, Dumper=_FastDumper, **options)  # libyaml: the fuzz spends its time loading
    except UnicodeEncodeError:  # a lone surrogate, which only the pure-Python emitter escapes
        return yaml.dump(doc, Dumper=_Dumper, **options)


HOSTILE: list[tuple[str, Callable[[], object]]] = [
    ("null", lambda: None),
    ("empty", lambda: ""),
    ("10**400", lambda: 10**400),
    ("negative", lambda: -5),
    ("zero", lambda: 0),
    ("inf text", lambda: "inf"),
    ("nan text", lambda: "nan"),
    ("-inf text", lambda: "-inf"),
    ("inf float", lambda: math.inf),
    ("nan float", lambda: math.nan),
    ("1e20", lambda: 1e20),
    ("1e-320", lambda: 1e-320),
    ("400 nines s", lambda: "9" * 400 + "s"),
    ("list", lambda: ["a", 1]),
    ("empty list", lambda: []),
    ("mapping", lambda: {"a": 1}),
    ("empty mapping", lambda: {}),
    ("5000 digits", lambda: Raw("tag:yaml.org,2002:int", "1" * 5000)),
    ("true", lambda: True),
    ("rtl", lambda: "\u202eedge\u202c"),
    ("zero width", lambda: "we\u200bb1"),
    ("emoji", lambda: "\U0001f525web"),
    ("combining", lambda: "e\u0301dge"),
    ("nul", lambda: "web\x001"),
    ("escape", lambda: "\x1b[31mred\x1b[0m"),
    ("del", lambda: "ed\x7fge"),
    ("newline", lambda: "two\nlines"),
    ("lone surrogate", lambda: "\ud800x"),
    ("100k text", lambda: "a" * 100_000),
    ("100k unicode", lambda: "\u00e9" * 100_000),
    ("depth 40", lambda: _nested(40)),
    ("alias bomb", _alias_bomb),
    ("cycle", _cycle),
    ("braces", lambda: "{message} {0} %s"),
    ("env ref", lambda: "${NOT_SET_ANYWHERE}"),
    ("long env ref", lambda: "${" + "A" * 5000 + "}"),
    # wrong values for durations, ports, addresses, prefixes, names and Slack IDs
    ("5 sec", lambda: "5 sec"),
    ("1d", lambda: "1d"),
    ("-5s", lambda: "-5s"),
    ("720h1ms", lambda: "720h1ms"),
    ("port text", lambda: "22"),
    ("port float", lambda: 22.0),
    ("port 65536", lambda: 65536),
    ("address 256", lambda: "192.0.2.256"),
    ("ipv6", lambda: "2001:db8::1"),
    ("address with length", lambda: "192.0.2.1/24"),
    ("address as int", lambda: 3221225985),
    ("host name with space", lambda: "web one.example.net"),
    ("prefix host bits", lambda: "198.51.100.33/27"),
    ("prefix /33", lambda: "198.51.100.0/33"),
    ("prefix /0", lambda: "0.0.0.0/0"),
    ("prefix ipv6", lambda: "2001:db8::/32"),
    ("prefix without length", lambda: "198.51.100.0"),
    ("slack name", lambda: "@alice"),
    ("slack channel name", lambda: "#ops"),
    ("lowercase id", lambda: "u0alice"),
    ("bad name", lambda: "Web_1"),
    ("path traversal", lambda: "../../../../etc/shadow"),
    ("home of nobody", lambda: "~no-such-user-lasthop/key"),
    ("long path", lambda: "/" + "d" * 5000 + "/key"),
    ("url", lambda: "http://198.51.100.1/"),
    ("command", lambda: "/status"),
]

_HOSTILE_KEYS: list[Callable[[], object]] = [
    lambda: None, lambda: 7, lambda: True, lambda: 1.5, lambda: "", lambda: "k" * 100_000,
    lambda: "\u202ekey", lambda: "ke\x00y", lambda: "two\nlines",
]


# -- the mutations -----------------------------------------------------------------------------------


Path_ = tuple[Any, ...]


def _paths(node: object, at: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*at, key)
            yield from _paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*at, i)
            yield from _paths(value, (*at, i))


def _parent(doc: Any, path: Path_) -> Any:
    node = doc
    for seg in path[:-1]:
        node = node[seg]
    return node


def _typo(key: str, rng: random.Random) -> str:
    if len(key) < 2:
        return key + "x"
    i = rng.randrange(len(key) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return key[:i] + key[i + 1] + key[i] + key[i + 2:]  # two letters swapped
    if kind == 1:
        return key[:i] + key[i + 1:]  # a letter dropped
    return key[:i] + rng.choice("aeiorst_-") + key[i:]  # a letter added


def _rekey(node: dict[Any, Any], old: Any, new: Any) -> None:
    # Keeps the key's place, so the lines of everything else stay where they were.
    items = list(node.items())
    node.clear()
    for key, value in items:
        node[new if key == old else key] = value


def structural(base: str, rng: random.Random, i: int) -> tuple[str, str]:
    doc = copy.deepcopy(_PARSED[base])
    paths = list(_paths(doc))
    path = rng.choice(paths)
    parent = _parent(doc, path)
    op = i % 6
    if op == 0:
        del parent[path[-1]]
        what = "delete"
    elif op == 1 and isinstance(path[-1], str):
        _rekey(parent, path[-1], _typo(path[-1], rng))
        what = "rename"
    elif op == 2 and isinstance(parent, dict):
        _rekey(parent, path[-1], rng.choice(_HOSTILE_KEYS)())
        what = "hostile key"
    else:
        name, make = HOSTILE[(i // 6 * 5 + op) % len(HOSTILE)]
        parent[path[-1]] = make()
        what = f"value {name}"
    text = _dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5, width=rng.choice([80, 10**6]))
    return f"{what} at {'.'.join(map(str, path))[:60]}", text


_INSERTS = [b"\t", b"\x00", b"\x1b", b"\x7f", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\r", b"\n", b": ", b"- ",
            b"&a ", b"*a", b"*nope", b"{", b"}", b"[", b"]", b"'", b'"', b"#", b"%YAML 1.1\n", b"---\n", b"...\n",
            b"!!python/object/apply:os.system ['true'] ", b"!!binary ", b"!!set ", b"? ", b"<<: ", b"<<: *a\n",
            b"? [a, b]\n: x\n", b"\xe2\x80\xae", b"\xe2\x80\x8b", b"\xed\xa0\x80", b"~", b"!!float ", b"9" * 500,
            b"|\n", b">-\n"]


def textual(base: str, rng: random.Random, i: int) -> tuple[str, bytes]:
    raw = base.encode("utf-8")
    lines = raw.split(b"\n")
    op = i % 12
    pos = rng.randrange(len(raw))
    n = rng.randrange(len(lines))
    if op == 0:
        raw = raw[:pos] + bytes([raw[pos] ^ (1 << rng.randrange(8))]) + raw[pos + 1:]
        what = f"flip a bit at byte {pos}"
    elif op == 1:
        raw = raw[:pos] + raw[pos + rng.randint(1, 40):]
        what = f"delete bytes at {pos}"
    elif op in (2, 3):
        insert = rng.choice(_INSERTS)
        raw = raw[:pos] + insert + raw[pos:]
        what = f"insert {insert[:12]!r} at {pos}"
    elif op == 4:
        raw = raw[:pos]
        what = f"truncate at {pos}"
    elif op == 5:
        lines[n] = re.sub(rb"^( +)", lambda m: b"\t" * rng.randint(1, max(1, len(m.group(1)) // 2)), lines[n])
        raw = b"\n".join(lines)
        what = f"tabs on line {n + 1}"
    elif op == 6:
        raw = b"\xef\xbb\xbf" + (raw.replace(b"\n", b"\r\n") if rng.random() < 0.5 else raw)
        what = "a BOM"
    elif op == 7:
        raw = raw.replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\r"]))
        what = "other line ends"
    elif op == 8:
        lines.insert(n, lines[n])
        raw = b"\n".join(lines)
        what = f"line {n + 1} twice"
    elif op == 9:
        m = rng.randrange(len(lines))
        lines[n], lines[m] = lines[m], lines[n]
        raw = b"\n".join(lines)
        what = f"lines {n + 1} and {m + 1} swapped"
    elif op == 10:
        lines[n] = b" " * rng.choice([1, 2, 3]) + lines[n]
        raw = b"\n".join(lines)
        what = f"line {n + 1} indented"
    else:
        bomb = b"a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + b"".join(
            b"a%d: &a%d [" % (k, k) + b", ".join([b"*a%d" % (k - 1)] * 9) + b"]\n" for k in range(1, 10))
        raw = raw + b"\n" + bomb if rng.random() < 0.5 else bomb + raw
        what = "a billion laughs"
    return what, raw


@dataclass(frozen=True)
class Case:
    base: str
    what: str
    data: bytes

    def __str__(self) -> str:
        return f"{self.base}: {self.what}"


@functools.cache
def cases() -> list[Case]:
    rng = random.Random(SEED)
    names = sorted(BASES)
    out = []
    for i in range(STRUCTURAL_MUTATIONS):
        base = names[i % len(names)]
        what, text = structural(base, rng, i)
        out.append(Case(base, what, text.encode("utf-8", "surrogatepass")))
    for i in range(TEXT_MUTATIONS):
        base = names[i % len(names)]
        what, raw = textual(BASES[base], rng, i)
        out.append(Case(base, what, raw))
    return out


# -- the checks ---------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.name != "lasthop.yaml"}


def check_outcome(case: Case, path: Path) -> str:
    """Load the case's file; 'loaded' or 'refused', or fail the test saying what went wrong."""
    try:
        inv = load_inventory(path, ENV)
    except ConfigError as e:
        check_message(case, e)
        return "refused"
    except Exception as e:  # anything else is the bug this suite looks for
        raise AssertionError(f"{case}: {type(e).__name__} escaped the loader: {e!s:.300}") from e
    summary = inv.describe()  # what check-config prints
    assert summary.startswith("inventory "), case
    return "loaded"


def check_message(case: Case, error: ConfigError) -> None:
    text = str(error)
    lines = text.splitlines()
    assert lines, f"{case}: an empty error"
    assert len(lines) == len(error.errors), f"{case}: one line per problem:\n{text[:2000]}"
    source = case.data.decode("utf-8", "replace")
    for line, issue in zip(lines, error.errors, strict=True):
        assert issue.line is not None, f"{case}: no line number in {line[:MAX_LINE]!r}"
        assert _LINE_HEAD.match(line), f"{case}: {line[:MAX_LINE]!r}"
        assert len(line) <= MAX_LINE, f"{case}: a line of {len(line)} characters: {line[:MAX_LINE]!r}..."
        assert line.isprintable(), f"{case}: control characters in {line!r}"
        for noise in _NOISE:
            assert noise not in line or noise in source, f"{case}: {noise!r} in {line!r}"
        for word in _PYTHON_ERROR.findall(line):
            assert word in source, f"{case}: {word} in {line!r}"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "id_test").write_text("not a real key\n")
    (tmp_path / "known_hosts").write_text("")
    # A relative sqlite state_url is taken from the working directory: any file made there is seen.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_unmutated_files_load(folder: Path) -> None:
    for name, text in BASES.items():
        (folder / "lasthop.yaml").write_text(text)
        assert load_inventory(folder / "lasthop.yaml", ENV).services, name


def test_the_mutations_are_many_distinct_and_seeded() -> None:
    first, again = cases(), cases.__wrapped__()
    assert len(first) == MUTATIONS >= 2000
    assert first == again
    assert len({c.data for c in first}) > MUTATIONS * 0.75


@pytest.mark.timeout(240)
def test_every_mutation_loads_or_is_refused_in_words(folder: Path, tally: Tally) -> None:
    before = _snapshot(folder)
    path = folder / "lasthop.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    for case in cases():
        path.write_bytes(case.data)
        tally.run()
        outcomes[check_outcome(case, path)] += 1
        assert _snapshot(folder) == before, f"{case}: loading wrote to {folder}"
    # Both outcomes happen: a fuzz where everything is refused (or loads) tests little.
    assert outcomes["refused"] > MUTATIONS / 2 and outcomes["loaded"] > 20, outcomes


def _nastiest() -> list[Case]:
    wanted = ("alias bomb", "cycle", "billion laughs", "10**400", "5000 digits", "depth 40", "100k", "nul",
              "lone surrogate", "escape", "insert b'\\x00'", "insert b'\\xff'", "a BOM", "tabs", "long path",
              "home of nobody", "long env ref", "hostile key", "truncate", "rtl")
    found: list[Case] = []
    all_cases = cases()
    for word in wanted:
        found.extend([c for c in all_cases if word in c.what][:1])
    return found[:CLI_CASES]


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LASTHOP_CONFIG"} | ENV
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(path), "check-config"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.timeout(180)
def test_the_cli_refuses_the_nastiest_in_words(tmp_path: Path, tally: Tally) -> None:
    picked = _nastiest()
    assert len(picked) >= CLI_CASES - 2
    paths = []
    for n, case in enumerate(picked):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        (folder / "id_test").write_text("not a real key\n")
        (folder / "known_hosts").write_text("")
        (folder / "lasthop.yaml").write_bytes(case.data)
        paths.append(folder / "lasthop.yaml")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_check_config, paths))
    refused = 0
    for case, result in zip(picked, results, strict=True):
        tally.run()
        tally.tracebacks += tracebacks(result.stderr)
        assert "Traceback" not in result.stderr, f"{case}:\n{result.stderr[-2000:]}"
        if result.returncode == 0:
            assert result.stdout.startswith("inventory "), f"{case}: {result.stdout[:500]}"
            continue
        refused += 1
        assert result.returncode == 2, f"{case}: exit {result.returncode}\n{result.stderr[-2000:]}"
        lines = result.stderr.splitlines()
        assert lines and all(len(line) <= MAX_LINE for line in lines), f"{case}:\n{result.stderr[:2000]}"
        assert not result.stdout, f"{case}: {result.stdout[:500]}"
    assert refused >= len(picked) - 3
