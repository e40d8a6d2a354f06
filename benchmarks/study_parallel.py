"""Two mid-training arms one after the other in one process, against the two side by side in two processes.

    .venv/bin/python benchmarks/study_parallel.py [--arms 2] [--steps 150] [--batch 4] [--busy 0|1]

This is the choice behind a study's ``workers:`` (study.scheduler). Both modes run the same plain
transformers + torch loop (the demo's tiny Llama: hidden 128, 2 layers, vocab 3,072, tied embeddings; AdamW,
clipping, batch 4 x 256 tokens as in the demo's arms), arm i from seed i:

* ``one process``: the arms in turn, with torch threads = every core (what ``workers: 1`` does);
* ``N workers``: one spawned process per arm, all at once, with cores // N threads each (``workers: N``).

``--busy 1`` also runs a one-core busy loop during both modes, the "busy 2-core machine" of issue 14. It
prints wall times, tokens/s and the ratio, and checks that arm 0's weights are bit-identical in both modes
(thread count does not change what the tiny model computes; if it did, ``workers`` would change results).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import time

SEQ, VOCAB = 256, 3072


def train_arm(seed: int, steps: int, batch: int, threads: int) -> tuple[str, float]:
    """Train one arm with the plain libraries; returns (sha256 of the final weights, seconds)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=336, max_position_embeddings=1024,
                         tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    data = torch.Generator().manual_seed(1000 + seed)
    started = time.perf_counter()
    for _ in range(steps):
        tokens = torch.randint(0, VOCAB, (batch, SEQ + 1), generator=data)
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    return digest, seconds


def spin() -> None:
    while True:  # one core's worth of someone else's work
        pass


def one_process(arms: int, steps: int, batch: int, cores: int) -> tuple[float, list[str]]:
    started = time.perf_counter()
    digests = [train_arm(i, steps, batch, cores)[0] for i in range(arms)]
    return time.perf_counter() - started, digests


def workers(arms: int, steps: int, batch: int, cores: int) -> tuple[float, list[str]]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(arms) as pool:
        pool.apply(
            int
        )  # start the interpreters before the clock, as a study's pool lives for the whole study
        started = time.perf_counter()
        results = pool.starmap(train_arm, [(i, steps, batch, max(1, cores // arms)) for i in range(arms)])
    return time.perf_counter() - started, [d for d, _ in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--busy", type=int, default=0, help="1: a one-core busy loop runs alongside")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    hog = multiprocessing.get_context("spawn").Process(target=spin, daemon=True) if args.busy else None
    if hog:
        hog.start()
    try:
        train_arm(0, 3, args.batch, cores)  # warm-up: imports, first-call allocations
        seq_s, seq_digests = one_process(args.arms, args.steps, args.batch, cores)
        par_s, par_digests = workers(args.arms, args.steps, args.batch, cores)
    finally:
        if hog:
            hog.terminate()
    tokens = args.arms * args.steps * args.batch * SEQ
    print(f"{args.arms} arms x {args.steps} steps x {args.batch}x{SEQ} tokens, {cores} cores, "
          f"busy loop alongside: {'yes' if args.busy else 'no'}")  # fmt: skip
    print("| mode | wall s | tokens/s |\n| --- | --- | --- |")
    print(f"| one process, {cores} threads (plain loop) | {seq_s:.1f} | {tokens / seq_s:,.0f} |")
    print(
        f"| {args.arms} workers, {max(1, cores // args.arms)} thread(s) each | {par_s:.1f} | {tokens / par_s:,.0f} |"
    )
    print(f"ratio: {seq_s / par_s:.2f}x; weights identical in both modes: {seq_digests == par_digests}")


if __name__ == "__main__":
    main()
