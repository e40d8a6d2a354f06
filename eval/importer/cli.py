"""``octo runs import STUDY SOURCE... (--mapping FILE | --preset verl|trl) [options] [key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from octo.config import parse_with_overrides

from .mapping import load_mapping
from .readers import FORMATS
from .run import import_runs


def _pairs(items: list[str], flag: str, parser) -> dict[str, str]:
    out = {}
    for item in items or []:
        arm, sep, path = item.partition("=")
        if not sep or not arm or not path:
            parser.error(f"{flag} expects ARM=FILE, got {item!r}")
        out[arm] = path
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo runs", description="bring runs made elsewhere into a study")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("import", help="W&B exports, veRL/TRL logs, lighteval results -> run folders")
    p.add_argument("study", help="runs/<study> (created if missing; native arms may already be there)")
    p.add_argument(
        "sources", nargs="*", help="W&B CSV/JSONL exports, veRL JSONL or console logs, trainer_state.json"
    )
    p.add_argument("--mapping", help="mapping YAML (configs/imports/*.yaml shows the fields)")
    p.add_argument("--preset", help="a preset alone (verl, trl) when there is no mapping file")
    p.add_argument(
        "--format", choices=[f for f in FORMATS if f != "auto"], help="default: the mapping's, else sniffed"
    )
    p.add_argument("--run", help="run name of one-run files (default: the file's stem / output folder)")
    p.add_argument("--before", action="append", metavar="ARM=FILE", help="lighteval results before RL")
    p.add_argument("--after", action="append", metavar="ARM=FILE", help="lighteval results after RL")
    p.add_argument("--suite", default="lighteval", help="suite name prefix of imported lighteval results")
    p.add_argument("--name", help="report name under <study>/import/ (default: the first source's stem)")
    p.add_argument("--force", action="store_true", help="write over a native run folder of the same arm")
    args, overrides = (
        parse_with_overrides(p, argv[1:]) if argv[:1] == ["import"] else parse_with_overrides(parser, argv)
    )
    before, after = _pairs(args.before, "--before", parser), _pairs(args.after, "--after", parser)
    if not args.sources and not before and not after:
        parser.error("nothing to import: give source files or --before/--after ARM=FILE")
    mapping = load_mapping(args.mapping, args.preset, overrides)
    try:
        report = import_runs(args.study, args.sources, mapping, fmt=args.format, run=args.run, before=before,
                             after=after, suite=args.suite, force=args.force, name=args.name)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"octo runs import: {exc}", file=sys.stderr)
        return 2
    with open(report["report"], encoding="utf-8") as fh:
        print(fh.read())
    print(f"written: {report['report']} (+ .json); next: octo readiness {args.study}")
    return 0
