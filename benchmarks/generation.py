"""Generation paths against plain ``model.generate`` on the same items, in one process.

    flock /tmp/octo-heavy.lock .venv/bin/python benchmarks/generation.py [--only fewshot,zeroshot,rl,steps,vllm]
        [--gsm8k 4] [--arith 16] [--rl-prompts 4] [--rl-generations 8] [--threads 2] [--peak-gflops 150]
        [--eval-rounds 1]

Sections (each prints tokens/s, items/s, the share of the FLOP ceiling and the ratio to plain generate):

* ``fewshot``: the SmolLM2-135M few-shot suite (``configs/eval/smollm2_fewshot.yaml``: GSM8K 8-shot, generated
  arithmetic 3-shot; subsets) through ``eval.runner.run`` three ways: the default engine (``octo.generation``:
  shared exemplar prefix, rows leave at their stop string), lighteval's own TransformersModel
  (``model.engine=lighteval``, the path before issue 18) and plain batched ``model.generate`` with
  ``stop_strings`` (``HFGenerateBackend``), plus the default engine with transformers' ``DynamicCache`` in place
  of its in-place cache (``grow_cache=False``, the engine before round 6). Same prompts, same lighteval
  scoring; the scores must agree. All four backends are built before the timers and reused; ``--eval-rounds`` repeats the section in a rotated
  order and reports medians.
* ``zeroshot``: the same on ``configs/eval/smollm2_zeroshot.yaml``.
* ``rl``: one GRPO rollout batch (prompts x generations, T=1) at the demo's size (0.78M, random weights: no
  completion stops early) and at SmolLM2's: plain ``model.generate`` vs the RL stage's generation and its
  whole rollout (generation + rewards + records + advantages).
* ``steps``: the demo model's decode step at several batch sizes: the per-step overhead (batch 1, where the
  FLOPs are negligible) and tokens/s against the FLOP ceiling.
* ``vllm``: the few-shot suite with ``backend=vllm`` (automatic prefix caching), only when vllm imports.

FLOPs are 2 x parameters per token processed (prompt + completion; what one pass over each prompt from scratch
costs); the ceiling is ``--peak-gflops`` (default 150, a rough fp32 figure for 2 cores). The SmolLM2 checkpoint
is SmolLM2-135M-Instruct dequantised from a 4-bit GGUF (``octo.assets.smollm2_path``).
Timings on a shared machine are noisy: compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages
from benchmarks.rl import rollout_paths
from eval.config import load_suite
from eval.runner import run
from octo.assets import smollm2_path
from octo.jsonl import read_jsonl

ROOT = Path(__file__).resolve().parent.parent

HEADER = f"{'path':<34}{'wall s':>8}{'items/s':>9}{'tokens/s':>10}{'FLOP %':>8}{'ratio':>7}  score"


def demo_model(work: Path) -> Path:
    """benchmarks/rl.py's model: the demo's shape (hidden 128, 2 layers, vocab 3,072), random weights."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_rl", ROOT / "benchmarks" / "rl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_model(work)


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def row(name, wall, items, tokens, flops, peak, base_wall, score="") -> str:
    share = 100 * flops / wall / (peak * 1e9)
    return (
        f"{name:<34}{wall:>8.1f}{items / wall:>9.2f}{tokens / wall:>10.1f}{share:>8.2f}"
        f"{base_wall / wall:>7.2f}  {score}"
    )


def eval_section(title, suite_path, overrides, model_path, model, args) -> None:
    """One suite three ways through eval.runner.run, ``--eval-rounds`` times in a rotated order (load on a shared
    machine drifts); median wall time. Every backend is built before any timer starts and reused across rounds,
    so no path pays a tokenizer load inside its timing; only its first call's own warm-up (the octo engine's
    per-token text table) falls in round 1. Tokens = prompt + completion tokens of the details."""
    from eval.backends import HFGenerateBackend, make_backend  # torch, transformers, lighteval

    work = Path(tempfile.mkdtemp(prefix="octo-bench-gen-"))
    n_params = params(model)
    ways = {
        "plain model.generate (hf_generate)": ("hf", []),
        "lighteval TransformersModel": ("suite", ["model.engine=lighteval"]),
        "octo.generation, torch.cat cache": ("cat", []),
        "octo.generation (default)": ("suite", []),
    }
    suites = {name: load_suite(suite_path, [*overrides, *over]) for name, (_, over) in ways.items()}
    backends = {
        name: HFGenerateBackend(suites[name], model_path, model)
        if kind == "hf"
        else make_backend(suites[name], model_path, model)
        for name, (kind, _) in ways.items()
    }
    # the engine as before its in-place KV cache (octo/growing_cache.py): DynamicCache's torch.cat per step
    backends["octo.generation, torch.cat cache"].engine.grow_cache = False
    walls: dict[str, list[float]] = {name: [] for name in ways}
    results = {}
    names = list(ways)
    for r in range(args.eval_rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out = work / f"{name.split()[0]}-{r}"
            start = time.perf_counter()
            res = run(suites[name], model_path, out, model=model, backend=backends[name], force=True)
            walls[name].append(time.perf_counter() - start)
            rows = [x for p in sorted((out / "details").glob("*.jsonl")) for x in read_jsonl(p)]
            prompt = sum(x["prompt_tokens"] for x in rows)
            completion = sum(sum(x["completion_tokens"]) for x in rows)
            scores = {t: round(e["score"], 3) for t, e in res["tasks"].items()}
            results[name] = (len(rows), prompt, completion, scores)
    for backend in backends.values():
        backend.close()
    base = statistics.median(walls["plain model.generate (hf_generate)"])
    first = next(iter(results.values()))
    print(
        f"\n== {title}: {first[0]} items, {first[1]} prompt tokens; SmolLM2-135M ({n_params / 1e6:.0f}M); "
        f"median of {args.eval_rounds} round(s), backends built before the timers"
    )
    print(HEADER)
    for name, (items, prompt, completion, scores) in results.items():
        wall = statistics.median(walls[name])
        flops = 2 * n_params * (prompt + completion)
        print(row(name, wall, items, prompt + completion, flops, args.peak_gflops, base, scores))
        if args.eval_rounds > 1:
            print(f"{'':<4}rounds: " + " ".join(f"{w:.1f}" for w in walls[name]))
    same = len({str(r[3]) for r in results.values()}) == 1
    print(f"scores identical across the {len(results)} paths: {same}")


def rl_section(title, model_dir, args, prompts: int, generations: int, max_new: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="octo-bench-gen-rl-"))
    (plain, rl_generate, rl_rollout), (model, batch, prompt_tokens) = rollout_paths(
        model_dir, work, prompts, generations, max_new
    )
    ways = {
        "plain model.generate": plain,
        "rl generate (octo.generation)": rl_generate,
        "rl rollout": rl_rollout,
    }
    runs = {name: [] for name in ways}
    for fn in ways.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in ways.items():  # alternate: load on a shared machine drifts
            start = time.perf_counter()
            n = fn()
            runs[name].append((time.perf_counter() - start, n))
    n_params = params(model)
    print(
        f"\n== {title}: {prompts} prompts x {generations} completions, <= {max_new} new tokens, T=1, "
        f"{n_params / 1e6:.2f}M params; median of {args.rounds} rounds"
    )
    print(HEADER.replace("score", "tokens/batch"))
    base = statistics.median(t for t, _ in runs["plain model.generate"])
    for name, vals in runs.items():
        wall, tokens = statistics.median(t for t, _ in vals), statistics.median(n for _, n in vals)
        flops = 2 * n_params * (prompt_tokens + tokens)
        print(row(name, wall, len(batch), tokens, flops, args.peak_gflops, base, f"{tokens:.0f}"))
    print(
        "ratio: plain wall time over the path's (the same batch; tokens differ when stop strings end rows early)"
    )


def steps_section(model_dir, args) -> None:
    """The tiny model's decode step: time per step by batch size; overhead = the batch-1 step."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    n_params = params(model)
    print(f"\n== demo model decode step ({n_params / 1e6:.2f}M params, prompt 16 tokens, 32 steps)")
    print(f"{'batch':>6}{'ms/step':>9}{'tokens/s':>10}{'FLOP %':>8}")
    for batch in (1, 8, 32, 128, 512):
        ids = torch.randint(10, model.config.vocab_size - 1, (batch, 16))
        times = []
        with torch.no_grad():
            for _ in range(2):
                cache = DynamicCache(config=model.config)
                out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                start = time.perf_counter()
                for s in range(32):
                    token = out.logits[:, -1].argmax(-1, keepdim=True)
                    pos = torch.full((batch, 1), 16 + s)
                    out = model(input_ids=token, position_ids=pos, past_key_values=cache, use_cache=True)
                times.append((time.perf_counter() - start) / 32)
        step = min(times)
        share = 100 * 2 * n_params * batch / step / (args.peak_gflops * 1e9)
        print(f"{batch:>6}{step * 1000:>9.2f}{batch / step:>10.0f}{share:>8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="fewshot,zeroshot,rl,steps,vllm")
    parser.add_argument("--gsm8k", type=int, default=4, help="GSM8K items per eval section")
    parser.add_argument("--arith", type=int, default=16, help="arithmetic items per eval section")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="eval budget (GSM8K; arith keeps 96)")
    parser.add_argument("--rl-prompts", type=int, default=4)
    parser.add_argument("--rl-generations", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="RL rounds")
    parser.add_argument("--eval-rounds", type=int, default=1, help="rounds of each eval section")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-gflops", type=float, default=150.0)
    args = parser.parse_args()
    only = set(args.only.split(","))

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; FLOP ceiling {args.peak_gflops:g} GFLOP/s")
    smol = smollm2_path()
    work = Path(tempfile.mkdtemp(prefix="octo-bench-gen-demo-"))
    demo = demo_model(work) if only & {"rl", "steps"} else None
    evals = [
        "include=[gsm8k,arith]", f"tasks.gsm8k.max_items={args.gsm8k}", f"tasks.arith.size={args.arith + 4}",
        f"tasks.arith.max_items={args.arith}", f"tasks.gsm8k.max_new_tokens={args.max_new_tokens}",
        f"model.threads={args.threads}",
    ]  # fmt: skip
    if only & {"fewshot", "zeroshot"}:
        model = AutoModelForCausalLM.from_pretrained(smol).eval()
        if "fewshot" in only:
            eval_section("few-shot eval", "configs/eval/smollm2_fewshot.yaml", evals, smol, model, args)
        if "zeroshot" in only:
            eval_section("zero-shot eval", "configs/eval/smollm2_zeroshot.yaml", evals, smol, model, args)
        del model
    if "rl" in only:
        rl_section("RL rollouts, demo size", demo, args, args.rl_prompts, args.rl_generations, 48)
        rl_section("RL rollouts, SmolLM2 size", smol, args, 2, args.rl_generations, 64)
    if "steps" in only:
        steps_section(demo, args)
    if "vllm" in only:
        vllm_section(smol, evals)
    return 0


def vllm_section(model_path, evals) -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("\n== vLLM: not importable here (CPU machine); skipped")
        return

    start = time.perf_counter()
    res = run(
        "configs/eval/smollm2_fewshot.yaml",
        model_path,
        Path(tempfile.mkdtemp()),
        overrides=[*evals, "backend=vllm"],
    )
    wall = time.perf_counter() - start
    print(f"\n== vLLM (automatic prefix caching), few-shot: {wall:.1f} s, scores "
          f"{ {t: round(e['score'], 3) for t, e in res['tasks'].items()} }")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
