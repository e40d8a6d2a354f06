"""``octo probe MODEL --rl CONFIG [--out DIR] [key=value ...]``: the readiness probe of a checkpoint before RL.

``key=value`` words set probe options (``budget_share=0.02``, ``references.benchmark=gsm8k``); ``rl.key=value``
words override the RL recipe (``rl.trainer.num_generations=4``). ``octo probe validate RUNS_DIR`` (evaluation's
side: it reads probe.json files next to the RL outcomes) is dispatched by ``octo.cli``.
"""

from __future__ import annotations

import argparse
import json
import sys

from octo.config import parse_with_overrides

from . import load
from .probe_config import load_probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="octo probe", description=__doc__)
    parser.add_argument("model", help="HF model folder (the checkpoint before RL)")
    parser.add_argument("--rl", required=True, help="configs/rl/<x>.yaml: the RL run the probe predicts")
    parser.add_argument("--out", help="output folder (default: runs/probe/<model folder name>)")
    parser.add_argument(
        "overrides", nargs="*", help="probe options key=value; rl.key=value for the RL recipe"
    )
    args, words = parse_with_overrides(parser, sys.argv[1:] if argv is None else argv)

    from pathlib import Path

    from .probe import run_probe  # torch/transformers: only when the probe runs

    rl_overrides = [w[3:] for w in words if w.startswith("rl.")]
    probe_overrides = [w for w in words if not w.startswith("rl.")]
    probe_overrides.append(f"output_dir={args.out or Path('runs/probe') / Path(args.model).name}")
    path = run_probe(load_probe(probe_overrides), load(args.rl, rl_overrides), args.model)
    result = json.loads(path.read_text())
    pred, budget = result["prediction"], result["budget"]
    print(f"{path}: score {pred['score']:.3f}, {pred['verdict']}; spent {budget['spent_tokens']} of "
          f"{budget['allowed_tokens']} allowed tokens ({budget['spent_share_of_rl']:.2%} of RL's generation)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
