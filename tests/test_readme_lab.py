"""README's "Using it" and "Running it" examples, run one by one against the lab, in the order written.

Each command line of those sections' sh blocks is taken from README.md itself and run as the real
command in a child process (`python -m bot.cli --config <the lab's inventory>`, its own --config
replaced). A question ("Proceed? [y/N]") is answered "y" on a terminal, as the reader would. Every
line must be in EXAMPLES, in README order, with its exit status and phrases of its output, or with
why it is not run: a README line that changes, appears or disappears fails this test, and so does
a line whose command no longer does what is written here. Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.inventory import Inventory
from lab import Lab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Using it", "Running it")


@dataclass(frozen=True)
class Expect:
    status: int
    says: tuple[str, ...] = ()  # each must be in the output
    once: tuple[str, ...] = ()  # each must be in the output exactly once
    never: tuple[str, ...] = ()  # none may be in the output


# In README order: each line's command, and what it must do (or why it is not run here).
EXAMPLES: list[tuple[str, Expect | str]] = [
    ("lasthop --config config/lasthop.yaml check-config --connect",
     Expect(0, ("router r1: reachable, host key ok", "host web1: reachable, host key ok, all 4 VIPs on lo"))),
    ("lasthop status", Expect(0, ("SERVED BY", "www-a      198.51.100.32/27   r1     web1"), never=("maintenance",))),
    ("lasthop status www-a --json", Expect(0, ('"service": "www-a"', '"loopback_state": "ok"'))),
    ("lasthop failover www-a --dry-run",
     Expect(0, ("ip route 198.51.100.32/27 198.51.100.3", "write memory", "Needs approval:"),
            once=("nothing changed",))),
    ("lasthop failover www-a",
     Expect(1, ("Refused: this plan needs a second person's approval", "--accept-risk",
                "moves www-a away from web1, which is healthy"), never=("Proceed?",))),
    ("lasthop failover www-a --to web3 --accept-risk",
     Expect(0, ("Proceed? [y/N]", "Done", "www-a: web1 -> web3, verified in the FIB"))),
    ("lasthop failover web1 --accept-risk --yes", Expect(0, ("Done", "www-d: web1 -> "), never=("Proceed?",))),
    ("lasthop history --limit 20",
     Expect(0, ("failover www-a: REFUSED", "    moves www-a away from web1, which is healthy",
                "move www-a: done, RISK ACCEPTED without a second person", "dry run www-a: ok"),
            never=("dry-run:dry-run",))),
    ("lasthop console --user alice",
     "interactive until its input ends (tests/bot/test_console_lab.py runs a scripted session)"),
    ("sudo lasthop demo", "interactive, and on the default lab (tests/bot/test_demo_lab.py runs a scripted demo)"),
    ("lasthop slack-manifest > manifest.yaml", Expect(0, ("display_information:", "socket_mode_enabled: true"))),
    ("lasthop serve [--port 8080]", "runs until SIGTERM (tests/bot/test_serve_lab.py runs the daemon)"),
    ('lasthop maintenance web3 on --for 2h --reason "kernel update" --accept-risk',
     Expect(0, ("Drain and start maintenance? [y/N]", "web3 is in maintenance for 2h (kernel update)"))),
    ("lasthop status", Expect(0, ("SERVED BY", "web3 is in maintenance until ", ": kernel update"))),
    ("lasthop maintenance web3 off", Expect(0, ("web3 is out of maintenance",))),
]


def readme_examples() -> list[list[str]]:
    """The command lines of the sh blocks in SECTIONS as words, in order; comment-only lines left out."""
    text = (ROOT / "README.md").read_text()
    commands: list[list[str]] = []
    for section in SECTIONS:
        match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.S | re.M)
        assert match, f"README.md has no section {section!r}"
        for block in re.findall(r"^```sh\n(.*?)^```", match.group(1), re.S | re.M):
            commands += [words for line in block.splitlines() if (words := shlex.split(line, comments=True))]
    return commands


def argv_of(words: list[str], config: Path) -> tuple[list[str], bool]:
    """The child's argv for a README command, and whether its stdout is redirected to a file there."""
    assert words[0] == "lasthop", words
    args, redirected, i = [], False, 1
    while i < len(words):
        if words[i] == "--config":
            i += 2
            continue
        if words[i] == ">":
            redirected, i = True, i + 2
            continue
        args.append(words[i])
        i += 1
    return [sys.executable, "-m", "bot.cli", "--config", str(config), *args], redirected


def run_answering_yes(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run with a terminal for stdin that already holds "y": what a person would type at the question."""
    master, slave = os.openpty()
    try:
        os.write(master, b"y\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LASTHOP_CONFIG"))}
        env["PYTHONPATH"] = str(ROOT)  # this tree's code, run from elsewhere (no config/lasthop.yaml there)
        return subprocess.run(argv, stdin=slave, capture_output=True, text=True, timeout=180, cwd=cwd, env=env)
    finally:
        os.close(slave)
        os.close(master)


def test_every_readme_example_is_checked_or_skipped_with_a_reason() -> None:
    written = [shlex.join(words) for words in readme_examples()]
    listed = [shlex.join(shlex.split(line)) for line, _ in EXAMPLES]
    assert written == listed, ("README's examples differ from EXAMPLES here; say what each new or changed line "
                               f"must do:\nREADME:   {written}\nEXAMPLES: {listed}")


def test_readme_examples_do_what_the_readme_says(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                 tmp_path: Path) -> None:
    test_every_readme_example_is_checked_or_skipped_with_a_reason()
    config = tmp_path / "lasthop.yaml"
    text = lab.inventory.read_text().replace(f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url)
    config.write_text(text.replace("auto_failover: true", "auto_failover: false"))
    failures = []
    for line, expect in EXAMPLES:
        if isinstance(expect, str):
            continue  # skipped, for the reason given
        argv, _ = argv_of(shlex.split(line), config)
        done = run_answering_yes(argv, tmp_path)
        out = done.stdout + done.stderr
        problems = [f"exit {done.returncode}, expected {expect.status}"] if done.returncode != expect.status else []
        problems += [f"missing {p!r}" for p in expect.says if p not in out]
        problems += [f"{p!r} {out.count(p)} times, not once" for p in expect.once if out.count(p) != 1]
        problems += [f"unexpected {p!r}" for p in expect.never if p in out]
        problems += ["a traceback"] if "Traceback" in out else []
        if problems:
            failures.append(f"{line}: {'; '.join(problems)}\n{out}")
    assert not failures, "\n\n".join(failures)
