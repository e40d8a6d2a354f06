"""``octo tiny``: train a small BPE tokenizer, or create a tiny Llama from a YAML shape."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from octo import assets
from octo.config import load_config
from octo.errors import InputError
from octo.jsonl import read_jsonl
from octo.manifest import write_manifest
from octo.tiny import TinyModelConfig, build_from_config, train_bpe_tokenizer


def _texts(files: list[str], wiki: int) -> list[str]:
    texts = [r["extract"] for r in assets.wiki_summaries()[:wiki]] if wiki else []
    for f in files:
        for i, row in enumerate(read_jsonl(f), 1):
            if not isinstance(row.get("text"), str):
                raise InputError(f"{f}: row {i} has no 'text' string")
            texts.append(row["text"])
    return texts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo tiny", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer (digits split) into an HF folder")
    p.add_argument("--texts", nargs="*", default=[], help="JSONL(.gz) files with a 'text' field")
    p.add_argument("--wiki", type=int, default=0, help="also use the first N offline Wikipedia leads")
    p.add_argument("--vocab-size", type=int, default=3072)
    p.add_argument("--out", required=True)
    p = sub.add_parser("model", help="create a randomly initialised tiny Llama from configs/models/<x>.yaml")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key.sub=value")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    start = time.time()
    if args.cmd == "tokenizer":
        texts = _texts(args.texts, args.wiki)
        if not texts:
            parser.error("no training text: give --texts FILE... and/or --wiki N")
        out = train_bpe_tokenizer(texts, args.out, vocab_size=args.vocab_size)
        write_manifest(
            out,
            stage="tiny-tokenizer",
            config=vars(args),
            inputs={f: f for f in args.texts},
            counts={"texts": len(texts)},
            started=start,
        )
    else:
        config = load_config(args.config, TinyModelConfig, args.overrides)
        out = build_from_config(config, args.out)
        write_manifest(out, stage="tiny-model", config=config, inputs={"config": args.config}, started=start)
    print(Path(out))
    return 0
