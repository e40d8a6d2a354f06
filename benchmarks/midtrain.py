"""Training throughput of the midtrain backend against a bare PyTorch loop, same model, same data, one process.

    .venv/bin/python benchmarks/midtrain.py [--steps 120] [--batch 16] [--seq 256] [--repeats 2]

Both loops train the demo's tiny Llama (hidden 128, 2 layers, 2 heads, ffn 336, tied embeddings, vocab 3,072)
from the same initial weights on the same datatrove token shards (Wikipedia leads), with AdamW, clipping and a
cross-entropy over every position. The bare loop reads its windows with datatrove's ``DatatroveFolderDataset``
up front (no data work inside the timed loop); the backend does everything it does in a real run (mixture
draw, reading, lr schedule, logging, metrics). Throughput is measured after a few warm-up steps; the two are run
alternately ``--repeats`` times and the medians compared. The data path's share of the backend's step time is
printed too (it must stay small).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from octo.assets import wiki_summaries
from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

WARMUP_STEPS = 5


def setup(work: Path, docs: int) -> tuple[Path, Path]:
    from midtrain_helpers import write_shards

    texts = [r["extract"] for r in wiki_summaries(exclude_topic="Mathematics")[:docs]]
    tok = train_bpe_tokenizer(texts, work / "tok", vocab_size=3072)
    shape = TinyLlamaShape(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=336)
    model = make_tiny_llama(shape, tok, work / "model", seed=0)
    shards = write_shards(texts, tok, work / "web")
    return model, shards


def bare_loop(model_dir: Path, shards: Path, steps: int, batch: int, seq: int, threads: int) -> float:
    """Plain PyTorch: forward, loss, backward, clip, AdamW; returns tokens/s after warm-up."""
    import torch
    import torch.nn.functional as F
    from datatrove.utils.dataset import DatatroveFolderDataset
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    data = DatatroveFolderDataset(str(shards), seq_len=seq, filename_pattern="*.ds", token_size=2)
    n = steps * batch
    windows = torch.stack([data[i % len(data)]["input_ids"] for i in range(n)])
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for step in range(steps):
        if step == WARMUP_STEPS:
            start = time.perf_counter()
        part = windows[step * batch : (step + 1) * batch]
        logits = model(input_ids=part[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), part[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # the bare loop reads its loss every step, as a progress bar would
    return (steps - WARMUP_STEPS) * batch * seq / (time.perf_counter() - start)


def backend(model_dir: Path, shards: Path, out: Path, steps: int, batch: int, seq: int, threads: int):
    """The midtrain backend; returns (tokens/s after warm-up, data share of step time)."""
    from midtrain import run  # torch
    from midtrain.config import MidtrainConfig  # torch

    config = MidtrainConfig.model_validate(
        {
            "name": "bench",
            "output_dir": str(out),
            "model": {"base": str(model_dir)},
            "data": {
                "sequence_length": seq,
                "stages": {
                    "web": {
                        "tokens": steps * batch * seq,
                        "mixture": {"web": {"path": str(shards), "weight": 1}},
                    }
                },
            },
            "schedule": {"lr": 2e-3, "warmup_tokens": 0, "decay": "cosine"},
            "train": {
                "global_batch_tokens": batch * seq,
                "micro_batch_size": batch,
                "log_every": WARMUP_STEPS,
                "num_threads": threads,
                "progress": False,
            },
        }
    )
    run(config)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    first, last = rows[0], rows[-1]  # rows are written before the end-of-stage checkpoint
    tokens = last["tokens"] - first["tokens"]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    data_s = sum(r["data_s"] for r in rows[1:])
    return tokens / seconds, data_s / seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=16, help="sequences per step (one micro-batch)")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--docs", type=int, default=3000)
    args = parser.parse_args()
    from midtrain.train import cpu_threads  # torch

    threads = cpu_threads(None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.time()
        model, shards = setup(work, args.docs)
        print(f"setup (tokenizer, model, datatrove shards): {time.time() - t0:.1f} s", flush=True)
        bare, ours, data_share = [], [], []
        for r in range(args.repeats):
            bare.append(bare_loop(model, shards, args.steps, args.batch, args.seq, threads))
            tps, share = backend(model, shards, work / f"run{r}", args.steps, args.batch, args.seq, threads)
            ours.append(tps)
            data_share.append(share)
            print(f"repeat {r}: bare {bare[-1]:,.0f} tok/s, midtrain {ours[-1]:,.0f} tok/s", flush=True)
    b, o = statistics.median(bare), statistics.median(ours)
    print(
        f"\nmodel h128/l2 vocab 3072, seq {args.seq}, {args.batch} sequences per step, {args.steps} steps, "
        f"{threads} threads (machine may be shared: timings are noisy)"
    )
    print(f"bare PyTorch loop : {b:,.0f} tokens/s")
    print(f"midtrain backend  : {o:,.0f} tokens/s")
    print(f"ratio midtrain/bare: {o / b:.3f}")
    print(f"data path share of the backend's step time: {100 * statistics.median(data_share):.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
