"""``octo rl run configs/rl/<x>.yaml --model PATH [key.sub=value ...]``: GRPO that records the RL dynamics."""

from __future__ import annotations

import argparse
import sys

import rl
from octo.config import parse_with_overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="octo rl", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run GRPO from a checkpoint (resumes an interrupted run)")
    p.add_argument("config", help="configs/rl/<x>.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key.sub=value overrides (trainer.steps=10)")
    p.add_argument("--model", help="HF model folder to start from (sets the 'model' field)")
    p.add_argument("--out", help="output folder (sets the 'output_dir' field)")
    p.add_argument(
        "--dry-run", action="store_true", help="validate the config and print the run; train nothing"
    )
    args, overrides = parse_with_overrides(parser, sys.argv[1:] if argv is None else argv)
    if args.model:
        overrides.append(f"model={args.model}")
    if args.out:
        overrides.append(f"output_dir={args.out}")
    config = rl.load(args.config, overrides)
    if args.dry_run:
        print(rl.dry_run(config))
        return 0
    print(rl.run(config))
    return 0
