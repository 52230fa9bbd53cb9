"""`lab` subcommands: up, down, status, break, heal. Short output, one-line errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lab import sshd
from lab.errors import LabError
from lab.lab import Lab, require_root
from lab.plan import LabPlan
from lab.state import DEFAULT_STATE_ROOT, StatePaths, recorded_slot

DEFAULT_PREFIX = "lh"
_DESCRIPTION = "A copy of the lasthop network in network namespaces (needs root)."


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `lab` on an argparse subparsers object; its handler is `args.func` (= run)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lab", help="the network-namespace lab", description=_DESCRIPTION
    )
    configure(parser)
    return parser


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the lab subcommands to `parser` (used by add_parser and `python3 -m lab`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"name prefix of the lab (default {DEFAULT_PREFIX})")
    common.add_argument(
        "--slot",
        type=int,
        default=None,
        help="mgmt net 198.18.SLOT.0/24 (default: the running lab's, else 0)",
    )
    commands = parser.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)
    commands.add_parser("up", parents=[common], help="build the lab, or repair it")
    commands.add_parser("down", parents=[common], help="remove everything the lab made")
    commands.add_parser("status", parents=[common], help="what runs, what answers")
    broken = commands.add_parser("break", parents=[common], help="fail a web host")
    broken.add_argument("host", help="web1, web2 or web3")
    broken.add_argument("--link", action="store_true", help="take eth0 down instead of the web server")
    heal = commands.add_parser("heal", parents=[common], help="restore a web host")
    heal.add_argument("host", help="web1, web2 or web3")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        require_root()
        return _dispatch(args)
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head`: the work is done, only the printing stopped.
        # Point stdout at /dev/null so the interpreter's final flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    prefix: str = args.prefix
    LabPlan(prefix)  # validates the prefix before it is used in a path
    slot: int | None = args.slot
    if slot is None:
        slot = recorded_slot(StatePaths(DEFAULT_STATE_ROOT, prefix)) or 0
    lab = Lab(prefix, slot, report=_say)
    command: str = args.lab_command
    if command == "up":
        actions = lab.up()
        _print_up(lab, actions)
        return 0
    if command == "down":
        lab.down()
        print(f"lab {prefix} is down")
        return 0
    if command == "status":
        status = lab.status()
        print(status.render())
        return 0 if status.healthy else 1
    if command == "break":
        actions = lab.break_host(args.host, link=args.link)
        print("\n".join(actions) or f"{args.host}: already broken")
        return 0
    if command == "heal":
        actions = lab.heal(args.host)
        print("\n".join(actions) or f"{args.host}: already healthy")
        return 0
    raise LabError(f"unknown lab command {command!r}")


def _print_up(lab: Lab, actions: list[str]) -> None:
    plan = lab.plan
    if not actions:
        print(f"lab {plan.prefix} is up and healthy, nothing to do")
    else:
        print(f"lab {plan.prefix} is up: mgmt {plan.mgmt_net}, state {lab.state_dir}")
    ssh = f"ssh -i {lab.key_file} -o UserKnownHostsFile={lab.known_hosts}"
    for device in plan.devices:
        note = " (vtysh)" if device.kind == "frr" else ""
        print(f"  {device.name:<5} {ssh} {sshd.login(device)}@{device.address}{note}")


def _say(message: str) -> None:
    print(message)
