"""``octo assets``: check that the offline assets load, and prepare the cached conversions."""

from __future__ import annotations

import argparse
import time

from octo import assets


def _check() -> int:
    checks = {
        "wiki_summaries": lambda: (
            f"{len(assets.wiki_summaries())} leads, {len(assets.wiki_summaries(topic='Mathematics'))} on Mathematics"
        ),
        "champ_problems": lambda: f"{len(assets.champ_problems())} problems",
        "gsm8k_offline": lambda: f"{len(assets.gsm8k_offline())} GSM8K test problems",
        "reasoning_gym": lambda: (
            f"basic_arithmetic sample: {assets.reasoning_gym_items('basic_arithmetic', 1, 0)[0]['question']!r}"
        ),
        "benchmarks": lambda: (
            f"{assets.benchmarks_dir()}: "
            + ", ".join(
                f"{n}={len(assets.benchmark_items(n))}" for n in ("gsm8k", "math500", "amc23", "aime24")
            )
        ),
        "llama3_tokenizer": lambda: str(assets.llama3_tokenizer_path()),
        "smollm2": lambda: str(assets.smollm2_path()),
    }
    failed = 0
    for name, check in checks.items():
        start = time.time()
        try:
            detail = check()
            print(f"  ok    {name:<17} {detail}  ({time.time() - start:.1f}s)")
        except Exception as exc:  # report every asset, not just the first missing one
            failed += 1
            print(f"  FAIL  {name:<17} {exc}")
    print(f"{len(checks) - failed}/{len(checks)} assets available")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo assets", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="load every offline asset and report what is missing")
    p = sub.add_parser(
        "smollm2", help="convert the SmolLM2-135M GGUF into a cached HF folder; print its path"
    )
    p.add_argument(
        "--layers", type=int, default=None, help="keep only the first N layers (a fast test model)"
    )
    sub.add_parser("llama3", help="build the Llama-3 tokenizer from quicktok's vocabulary; print its path")
    p = sub.add_parser("benchmarks", help="list the benchmark sets found and their sizes")
    p.add_argument("--source", default="auto", choices=["auto", "local", "hub"])
    args = parser.parse_args(argv)
    if args.cmd == "check":
        return _check()
    if args.cmd == "smollm2":
        print(assets.smollm2_path(args.layers))
    elif args.cmd == "llama3":
        print(assets.llama3_tokenizer_path())
    elif args.cmd == "benchmarks":
        print(f"benchmark folder: {assets.benchmarks_dir()}")
        for name in assets.BENCHMARKS:
            try:
                print(f"  {name:<15} {len(assets.benchmark_items(name, args.source)):>5} items")
            except Exception as exc:
                print(f"  {name:<15} unavailable: {exc}")
    return 0
