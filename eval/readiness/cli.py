"""``octo readiness runs/<study> [--arms a,b] [--baseline NAME] [key=value ...]``: argument parsing only."""

from __future__ import annotations

import argparse
import json
import sys

from .build import build_readiness


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo readiness", description="the RL-readiness table of a study")
    parser.add_argument("study", help="runs/<study>")
    parser.add_argument(
        "--arms",
        help="comma-separated row order (default: baseline first, then the study's arm order, then sorted)",
    )
    parser.add_argument("--baseline", help="name of the base-model arm (default: base)")
    parser.add_argument("options", nargs="*", help="option overrides, e.g. min_gain=0.1 window=20")
    args, extra = parser.parse_known_args(argv)  # options may come before or after the flags
    options: dict = {}
    for item in [*args.options, *extra]:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"expected key=value, got {item!r}")
        options[key] = (
            json.loads(value) if value[:1] in "0123456789-[{" or value in ("true", "false") else value
        )
    if args.arms:
        options["arms"] = [a.strip() for a in args.arms.split(",") if a.strip()]
    if args.baseline:
        options["baseline"] = args.baseline
    try:
        md = build_readiness(args.study, **options)
    except (FileNotFoundError, ValueError) as exc:  # bad folder, bad option, unreadable metrics: say which
        print(f"octo readiness: {exc}", file=sys.stderr)
        return 2
    print(md.read_text())
    print(f"written: {md} (+ .csv .json .html, plots/)")
    return 0
