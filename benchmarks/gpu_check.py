"""One-command GPU check (``benchmarks/gpu_check.sh`` / ``make gpu-check``): one table of what a GPU machine
does with this project, with whatever CUDA torch is installed there.

1. mid-training throughput: a Llama-3.2-1B-shaped model (random init, bf16, seq 4096, AdamW, SDPA attention):
   tokens/s and model FLOP utilisation (6N + 12·L·d·S FLOPs per token, against the GPU's dense bf16 peak);
2. a 10-step GRPO run on SmolLM2-135M (``octo rl run configs/rl/smollm2.yaml``, bf16);
3. evaluation of 50 GSM8K items (``octo eval run configs/eval/smollm2_zeroshot.yaml``, greedy);
4. vLLM rollouts (64 prompts x 8 samples x 256 tokens), only where ``vllm`` is importable.

The SmolLM2 checkpoint is SmolLM2-135M-Instruct dequantized from a 4-bit GGUF (``octo.assets.smollm2_path``).
``--smoke``: tiny sizes on CPU (a 2-layer model, 2 GRPO steps, 2 evaluation items): what CI runs. Every part
runs in its own process with a time limit; a failed part is a FAILED row, not a stopped check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages
from octo.assets import gsm8k_offline, smollm2_path, wiki_summaries
from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer

ROOT = Path(__file__).resolve().parent.parent

# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets (SXM parts; no sparsity)
PEAKS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
         "L40": 181.0, "A10G": 70.0, "L4": 121.0, "RTX 4090": 165.0}  # fmt: skip
LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0)  # fmt: skip
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            intermediate_size=128, vocab_size=512, tie_word_embeddings=True)  # fmt: skip


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAKS.items() if k in name), None)


# ------------------------------------------------------------------------------------------- parts
def midtrain_throughput(smoke: bool, steps: int = 6) -> dict:
    """Training steps of a random-init Llama; tokens/s over the steps after the first two."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cuda = torch.cuda.is_available() and not smoke
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    shape, seq, batch = (LLAMA_1B, 4096, 1) if not smoke else (TINY, 128, 2)
    config = LlamaConfig(**shape, max_position_embeddings=seq, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device=device)
    times = []
    for _ in range(steps if not smoke else 3):
        if cuda:
            torch.cuda.synchronize()
        start = time.time()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.time() - start)
    step = sum(times[2:]) / len(times[2:]) if len(times) > 2 else times[-1]
    n = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    flops_per_token = (
        6 * (n - n_embed) + 6 * n_embed + 12 * config.num_hidden_layers * config.hidden_size * seq
    )
    tokens_s = batch * seq / step
    return {"params": n, "seq": seq, "batch": batch, "dtype": str(dtype).split(".")[-1], "device": device,
            "step_s": round(step, 3), "tokens_per_s": round(tokens_s, 1),
            "tflops": round(tokens_s * flops_per_token / 1e12, 2),
            "memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
            "loss": round(float(loss), 3)}  # fmt: skip


def tiny_checkpoint(folder: Path) -> Path:
    texts = [r["extract"] for r in wiki_summaries()[:300]]
    tok = train_bpe_tokenizer(texts, folder / "tok", vocab_size=512)
    shape = TinyLlamaShape(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    return make_tiny_llama(shape, tok, folder / "model", seed=0)


def model_for(smoke: bool, work: Path) -> Path:
    if smoke:
        return tiny_checkpoint(work)

    return smollm2_path()


def grpo(smoke: bool, work: Path, model: Path) -> dict:
    cfg = "configs/rl/demo.yaml" if smoke else "configs/rl/smollm2.yaml"
    steps = 2 if smoke else 10
    overrides = [
        f"trainer.steps={steps}",
        "validation.every=0",
        "validation.at_start=false",
        "checkpoint.every=0",
    ]
    overrides += (
        ["trainer.bf16=true"] if not smoke else ["prompts.size=64", "trainer.max_completion_length=16"]
    )
    out = work / "rl"
    _octo(["rl", "run", cfg, "--model", str(model), "--out", str(out), *overrides])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "accuracy" in r or "reward" in r]
    last = train[-1] if train else {}
    keys = ("reward_mean", "accuracy", "response_len_mean", "clipped_ratio")
    return {"steps": steps, "config": cfg, "last": {k: round(last[k], 3) for k in keys if k in last}}


def evaluation(smoke: bool, work: Path, model: Path) -> dict:
    import torch

    items = 2 if smoke else 50
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    suite = "configs/eval/demo_zeroshot.yaml" if smoke else "configs/eval/smollm2_zeroshot.yaml"
    task = "arith" if smoke else "gsm8k"
    overrides = [f"include=[{task}]", f"tasks.{task}.max_items={items}", f"model.device={device}"]
    if device == "cuda":
        overrides += ["model.dtype=bfloat16", "model.batch_size=50", "model.threads=null"]
    out = work / "eval"
    _octo(["eval", "run", suite, "--model", str(model), "--out", str(out), "--force", *overrides])
    entry = json.loads((out / "results.json").read_text())["tasks"][task]
    return {"task": task, "items": entry["n"], "score": round(entry["score"], 3), "device": device}


def vllm_rollouts(smoke: bool, work: Path, model: Path) -> dict:
    from vllm import LLM, SamplingParams

    prompts, group, tokens = (4, 2, 16) if smoke else (64, 8, 256)
    texts = [f"Question: {x['question']}\nAnswer:" for x in gsm8k_offline()[:prompts]]
    start = time.time()
    llm = LLM(model=str(model), dtype="bfloat16" if not smoke else "float32", seed=0, max_model_len=1024)
    startup = time.time() - start
    params = SamplingParams(n=group, temperature=1.0, max_tokens=tokens, min_tokens=tokens, ignore_eos=True)
    start = time.time()
    results = llm.generate(texts, params, use_tqdm=False)
    wall = time.time() - start
    made = sum(len(o.token_ids) for r in results for o in r.outputs)
    return {
        "completions": prompts * group,
        "tokens_per_s": round(made / wall, 1),
        "startup_s": round(startup, 1),
    }


def _octo(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "octo", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(
            f"octo {' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr.strip()[-600:]}"
        )


# --------------------------------------------------------------------------------------------- driver
PARTS = {"midtrain": midtrain_throughput, "grpo": grpo, "eval": evaluation, "vllm": vllm_rollouts}


def run_part(name: str, smoke: bool, work: Path) -> dict:
    """Called in a child process: one part, its result as JSON on the last stdout line."""
    if name == "midtrain":
        return midtrain_throughput(smoke)
    model = Path(os.environ["OCTO_GPU_CHECK_MODEL"])
    return PARTS[name](smoke, work, model)


def _child(name: str, smoke: bool, work: Path, timeout_s: int) -> tuple[str, dict | str, float]:
    start = time.time()
    cmd = [sys.executable, __file__, "--part", name, "--work", str(work)] + (["--smoke"] if smoke else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "FAILED", f"over {timeout_s} s", time.time() - start
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode or not last.startswith("{"):
        error = [ln for ln in proc.stderr.splitlines() if re.search(r"Error|error", ln)]
        return "FAILED", (error[-1] if error else proc.stderr.strip()[-300:]), time.time() - start
    return "ok", json.loads(last), time.time() - start


def _describe(name: str, result: dict, peak: float | None) -> str:
    if name == "midtrain":
        mfu = (
            f", MFU {100 * result['tflops'] / peak:.1f}% of {peak:.0f} TFLOP/s"
            if peak
            else ", MFU: peak unknown"
        )
        return (f"{result['params'] / 1e6:,.1f}M params, {result['dtype']}, seq {result['seq']} x {result['batch']}: "
                f"{result['tokens_per_s']:,.0f} tokens/s, {result['tflops']} TFLOP/s{mfu}")  # fmt: skip
    if name == "grpo":
        return f"{result['steps']} steps of {result['config']}: last {result['last']}"
    if name == "eval":
        return f"{result['items']} {result['task']} items on {result['device']}: score {result['score']}"
    return f"{result['completions']} completions: {result['tokens_per_s']:,.0f} tokens/s (start-up {result['startup_s']} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (CI)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the table")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=240, help="limit per part, seconds")
    args = parser.parse_args()
    if args.part:
        print(json.dumps(run_part(args.part, args.smoke, Path(args.work))))
        return 0
    import importlib.util

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
    peak = peak_tflops(gpu, args.peak_tflops) if torch.cuda.is_available() and not args.smoke else None
    work = Path(tempfile.mkdtemp(prefix="octo-gpu-check-"))
    os.environ["OCTO_GPU_CHECK_MODEL"] = str(model_for(args.smoke, work))
    started = time.time()
    rows = []
    for name in PARTS:
        if name == "vllm" and importlib.util.find_spec("vllm") is None:
            rows.append((name, "skipped", "vllm is not installed here", 0.0))
            continue
        status, result, seconds = _child(name, args.smoke, work, args.timeout)
        text = _describe(name, result, peak) if status == "ok" else str(result)
        rows.append((name, status, text, seconds))
    print(f"\nGPU check ({'smoke, CPU' if args.smoke else 'full'}): GPU {gpu}, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}), total {time.time() - started:.0f} s")  # fmt: skip
    print(f"| {'part':<9}| {'status':<8}| {'seconds':>8} | result")
    print(f"|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 40}")
    for name, status, text, seconds in rows:
        print(f"| {name:<9}| {status:<8}| {seconds:>8.1f} | {text}")
    return 1 if any(status == "FAILED" for _, status, _, _ in rows) else 0


if __name__ == "__main__":  # vLLM starts its engine in a subprocess: keep the entry guarded
    raise SystemExit(main())
