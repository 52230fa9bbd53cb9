"""Fuzzing the inventory loader (issue 11): thousands of broken config files, none may crash it.

Each mutation of config/example.yaml or config/lab.yaml either loads (and check-config's summary
of it renders) or is refused with a `ConfigError`: one short line per problem, each naming its
line, never a Python exception's name or a traceback. Loading writes nothing and stays fast:
pytest-timeout bounds every test, so an alias bomb that took minutes would fail here.

Besides random changes, each shape an earlier run found escaping or misreported is also put in
its place (a long path as key_file, an empty list as lan, 1e-320 as an interval, a null key),
where it must be refused.

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
CLI_CASES = 24

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
# Python's names for YAML's null, true and false, and the repr of a tuple: a key or value shown so
# was not shown as the file wrote it.
_PYTHON_REPR = re.compile(r"\b(?:None|True|False)\b|\('")
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


# Shapes a fuzz run once found escaping the loader, or refused in false or endless words. A random
# place seldom is the one where each matters, so each is also put in its place: a path where a
# file's path goes, a duration where a duration goes, a name where a name goes.
_LONG = 5000
_FILES = frozenset({"key_file", "known_hosts", "password_file"})
_DURATIONS = frozenset({"interval", "timeout", "fast_interval", "window", "hold_down", "connect_timeout",
                        "approval_timeout", "verify_timeout", "command_timeout"})
IN_PLACE: list[tuple[str, frozenset[str], Callable[[], object], str]] = [  # (name, keys, value, what it is told)
    ("long path", _FILES, lambda: "/" + "d" * _LONG + "/key", r"cannot .*: File name too long"),
    ("long file name", _FILES, lambda: "k" * 300, r"cannot .*: File name too long"),
    ("home of nobody", _FILES, lambda: "~no-such-user-lasthop/key", r": no user 'no-such-user-lasthop' for ~$"),
    ("long env ref", frozenset({"password"}), lambda: "${" + "A" * _LONG + "}", r"A… \(5000 characters\) is not set"),
    ("long env ref in a URL", frozenset({"state_url"}), lambda: "postgresql://u:${" + "A" * _LONG + "}@db/x",
     r"A… \(5000 characters\) is not set"),
    ("empty list", frozenset({"lan"}), lambda: [], r"lan: must not be empty"),
    ("1e-320", _DURATIONS, lambda: 1e-320, r"1e-320s is too short: at least 1ms"),
    ("1e-320 text", _DURATIONS, lambda: "1e-320", r"1e-320s is too short: at least 1ms"),
    ("0.1ms", _DURATIONS, lambda: "0.1ms", r"0.0001s is too short: at least 1ms"),
    ("long name", frozenset({"router", "hosts", "alert_channel"}), lambda: "n" * _LONG, r"n… \(5000 characters\)"),
    ("long address", frozenset({"address"}), lambda: "fe80::1%" + "e" * _LONG, r"e… \(5008 characters\)"),
    ("long prefix", frozenset({"prefix"}), lambda: "198.51.100.33/" + "0" * _LONG + "27",
     r"'198\.51\.100\.33/0+… \(5016 characters\)' is not an IPv4 prefix"),
    ("null in a list", frozenset({"hosts", "vips", "lan", "tags", "channels", "viewers"}), lambda: [None, True],
     r"\[0\]: (must be|a .* is text|a tag must be)"),
]
# Keys YAML 1.1 reads as something other than text, put in place of a section's or an entry's name.
IN_PLACE_KEYS: list[tuple[str, Callable[[], object], str]] = [
    ("key 1", lambda: 1, r"'1'"), ("key null", lambda: None, r"'null'"), ("key true", lambda: True, r"'true'"),
    ("key 1.5", lambda: 1.5, r"'1\.5'"), ("key long", lambda: "k" * _LONG, r"k… \(5000 characters\)"),
    ("key escape", lambda: "\x1b[31mk", r"\\x1b\[31mk"),
]
# Written as text: a dumper would never write them.
APPENDED: list[tuple[str, bytes, str]] = [
    ("duplicate anchor", b"x1: &dup [1]\nx2: &dup [2]\n",
     r"^lasthop\.yaml:(\d+): the anchor &dup is defined twice \(first at line (\d+)\)"),
    ("long duplicate anchor", b"x1: &" + b"a" * _LONG + b" [1]\nx2: &" + b"a" * _LONG + b" [2]\n",
     r"the anchor &a+… \(5000 characters\) is defined twice"),
    ("long undefined alias", b"x1: *" + b"a" * _LONG + b"\n",
     r"the alias \*a+… \(5000 characters\) refers to no anchor"),
    ("long tag", b"x1: !" + b"t" * _LONG + b" 1\n", r"the tag '!t+… \(5001 characters\)' is not one lasthop reads"),
    ("long tag handle", b"x1: !" + b"t" * _LONG + b"!x 1\n", r"undefined tag handle '!t+… \(5002 characters\)'"),
    ("long explicit key", b"? " + b"k" * _LONG + b"\n: 1\n", r"unknown key 'k+… \(5000 characters\)'"),
    ("list as key", b"[a]: b\n", r"a list cannot be a key"),
    ("mapping as key", b"{a: 1}: b\n", r"a mapping cannot be a key"),
    ("null as key", b"null: x\n", r"unknown key 'null'"),
    ("true as key", b"true: y\n", r"unknown key 'true'"),
    ("number as key", b"1: x\n", r"unknown key '1'"),
]


def in_place(base: str, rng: random.Random, k: int) -> tuple[str, str, str]:
    doc = copy.deepcopy(_PARSED[base])
    if k < len(IN_PLACE):
        name, keys, make, expect = IN_PLACE[k]
        # Below the top level: `hosts` is also a section, and replacing a whole section tests little.
        paths = [p for p in _paths(doc) if len(p) > 1 and isinstance(p[-1], str) and p[-1] in keys]
        if paths:
            path = rng.choice(paths)
        else:  # the file does not set it: set it where it may go
            key = sorted(keys)[0]
            path = (key,) if key == "state_url" else ("routers", next(iter(doc["routers"])), key)
        value, parent = make(), _parent(doc, path)
        current = parent.get(path[-1]) if isinstance(parent, dict) else None
        if isinstance(current, list) and current and not isinstance(value, list):
            # A name where a list of names goes (a service's `hosts`) goes in the list: in its place,
            # the list itself is "must be a list", which is right but not the shape being tried.
            current[0] = value
            path = (*path, 0)
        else:
            parent[path[-1]] = value
    else:
        name, make, expect = IN_PLACE_KEYS[k - len(IN_PLACE)]
        # A section's name, or a key of an entry. Not an entry's own name (a router, host or service):
        # names are taken as written, so a service named `true` or `1` is a service of that name.
        paths = [p for p in _paths(doc) if isinstance(p[-1], str) and len(p) <= 3
                 and not (len(p) == 2 and p[0] in ("routers", "hosts", "services"))]
        path = rng.choice(paths)
        _rekey(_parent(doc, path), path[-1], make())
    text = _dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5, width=10**6)
    return f"{name} in place at {'.'.join(map(str, path))[:60]}", text, expect


IN_PLACE_MUTATIONS = 2 * (len(IN_PLACE) + len(IN_PLACE_KEYS)) + len(APPENDED)  # each, in both files (appended: one)
MUTATIONS = STRUCTURAL_MUTATIONS + TEXT_MUTATIONS + IN_PLACE_MUTATIONS


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
    expect: str = ""  # a shape put in its place: a regex one line of its refusal matches

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
    for base in names:
        for k in range(len(IN_PLACE) + len(IN_PLACE_KEYS)):
            what, text, expect = in_place(base, rng, k)
            out.append(Case(base, what, text.encode("utf-8", "surrogatepass"), expect))
    for n, (what, tail, expect) in enumerate(APPENDED):
        base = names[n % len(names)]
        out.append(Case(base, what, BASES[base].encode("utf-8") + b"\n" + tail, expect))
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
        for word in [*_PYTHON_ERROR.findall(line), *_PYTHON_REPR.findall(line)]:
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


def test_each_shape_in_its_place_is_refused_in_words_that_name_it(folder: Path, tally: Tally) -> None:
    # Each is a mistake wherever it is put: loading it is as wrong as an exception, and so is a
    # refusal that does not say what it is (once: "second occurrence", or "outside r1's lan :").
    placed = [c for c in cases() if c.expect]
    assert len(placed) == IN_PLACE_MUTATIONS
    path = folder / "lasthop.yaml"
    for case in placed:
        path.write_bytes(case.data)
        tally.run()
        with pytest.raises(ConfigError) as info:
            load_inventory(path, ENV)
        check_message(case, info.value)
        lines = str(info.value).splitlines()
        assert any(re.search(case.expect, line) for line in lines), f"{case}: not {case.expect!r} in\n{info.value}"
        if case.what == "duplicate anchor":  # the second line, naming the first
            second, first = map(int, re.search(case.expect, lines[0]).groups())  # type: ignore[union-attr]
            text = case.data.decode()
            assert (text.splitlines()[first - 1], text.splitlines()[second - 1]) == ("x1: &dup [1]", "x2: &dup [2]")
        if "empty list" in case.what:  # one error, not also every next hop "outside" an empty lan
            assert len(lines) == 1, str(info.value)


def _nastiest() -> list[Case]:
    wanted = ("alias bomb", "cycle", "billion laughs", "10**400", "5000 digits", "depth 40", "100k", "nul",
              "lone surrogate", "escape", "insert b'\\x00'", "insert b'\\xff'", "a BOM", "tabs", "long env ref",
              "hostile key", "truncate", "rtl", "long path in place", "home of nobody in place", "1e-320 in place",
              "empty list in place", "long duplicate anchor", "key null in place")
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
    for case, path, result in zip(picked, paths, results, strict=True):
        tally.run()
        tally.tracebacks += tracebacks(result.stderr)
        assert "Traceback" not in result.stderr, f"{case}:\n{result.stderr[-2000:]}"
        # Some mutations leave a valid file (a BOM, a cut after a complete entry, a path in a default
        # no device uses): the CLI must then say what the loader says, whatever the draw gave.
        try:
            load_inventory(path, ENV, defer_files=True)  # as check-config loads: file problems are warnings
            loads = True
        except ConfigError:
            loads = False
        if result.returncode == 0:
            assert loads, f"{case}: check-config accepted what the loader refuses"
            assert result.stdout.startswith("inventory "), f"{case}: {result.stdout[:500]}"
            continue
        assert not loads, f"{case}: check-config refused what the loader accepts:\n{result.stderr[-2000:]}"
        assert result.returncode == 2, f"{case}: exit {result.returncode}\n{result.stderr[-2000:]}"
        lines = result.stderr.splitlines()
        assert lines and all(len(line) <= MAX_LINE for line in lines), f"{case}:\n{result.stderr[:2000]}"
        assert not result.stdout, f"{case}: {result.stdout[:500]}"
