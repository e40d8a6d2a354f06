"""Evaluation speed: a suite through lighteval (``eval.runner.run``) against plain ``model.generate`` + scoring.

Both sides score the same items with the same prompts, greedy, the same generation budget and batch size, and
the same answer checker; the plain side is a hand-written loop (batched ``generate``, stop strings cut, then
``octo.scoring.score``). Also measured: the fixed cost of one lighteval Pipeline (a one-item task, repeated in
one process), split into its phases (items, Pipeline init, prompt check, evaluate, details).

    .venv/bin/python benchmarks/eval.py [--model PATH] [--items 300] [--repeats 3] [--threads 1]

Without --model a tiny random Llama (wiki-trained BPE, 2 layers) is built on the fly: the numbers then measure
the harness, not the model. Timings on shared machines are noisy: compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent)
)  # the checkout's packages, not an installed copy
from eval.config import load_suite
from eval.runner import run
from eval.tasks import install_lighteval_patches, question_text, stop_sequences, task_items
from octo.assets import wiki_summaries
from octo.scoring import score
from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer

SUITE = "configs/eval/demo_zeroshot.yaml"


def tiny_model(folder: Path) -> Path:
    texts = [r["extract"] for r in wiki_summaries()[:1000]]
    tok = train_bpe_tokenizer(texts, folder / "tok", vocab_size=1024)
    shape = TinyLlamaShape(
        hidden_size=128, num_layers=2, num_heads=2, intermediate_size=336, max_position_embeddings=1024
    )
    return make_tiny_llama(shape, tok, folder / "model", seed=0)


def plain_loop(model, tok, suite, items: list[dict]) -> tuple[float, float]:
    """Batched model.generate on the same prompts, stopping at the same strings, scored with octo.scoring."""
    import torch

    task = suite.tasks[0]
    start = time.time()
    prompts = [question_text(task.prompt, task.template, x) for x in items]
    stop, budget, batch = stop_sequences(task), suite.generation.max_new_tokens, suite.model.batch_size
    correct = 0
    with torch.no_grad():
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i : i + batch], return_tensors="pt", padding=True)
            out = model.generate(
                **enc,
                max_new_tokens=budget,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                stop_strings=stop,
                tokenizer=tok,
            )
            for j, ids in enumerate(out[:, enc["input_ids"].shape[1] :]):
                text = tok.decode(ids, skip_special_tokens=True)
                for s in stop:
                    text = text.split(s)[0]
                correct += score(text, items[i + j]["answer"]).correct
    return time.time() - start, correct / len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF checkpoint (default: a tiny random Llama built here)")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each side (median reported)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a shared box)"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="octo-bench-eval-"))
    model_path = Path(args.model) if args.model else tiny_model(work)
    overrides = ["include=[arith]", f"max_items={args.items}"]

    t0 = time.time()
    install_lighteval_patches()  # imports lighteval (a once-per-process cost, reported separately)
    import_s = time.time() - t0

    from transformers import AutoModelForCausalLM, AutoTokenizer

    suite = load_suite(SUITE, overrides)
    items = task_items(suite.tasks[0], suite).items
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()  # one load, shared by both sides
    tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    plain_loop(model, tok, suite, items[:8])  # warm up torch kernels
    lighteval_times, plain_times = [], []
    for i in range(args.repeats):  # alternate the two sides: load on a shared machine drifts
        start = time.time()
        results = run(suite, model_path, work / f"lighteval-{i}", model=model, force=True)
        lighteval_times.append(time.time() - start)
        plain_s, plain_acc = plain_loop(model, tok, suite, items)
        plain_times.append(plain_s)
    lighteval_s, plain_s = statistics.median(lighteval_times), statistics.median(plain_times)
    entry = results["tasks"]["arith"]

    one = load_suite(SUITE, ["include=[arith]", "max_items=1"])
    runs = []
    for i in range(args.repeats + 1):  # the first one warms caches
        start = time.time()
        r = run(one, model_path, work / f"one-{i}", model=model, force=True)
        runs.append((time.time() - start, r["tasks"]["arith"]["timing_s"]))
    runs = runs[1:]
    per_run = statistics.median(t for t, _ in runs)

    print(
        f"model: {model_path} | items: {len(items)} | batch {suite.model.batch_size} | greedy, "
        f"{suite.generation.max_new_tokens} new tokens | torch threads: {args.threads}"
    )

    print(f"{'':34}{'items/s':>10}{'wall s':>9}{'accuracy':>10}")
    print(
        f"{'lighteval suite (eval.runner.run)':34}{len(items) / lighteval_s:>10.1f}{lighteval_s:>9.2f}{entry['score']:>10.3f}"
    )
    print(
        f"{'plain model.generate + scoring':34}{len(items) / plain_s:>10.1f}{plain_s:>9.2f}{plain_acc:>10.3f}"
    )
    print(
        f"ratio lighteval/plain wall time: {lighteval_s / plain_s:.2f}x (medians of {args.repeats}; all: "
        f"lighteval {[round(t, 2) for t in lighteval_times]}, plain {[round(t, 2) for t in plain_times]})"
    )
    print(f"\nlighteval import + patches (once per process): {import_s:.1f} s")
    print(f"fixed cost of one run (1-item task, median of {args.repeats}): {per_run:.3f} s, of which:")
    for phase in runs[0][1]:
        print(f"  {phase:<14} {statistics.median(t[phase] for _, t in runs):.4f} s")
    print(
        f"phases of the {len(items)}-item run: "
        + ", ".join(f"{k} {v:.3f}s" for k, v in entry["timing_s"].items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
