"""Corpus pipeline speed against plain-library baselines, in one run.

1. documents/s of a recipe build (accounted reader -> MinHash -> n-gram decontamination -> writer, with the
   project's bookkeeping) against the same datatrove steps wired by hand (JsonlReader, the four MinHash steps,
   NGramsDecontFilter, JsonlWriter) on the same input, both in-process (LocalPipelineExecutor, workers=1);
2. tokens/s of the recipe's tokenization stage (docs -> .ds shards with BOS/EOS and per-source counts) against
   `tokenizers` batch encoding of the same texts in memory (no I/O), and datatrove's DocumentTokenizer.

Usage: python benchmarks/corpus.py [--docs 20000] [--work DIR]. The machine may be shared: run it twice.
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
from octo.assets import wiki_summaries
from octo.jsonl import read_jsonl
from octo.tiny import train_bpe_tokenizer
from pipelines.layout import layout
from pipelines.recipe import CorpusRecipe
from pipelines.report import merged_stage_stats
from pipelines.sources import arithmetic_records

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_input(folder: Path, n_docs: int) -> list[str]:
    """Real Wikipedia leads and arithmetic explanations, as JSONL shards."""
    texts = [r["extract"] for r in wiki_summaries()]
    easy = {
        "min_terms": 2,
        "max_terms": 3,
        "min_digits": 1,
        "max_digits": 2,
        "operators": ["+", "-"],
        "allow_parentheses": False,
    }
    texts += [r["prose"] for r in arithmetic_records(max(0, n_docs - len(texts)), 77, [(1, easy)])]
    texts = texts[:n_docs]
    folder.mkdir(parents=True)
    for shard in range(4):
        with open(folder / f"part{shard}.jsonl", "w") as fh:
            for i in range(shard, len(texts), 4):
                fh.write(json.dumps({"id": f"d{i}", "text": texts[i]}) + "\n")
    return texts


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def hand_wired(data: Path, out: Path, index: Path) -> None:
    """The recipe's document stages, as datatrove users write them."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    from pipelines.steps import RegexWordTokenizer  # datatrove

    words = RegexWordTokenizer()
    mh = MinhashConfig(num_buckets=14, hashes_per_bucket=8, n_grams=5, hash_config=HashConfig(precision=64),
                       norm_config=TextNormConfig(norm_numbers=False))  # fmt: skip
    decont = NGramsDecontConfig(
        n_grams=12, find_query_ngrams=True, norm_config=TextNormConfig(norm_numbers=False)
    )
    logs = out / "logs"
    stages = [
        ([JsonlReader(str(data)), MinhashDedupSignature(str(out / "sigs"), config=mh, language=words)], 1),
        ([MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=mh)], mh.num_buckets),
        ([MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=mh)], 1),
        ([JsonlReader(str(data)), MinhashDedupFilter(str(out / "remove")),
          NGramsDecontFilter(str(index), config=decont, language=words), JsonlWriter(str(out / "docs"))], 1),
    ]  # fmt: skip
    for i, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(logs / str(i))).run()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument(
        "--work", default=None, help="keep the run's files here (default: a temp folder, removed)"
    )
    args = parser.parse_args()
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from tokenizers import Tokenizer

    from pipelines.build import build, plan  # datatrove, like the hand-wired side
    from pipelines.executors import quiet_datatrove_console  # datatrove

    work = Path(args.work or tempfile.mkdtemp(prefix="corpus-bench-"))
    shutil.rmtree(work, ignore_errors=True)
    texts = write_input(work / "input", args.docs)
    print(
        f"input: {len(texts):,} documents ({sum(map(len, texts)) / 1e6:.1f} M characters) in {work / 'input'}"
    )
    tokenizer = train_bpe_tokenizer(texts[:3000], work / "tokenizer", vocab_size=3072)
    recipe = CorpusRecipe.model_validate({
        "name": "bench", "output_dir": str(work / "recipe"),
        "sources": [{"name": "web", "type": "jsonl", "path": str(work / "input")}],
        "minhash": {"num_buckets": 14, "hashes_per_bucket": 8, "n_grams": 5},
        "decont": {"n_grams": 12, "benchmarks": ["gsm8k"], "index_dir": str(work / "index")},
    })  # fmt: skip
    with_tokenizer = recipe.model_copy(
        update={"tokenize": recipe.tokenize.model_copy(update={"tokenizer": str(tokenizer)})}
    )
    # the n-gram index is built once, outside both timings, and shared by the recipe and the hand-wired run
    build(recipe.model_copy(update={"output_dir": str(work / "warmup"), "minhash": None}))
    index = next(p for p in (work / "index").iterdir() if p.is_dir())

    # 1. documents/s
    with quiet_datatrove_console():
        t_hand = timed(lambda: hand_wired(work / "input", work / "hand", index))
    t_recipe = timed(lambda: build(recipe))
    kept = [
        row["text"]
        for path in sorted((work / "recipe" / "docs").glob("*.jsonl.gz"))
        for row in read_jsonl(path)
    ]

    # 2. tokens/s: the recipe's tokenize build, its tokenizer step alone, plain encode_batch, datatrove's step
    t_tok = timed(lambda: build(with_tokenizer))
    n_tokens = json.loads((work / "recipe" / "stats.json").read_text())["tokens"]["total"]
    stage = next(s for s in plan(with_tokenizer) if s.name == "tokenize")
    step_s = sum(
        s["seconds"] for s in merged_stage_stats(layout(work / "recipe")["logs"] / "tokenize", stage)
    )
    tok = Tokenizer.from_file(str(tokenizer / "tokenizer.json"))
    plain_tokens = 0

    def plain():
        nonlocal plain_tokens
        for i in range(0, len(kept), 1000):
            plain_tokens += sum(len(e.ids) for e in tok.encode_batch(kept[i : i + 1000]))

    t_plain = timed(plain)

    def datatrove_tokenizer():
        step = DocumentTokenizer(str(work / "dt_tokens"), tokenizer_name_or_path=str(tokenizer / "tokenizer.json"),
                                 eos_token="<|end_of_text|>", local_working_dir=str(work / "dt_tmp"), seed=0)  # fmt: skip
        LocalPipelineExecutor([JsonlReader(str(work / "recipe" / "docs")), step], workers=1,
                              logging_dir=str(work / "dt_logs")).run()  # fmt: skip

    with quiet_datatrove_console():
        t_dt = timed(datatrove_tokenizer)

    rows = [
        ("recipe build (MinHash + decont + accounting)", t_recipe, len(texts) / t_recipe, "doc/s"),
        ("same datatrove steps wired by hand", t_hand, len(texts) / t_hand, "doc/s"),
        ("recipe tokenize build (whole call)", t_tok, n_tokens / t_tok, "tok/s"),
        ("  its tokenizer step (datatrove time stats)", step_s, n_tokens / step_s, "tok/s"),
        ("tokenizers encode_batch, in memory, no I/O", t_plain, plain_tokens / t_plain, "tok/s"),
        ("datatrove DocumentTokenizer wired by hand", t_dt, plain_tokens / t_dt, "tok/s"),
    ]
    print(f"\n{'':<48}{'seconds':>9}{'rate':>16}")
    for name, seconds, rate, unit in rows:
        print(f"{name:<48}{seconds:>9.2f}{rate:>11,.0f} {unit}")
    print(
        f"\nratio recipe / hand-wired datatrove (documents/s): {t_hand / t_recipe:.2f}  ({len(kept):,} documents kept)"
    )
    print(
        f"ratio recipe tokenize build / tokenizers encode_batch (tokens/s): {(n_tokens / t_tok) / (plain_tokens / t_plain):.2f}"
    )
    print(
        f"ratio recipe tokenizer step / tokenizers encode_batch (tokens/s): {(n_tokens / step_s) / (plain_tokens / t_plain):.2f}"
    )
    print("(timings on a shared machine are noisy; compare the ratios of one run)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
