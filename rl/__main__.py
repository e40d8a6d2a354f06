"""``octo rl run configs/rl/<x>.yaml --model PATH [key.sub=value ...]``: GRPO that records the RL dynamics."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="octo rl", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run GRPO from a checkpoint (resumes an interrupted run)")
    p.add_argument("config", help="configs/rl/<x>.yaml")
    p.add_argument("overrides", nargs="*", help="dotted key.sub=value overrides (trainer.steps=10)")
    p.add_argument("--model", help="HF model folder to start from (sets the 'model' field)")
    p.add_argument("--out", help="output folder (sets the 'output_dir' field)")
    # overrides may come before or after the options: collect every key=value word
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    stray = [w for w in rest if "=" not in w or w.startswith("-")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")

    from . import load
    from .grpo import run

    overrides = list(args.overrides) + rest
    if args.model:
        overrides.append(f"model={args.model}")
    if args.out:
        overrides.append(f"output_dir={args.out}")
    final = run(load(args.config, overrides))
    print(final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
