"""``octo corpus``: build math mid-training corpora with datatrove.

octo corpus build configs/corpus/<recipe>.yaml [--executor local|slurm|ray] [--no-wait] [--dry-run] [key=value ...]
octo corpus tokenize <corpus folder> --tokenizer PATH [--executor ...]   (token shards for a built docs folder)
octo corpus train-classifier configs/corpus/classifiers/<x>.yaml [--out PATH] [key=value ...]
"""

from __future__ import annotations

import argparse
import sys

import pipelines
from octo.config import parse_with_overrides
from pipelines.errors import CorpusBuildError, RefineServerError
from pipelines.recipe import recipe_of_corpus


def _build(args) -> int:
    recipe = pipelines.load(args.recipe, args.overrides)
    if args.dry_run:
        stages = pipelines.dry_run(recipe, args.executor)
        print(f"{args.recipe}: valid recipe '{recipe.name}' -> {recipe.output_dir}")
        if stages:
            print(stages)
        return 0
    try:
        out = pipelines.run(recipe, executor=args.executor, wait=not args.no_wait)
    except (CorpusBuildError, RefineServerError) as exc:
        print(f"octo corpus build: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _tokenize(args) -> int:
    recipe = recipe_of_corpus(args.corpus, args.tokenizer)
    try:
        print(pipelines.run(recipe, executor=args.executor, wait=True))
    except CorpusBuildError as exc:
        print(f"octo corpus tokenize: {exc}", file=sys.stderr)
        return 1
    return 0


def _train_classifier(args) -> int:
    # datatrove (through the classifier's readers): only for this command, so `octo corpus --help` stays instant
    from pipelines.classifier import format_metrics, load_classifier_config, train_classifier

    config = load_classifier_config(args.config, args.overrides)
    print(format_metrics(train_classifier(config, output=args.out)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="octo corpus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a corpus from a recipe")
    b.add_argument("recipe")
    b.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. output_dir=runs/x")
    b.add_argument("--executor", choices=("local", "slurm", "ray"), default="local")
    b.add_argument(
        "--no-wait", action="store_true", help="slurm: return after submitting (build again to finish)"
    )
    b.add_argument("--dry-run", action="store_true", help="validate the recipe and print its stages")
    t = sub.add_parser("tokenize", help="add token shards to a corpus folder built without a tokenizer")
    t.add_argument("corpus")
    t.add_argument("--tokenizer", required=True, help="HF tokenizer folder, tokenizer.json or 'llama3'")
    t.add_argument("--executor", choices=("local", "slurm", "ray"), default="local")
    c = sub.add_parser("train-classifier", help="train a fastText classifier (math vs other, language ID)")
    c.add_argument("config")
    c.add_argument("overrides", nargs="*")
    c.add_argument("--out", help="model path (default: the config's output)")
    args, overrides = parse_with_overrides(parser, argv)
    if hasattr(args, "overrides"):
        args.overrides = overrides
    elif overrides:  # `tokenize` takes no overrides
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    handlers = {"build": _build, "tokenize": _tokenize, "train-classifier": _train_classifier}
    return handlers[args.command](args)
