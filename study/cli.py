"""``octo study run configs/studies/<x>.yaml [--dry-run] [key.sub=value ...]``: a whole study end to end.

``octo study seeds DIR...``: one study run with several seeds, as mean ± sd per arm.
"""

from __future__ import annotations

import argparse

import study
from octo.config import parse_with_overrides
from study.seeds import main as seeds


def main(argv: list[str]) -> int:
    if argv and argv[0] == "seeds":
        return seeds(argv[1:])
    parser = argparse.ArgumentParser(prog="octo study", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "run", help="run (or resume) a study; --dry-run prints the plan and validates every config"
    )
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key.sub=value")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan and the compute estimate; run nothing"
    )
    # listed for --help only: main() hands `seeds` to study.seeds before parsing
    sub.add_parser(
        "seeds", help="mean ± sd of the readiness numbers of one study run with several seeds (DIR...)"
    )
    args, overrides = parse_with_overrides(parser, argv)
    config = study.load(args.config, overrides)
    if args.dry_run:
        print(study.dry_run(config))
        return 0
    study.run(config)
    return 0
