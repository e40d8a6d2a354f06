"""``octo corpus``: build math mid-training corpora with datatrove.

octo corpus build configs/corpus/<recipe>.yaml [--executor local|slurm|ray] [--no-wait] [--dry-run] [key=value ...]
octo corpus tokenize <corpus folder> --tokenizer PATH [--executor ...]   (token shards for a built docs folder)
octo corpus train-classifier configs/corpus/classifiers/<x>.yaml [--out PATH] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from octo.config import ConfigError


def _build(args) -> int:
    from pipelines.build import CorpusBuildError, build, dry_run
    from pipelines.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.dry_run:
        stages = dry_run(recipe, args.executor)
        print(f"{args.recipe}: valid recipe '{recipe.name}' -> {recipe.output_dir}")
        for stage in stages:
            print(f"  {stage.name:<20} {stage.tasks:>3} task(s): {' -> '.join(stage.labels)}")
        return 0
    from pipelines.refine import RefineServerError

    try:
        out = build(recipe, executor=args.executor, wait=not args.no_wait)
    except (CorpusBuildError, RefineServerError) as exc:
        print(f"octo corpus build: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _tokenize(args) -> int:
    from pipelines.build import CorpusBuildError, build
    from pipelines.recipe import CorpusRecipe

    manifest = Path(args.corpus) / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(
            f"{args.corpus}: no manifest.json (build the documents first with `octo corpus build`)"
        )
    config = json.loads(manifest.read_text())["config"]
    config["tokenize"]["tokenizer"] = args.tokenizer
    config["output_dir"] = str(args.corpus)
    recipe = CorpusRecipe.model_validate(config)
    try:
        print(build(recipe, executor=args.executor, wait=True))
    except CorpusBuildError as exc:
        print(f"octo corpus tokenize: {exc}", file=sys.stderr)
        return 1
    return 0


def _train_classifier(args) -> int:
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
    args, extra = parser.parse_known_args(argv)
    # overrides may come before or after options
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *extra]
    handlers = {"build": _build, "tokenize": _tokenize, "train-classifier": _train_classifier}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
