"""``octo demo`` / ``make demo``: the miniature study on CPU.

Foundation stage: until the study runner lands, the demo prepares what every later stage builds on —
the offline assets, a tokenizer trained on real Wikipedia text, and the tiny Llama base — under runs/demo/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from octo import assets
from octo.assets_cli import main as assets_main
from octo.config import load_config
from octo.manifest import write_manifest
from octo.tiny import TinyModelConfig, build_from_config, train_bpe_tokenizer


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo demo", description=__doc__)
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args(argv)
    out = Path(args.out)
    start = time.time()
    print("[demo] checking offline assets")
    if assets_main(["check"]) != 0:
        return 1
    print("[demo] training the tokenizer on Wikipedia leads")
    texts = [r["extract"] for r in assets.wiki_summaries()]
    tok = train_bpe_tokenizer(texts, out / "tokenizer", vocab_size=3072)
    config = load_config("configs/models/tiny_demo.yaml", TinyModelConfig, [f"tokenizer={tok}"])
    model = build_from_config(config, out / "base-init")
    write_manifest(out, stage="demo", config=config, counts={"tokenizer_texts": len(texts)}, started=start)
    print(f"[demo] tokenizer: {tok}\n[demo] tiny Llama: {model}\n[demo] done in {time.time() - start:.0f}s")
    return 0
