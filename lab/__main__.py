"""`python3 -m lab up|down|status|break|heal`, the same as `lasthop lab ...`."""

from __future__ import annotations

import argparse
import sys

from lab.cli import configure, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
