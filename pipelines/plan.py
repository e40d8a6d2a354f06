"""The datatrove stages of a corpus recipe, in the order they run (no side effects: nothing is read or written).

  decont_index        evaluation sets -> <task>.index.hashes                        (1 task)
  filter              sources -> language / quality / math filters -> work/filtered   (or straight to docs/)
  minhash_signatures  \\
  minhash_buckets      | datatrove's four MinHash steps over the sources that are not exempt
  minhash_clusters     |
  dedup               /  ... -> MinHash filter -> n-gram decont filter -> docs/
  tokenize            docs/ -> tokens/*.ds (+ .index, .metadata), BOS/EOS explicit, tokens per source
  merge               optional DocumentTokenizerMerger
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipelines import refine, steps
from pipelines.layout import decont_index_folder, layout, special_tokens, tokenizer_file
from pipelines.readers import make_reader
from pipelines.recipe import CorpusRecipe, check_exists, resolve_path


@dataclass
class Stage:
    name: str
    pipeline: list
    tasks: int
    labels: list[str] = field(default_factory=list)  # one per pipeline step, for the report


def word_tokenizer(recipe: CorpusRecipe):
    return steps.RegexWordTokenizer() if recipe.word_tokenizer == "regex" else "en"


def plan(recipe: CorpusRecipe, tasks: int = 1) -> list[Stage]:
    """The datatrove stages of a recipe (no side effects), in the order they run."""
    out = Path(recipe.output_dir)
    paths = {k: str(v) for k, v in layout(out).items()}
    words = word_tokenizer(recipe)
    decont_config, decont_stages = _decont_plan(recipe, words)
    stages = decont_stages
    readers, labels = _source_readers(recipe, paths)
    filter_steps, filter_labels = _filter_steps(recipe, words, paths)
    first = (readers + filter_steps, labels + filter_labels)

    def kept_tail() -> tuple[list, list[str]]:
        return _kept_tail(recipe, words, paths, decont_config)

    if recipe.refine is not None:  # the kept tail follows refinement (pipelines/refine.py)
        final_tail = ([refine.prerefine_writer(out)], ["write:prerefine"])
    else:
        final_tail = kept_tail()
    if recipe.minhash_sources:
        stages += _minhash_stages(recipe, words, paths, tasks, first, final_tail)
    else:
        stages.append(Stage("filter", first[0] + final_tail[0], tasks, labels=first[1] + final_tail[1]))
    if recipe.refine is not None:
        stages += refine.refine_stages(recipe, out, tasks, *kept_tail(), stage_cls=Stage)
    return stages + _tokenize_stages(recipe, paths, tasks)


def _decont_config(recipe: CorpusRecipe):
    from datatrove.pipeline.decont import NGramsDecontConfig
    from datatrove.utils.text import TextNormConfig

    d = recipe.decont
    return NGramsDecontConfig(
        n_grams=d.n_grams,
        find_query_ngrams=d.index_questions,
        find_overlap_ngrams=True,
        norm_config=TextNormConfig(norm_numbers=d.norm_numbers),
    )


def _decont_plan(recipe: CorpusRecipe, words) -> tuple[object | None, list[Stage]]:
    """The decontamination config, and the index stage unless a shared index built earlier is complete."""
    if recipe.decont is None:
        return None, []
    d = recipe.decont
    config = _decont_config(recipe)
    index_folder = decont_index_folder(recipe)
    if (index_folder / ".complete").is_file():  # a shared index built by an earlier corpus is reused
        return config, []
    root = str(resolve_path(d.benchmarks_dir)) if d.benchmarks_dir else None
    files = [{**f.model_dump(), "path": str(check_exists(f.path, f"decont.files.{f.name}"))} for f in d.files]
    reader = steps.BenchmarkReader(d.benchmarks, d.source, root, files)
    builder = steps.NGramIndexBuilder(str(index_folder), config, words)
    return config, [
        Stage("decont_index", [reader, builder], tasks=1, labels=["read:evaluation sets", "index"])
    ]


def _source_readers(recipe: CorpusRecipe, paths: dict[str, str]) -> tuple[list, list[str]]:
    """One reader per source; with MinHash each document is tagged with its dedup group."""
    minhash_sources = recipe.minhash_sources
    readers, labels = [], []
    for source in recipe.sources:
        group = (
            None if recipe.minhash is None else ("minhash" if source.name in minhash_sources else "exempt")
        )
        readers.append(make_reader(source, rejects_folder=paths["malformed"], dedup_group=group))
        labels.append(f"read:{source.name}")
    return readers, labels


def _filter_steps(recipe: CorpusRecipe, words, paths: dict[str, str]) -> tuple[list, list[str]]:
    """The recipe's filters in order, each scoped to its sources and writing what it drops."""
    planned = []
    for dotted, settings in recipe.filters.in_order():
        p = settings.step(dotted, words)
        p.step.apply_to = tuple(settings.apply_to) if settings.apply_to else None
        steps.with_dropped_writer(p.step, f"{paths['dropped']}/{p.dropped_folder}")
        planned.append(p)
    return [p.step for p in planned], [p.label for p in planned]


def _kept_tail(recipe: CorpusRecipe, words, paths: dict[str, str], decont_config) -> tuple[list, list[str]]:
    """The end of the documents pipeline: n-gram decontamination, the kept counter, the docs writer."""
    from datatrove.pipeline.decont import NGramsDecontFilter
    from datatrove.pipeline.writers import JsonlWriter

    tail, names = [], []
    if decont_config is not None:
        index_folder = str(decont_index_folder(recipe))
        decont = NGramsDecontFilter(index_folder, config=decont_config, language=words)
        tail.append(steps.with_dropped_writer(decont, f"{paths['dropped']}/decont"))
        names.append("filter:decont")
    tail += [
        steps.SourceCounter("kept"),
        JsonlWriter(paths["docs"], output_filename="${source}_${rank}.jsonl.gz"),
    ]
    return tail, names + ["count:kept", "write:docs"]


def _minhash_stages(recipe, words, paths, tasks, first, final_tail) -> list[Stage]:
    """filter -> datatrove's four MinHash steps -> dedup (+ the exempt sources) -> the final tail."""
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    m = recipe.minhash
    mh = MinhashConfig(
        n_grams=m.n_grams,
        num_buckets=m.num_buckets,
        hashes_per_bucket=m.hashes_per_bucket,
        seed=m.seed,
        hash_config=HashConfig(precision=64),
        norm_config=TextNormConfig(norm_numbers=m.norm_numbers),
    )
    grouped = JsonlWriter(paths["filtered"], output_filename="${dedup_group}/${rank}.jsonl.gz")
    sigs, buckets, remove = (f"{paths['minhash']}/{name}" for name in ("signatures", "buckets", "remove_ids"))
    to_dedup = f"{paths['filtered']}/minhash"
    signature = MinhashDedupSignature(sigs, config=mh, language=words)
    stages = [
        Stage("filter", [*first[0], grouped], tasks, labels=[*first[1], "write:filtered"]),
        Stage("minhash_signatures", [steps.InternalJsonlReader(to_dedup), signature], tasks,
              labels=["read:filtered", "minhash:signatures"]),
        Stage("minhash_buckets", [MinhashDedupBuckets(sigs, buckets, config=mh)], m.num_buckets,
              labels=["minhash:buckets"]),
        Stage("minhash_clusters", [MinhashDedupCluster(buckets, remove, config=mh)], 1, labels=["minhash:clusters"]),
    ]  # fmt: skip
    dedup = steps.with_dropped_writer(MinhashDedupFilter(remove), f"{paths['dropped']}/minhash")
    pipeline, names = [steps.InternalJsonlReader(to_dedup), dedup], ["read:filtered", "filter:minhash"]
    if any(s.name not in recipe.minhash_sources for s in recipe.sources):
        # read after the MinHash filter, so its document indices match the signature stage's
        pipeline.append(steps.InternalJsonlReader(f"{paths['filtered']}/exempt"))
        names.append("read:filtered (exempt)")
    stages.append(Stage("dedup", pipeline + final_tail[0], tasks, labels=names + final_tail[1]))
    return stages


def _tokenize_stages(recipe: CorpusRecipe, paths: dict[str, str], tasks: int) -> list[Stage]:
    """docs/ -> token shards (and the optional merge), when the recipe names a tokenizer."""
    from datatrove.pipeline.tokens import DocumentTokenizerMerger

    t = recipe.tokenize
    if not t.tokenizer:
        return []
    bos, eos = special_tokens(recipe)
    tokenizer = steps.SourceTokenizer(
        paths["tokens_unmerged"] if t.merge else paths["tokens"],
        tokenizer_name_or_path=str(tokenizer_file(t.tokenizer).resolve()),
        local_working_dir=paths["tokenize_tmp"],
        save_filename=recipe.name,
        bos_token=bos,
        eos_token=eos,
        shuffle_documents=t.shuffle,
        seed=t.seed,
        batch_size=t.batch_size,
        max_tokens_per_file=None if t.merge else t.max_tokens_per_file,
    )
    reader = steps.InternalJsonlReader(paths["docs"])
    stages = [Stage("tokenize", [reader, tokenizer], tasks, labels=["read:docs", "tokenize"])]
    if t.merge:
        merger = DocumentTokenizerMerger(
            paths["tokens_unmerged"], paths["tokens"], save_filename=recipe.name, shuffle=t.shuffle, seed=t.seed,
            max_tokens_per_file=t.max_tokens_per_file or int(100e9), progress=False,
        )  # fmt: skip
        stages.append(Stage("merge", [merger], 1, labels=["merge"]))
    return stages
