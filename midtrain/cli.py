"""octo midtrain: continued pre-training on weighted mixtures of token shards.

octo midtrain run CONFIG [key=value ...]              train (resumes an interrupted run, skips a finished one)
octo midtrain dry-run CONFIG [key=value ...]          print steps, tokens, stages and the lr schedule
octo midtrain nanotron-config CONFIG [...] [--launch] write nanotron (GitHub main) YAMLs (+ torchrun/sbatch)
octo midtrain convert hf-to-nanotron HF_DIR OUT [--rope-interleaved]
octo midtrain convert nanotron-to-hf NT_CKPT OUT [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import sys

import midtrain
from midtrain.convert import hf_to_nanotron, nanotron_to_hf
from midtrain.nanotron_config import generate
from octo.config import parse_with_overrides


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="octo midtrain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name, text in (("run", "train as configured"), ("dry-run", "print the plan without training")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config")
        p.add_argument("overrides", nargs="*", help="key.sub=value")
    p = sub.add_parser("nanotron-config", help="write nanotron YAML configs for the same recipe")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="key.sub=value")
    p.add_argument("--out", help="folder for the YAMLs (default: nanotron.out_dir or <output_dir>/nanotron)")
    p.add_argument("--launch", action="store_true", help="also write launch.sh (torchrun) and launch.sbatch")
    p = sub.add_parser("convert", help="convert checkpoints between HF and nanotron layouts")
    p.add_argument("direction", choices=["hf-to-nanotron", "nanotron-to-hf"])
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--rope-interleaved", action="store_true", help="hf-to-nanotron: GPT-J RoPE layout")
    p.add_argument("--tokenizer", help="nanotron-to-hf: copy this tokenizer into the HF folder")
    args, overrides = parse_with_overrides(parser, argv)

    if args.cmd == "convert":
        if overrides:
            parser.error(f"unrecognized arguments: {' '.join(overrides)}")
        if args.direction == "hf-to-nanotron":
            out = hf_to_nanotron(args.source, args.target, rope_interleaved=args.rope_interleaved)
        else:
            out = nanotron_to_hf(args.source, args.target, tokenizer=args.tokenizer)
        print(out)
        return 0

    config = midtrain.load(args.config, overrides)
    if args.cmd == "dry-run":
        print(f"{config.name} -> {config.output_dir}")
        print(midtrain.dry_run(config))
        return 0
    if args.cmd == "nanotron-config":
        for path in generate(config, args.out, launch=args.launch):
            print(path)
        return 0
    print(midtrain.run(config))
    return 0
