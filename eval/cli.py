"""``octo eval run configs/eval/<suite>.yaml --model PATH [--out DIR] [key=value ...]``: score a checkpoint.

Reads top to bottom: parse the command line, load the suite (typed, with dotted overrides), run it, print the
table of scores. The work itself is ``eval.run`` (the function the study orchestrator calls in-process).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import eval as evaluation
from eval.runner import default_out_dir, score_lines
from octo.config import parse_with_overrides


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo eval", description="lighteval suites on a checkpoint")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="score a checkpoint on a suite")
    run_p.add_argument("suite", help="configs/eval/<suite>.yaml")
    run_p.add_argument("--model", required=True, help="HF checkpoint folder")
    run_p.add_argument("--out", help="output folder (default: runs/eval/<model folder name>/<suite name>)")
    run_p.add_argument("--force", action="store_true", help="run even if a complete result exists")
    run_p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. max_items=20 generation.n=8")
    show_p = sub.add_parser("show", help="print the resolved suite config")
    show_p.add_argument("suite")
    show_p.add_argument("overrides", nargs="*")
    args, overrides = parse_with_overrides(parser, argv)
    suite = evaluation.load(args.suite, overrides)
    if args.command == "show":
        print(evaluation.dry_run(suite))
        return 0
    out = Path(args.out) if args.out else default_out_dir(args.model, suite)
    results = evaluation.run(suite, args.model, out, force=args.force)
    print(f"\n{suite.name} on {args.model} -> {out}")
    print(score_lines(results))
    return 0
