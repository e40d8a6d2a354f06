"""Rollout throughput of the RL stage against plain ``model.generate`` on the same prompts, in one process.

    .venv/bin/python benchmarks/rl.py [--model DIR] [--prompts 4] [--generations 8] [--max-new-tokens 48]
                                      [--rounds 5] [--threads 1]

Without ``--model`` it builds the demo's tiny Llama (hidden 128, 2 layers, vocab 3,072, random weights, so
every completion runs to the length limit: the worst case for the stop-string check). Three ways of producing
the same rollout batch (``prompts x generations`` sampled completions of the demo's arithmetic prompts, QA
template, T=1) are timed alternately ``--rounds`` times after a warm-up, and the medians compared:

* ``plain``: ``model.generate`` with the same sampling settings (the library baseline);
* ``rl generate``: the RL stage's generation path (TRL's transformers path + the stop-string criterion + the
  cut before the stop string + decoding);
* ``rl rollout``: everything the RL stage does per rollout batch before the loss (generation, rewards with the
  shared scorer, advantages, the samples/metrics records).

Tokens are generated completion tokens (padding excluded). The ratio is RL tokens/s over plain tokens/s; the
seconds per batch are printed too, since with a model that writes past its answer the stop strings make the RL
batch shorter (fewer tokens, less time) than plain generation.
Timings on a shared machine are noisy; compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages
from octo.assets import reasoning_gym_items, wiki_summaries
from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer
from rl import load
from rl.templates import render

ROOT = Path(__file__).resolve().parent.parent


def build_model(work: Path) -> Path:
    texts = [r["extract"] for r in wiki_summaries()[:2000]]
    tok = train_bpe_tokenizer(texts, work / "tok", vocab_size=3072)
    shape = TinyLlamaShape(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=336)
    return make_tiny_llama(shape, tok, work / "model", seed=0)


def rollout_paths(model_dir: Path, work: Path, prompts: int, generations: int, max_new: int):
    """The demo RL recipe's rollout batch, timed three ways on one model: plain ``model.generate``, the RL
    trainer's generation, and its whole rollout (generation + rewards + records). Each returns the tokens it
    generated. Also returns ``(model, batch rows, prompt tokens)`` for FLOP accounting."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.trainer import OctoGRPOTrainer, Recorder, grpo_args  # TRL

    cfg = load(
        ROOT / "configs/rl/demo.yaml",
        [f"model={model_dir}", f"output_dir={work}", f"trainer.prompts_per_step={prompts}",
         f"trainer.num_generations={generations}", f"trainer.max_completion_length={max_new}"],
    )  # fmt: skip
    tok = AutoTokenizer.from_pretrained(model_dir)
    items = reasoning_gym_items(cfg.prompts.dataset, prompts, cfg.prompts.seed, **cfg.prompts.options)
    rows = [
        {"prompt": render(cfg.template.name, x["question"]), "answer": x["answer"], "prompt_id": x["id"]}
        for x in items
    ]
    batch = [r for r in rows for _ in range(generations)]  # TRL's order: each prompt G times in a row
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    recorder = Recorder(cfg, samples_path=work / "samples.jsonl")  # records written, as in a real run
    trainer = OctoGRPOTrainer(
        model=model, reward_funcs=[recorder.as_reward_function()], args=grpo_args(cfg, work, use_cpu=True),
        train_dataset=Dataset.from_list(rows), processing_class=tok, stop_strings=cfg.template.stop_strings,
        length_schedule=cfg.trainer.max_completion_at,
    )  # fmt: skip
    recorder.trainer = trainer
    trainer.model.train()
    side, tok.padding_side = tok.padding_side, "left"
    enc = tok([r["prompt"] for r in batch], return_tensors="pt", padding=True)
    tok.padding_side = side
    plain_kwargs = dict(
        max_new_tokens=max_new, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
        pad_token_id=tok.pad_token_id, eos_token_id=trainer.eos_token_ids,
    )  # fmt: skip

    def plain() -> int:
        with torch.no_grad():
            out = model.generate(**enc, **plain_kwargs)[:, enc["input_ids"].shape[1] :]
        return int((out != tok.pad_token_id).sum())

    def rl_generate() -> int:
        _, completion_ids, *_ = trainer._generate([r["prompt"] for r in batch])
        return sum(len(c) for c in completion_ids)

    def rl_rollout() -> int:
        return int(trainer._generate_and_score_completions(batch)["completion_mask"].sum())

    return (plain, rl_generate, rl_rollout), (model, batch, int(enc["attention_mask"].sum()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="HF model folder (default: a fresh tiny Llama)")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="octo-bench-rl-"))
    model_dir = Path(args.model) if args.model else build_model(work)
    paths, _ = rollout_paths(model_dir, work / "run", args.prompts, args.generations, args.max_new_tokens)
    plain, rl_generate, rl_rollout = paths
    ways = {"plain model.generate": plain, "rl generate": rl_generate, "rl rollout": rl_rollout}
    speeds: dict[str, list[float]] = {name: [] for name in ways}
    tokens: dict[str, list[int]] = {name: [] for name in ways}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for fn in ways.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in ways.items():
            start = time.perf_counter()
            n = fn()
            took = time.perf_counter() - start
            speeds[name].append(n / took)
            tokens[name].append(n)
            seconds[name].append(took)

    print(
        f"rollout batch: {args.prompts} prompts x {args.generations} completions, up to {args.max_new_tokens} "
        f"new tokens, T=1; {args.threads} thread(s); median of {args.rounds} rounds"
    )
    base = statistics.median(speeds["plain model.generate"])
    print(f"{'path':<22} {'tokens/batch':>12} {'s/batch':>8} {'tokens/s':>10} {'ratio':>7}")
    for name in ways:
        med = statistics.median(speeds[name])
        print(
            f"{name:<22} {statistics.median(tokens[name]):>12.0f} {statistics.median(seconds[name]):>8.3f} "
            f"{med:>10.0f} {med / base:>7.2f}"
        )
    print("ratio: tokens/s of the path over plain model.generate; stop strings end RL completions early, so")
    print("compare s/batch too when the model writes past its answer.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
