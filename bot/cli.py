"""The `lasthop` command line. Subcommands parse, call into bot/ or lab/, and print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lasthop",
        description="Keep web sites up by moving VIP routes on the last-hop router.",
    )
    parser.add_argument("--version", action="version", version=f"lasthop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from lab import cli as lab_cli

    lab_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "lab":
        from lab import cli as lab_cli

        return lab_cli.run(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
