"""End-to-end corpus builds on the local executor: readers, filters, MinHash, decontamination, tokens, accounting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from corpus_helpers import (
    EASY,
    HARD,
    docs_by_file,
    perturb,
    read_docs,
    token_files,
    write_messy_web,
    write_recipe,
)
from procs_helpers import kill_run

from octo.assets import wiki_summaries
from octo.procs import RunLockedError
from pipelines.build import build
from pipelines.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def _classifier_yaml(path: Path, output: Path, classes: dict, normalise: str, **fasttext) -> Path:
    return write_recipe(path, {
        "output": str(output), "classes": classes, "max_per_class": 400, "normalise": normalise,
        "fasttext": {"epoch": 8, "lr": 0.5, "dim": 16, "bucket": 20000, **fasttext},
    })  # fmt: skip


@pytest.fixture(scope="module")
def messy(tmp_path_factory, benchmarks_root):
    """A small but messy input set, trained math and language-ID models, and the recipe that uses them."""
    tmp = tmp_path_factory.mktemp("messy")
    math = [r["extract"] for r in wiki_summaries(topic="Mathematics") if len(r["extract"].split()) > 60][:40]
    other = [
        r["extract"]
        for r in wiki_summaries(exclude_topic="Mathematics")[:4000:100]
        if len(r["extract"].split()) > 60
    ][:30]
    french = [r["extract"] for r in wiki_summaries(lang="fr-fr")[:2000:200]][:8]
    dups = [perturb(t, every=50) for t in math[:10]]
    planted = write_messy_web(tmp / "web", math, other, french, dups)
    import pyarrow as pa
    import pyarrow.parquet as pq

    qa_rows = [
        {"id": f"q{i}", "problem": f"What is {i} plus {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}."}
        for i in range(30)
    ]
    qa_rows.append({"id": "q-missing", "problem": "A question without its solution", "solution": None})
    pq.write_table(pa.Table.from_pylist(qa_rows), tmp / "qa.parquet")
    (tmp / "hub").mkdir()
    (tmp / "hub" / "train.jsonl").write_text("".join(json.dumps({"question": f"Name prime number {i}.", "answer": str(p)}) + "\n"
                                                     for i, p in enumerate([2, 3, 5, 7, 11, 13])))  # fmt: skip
    (tmp / "eval.jsonl").write_text(
        json.dumps(
            {
                "question": "The quick brown fox jumps over the lazy dog while seven wise owls count the stars tonight",
                "answer": "42",
            }
        )
        + "\n"
    )
    math_cfg = _classifier_yaml(tmp / "math_cls.yaml", tmp / "models" / "math.bin", {
        "math": [{"name": "wiki_math", "type": "wiki", "topic": "Mathematics"}],
        "other": [{"name": "wiki_other", "type": "wiki", "exclude_topic": "Mathematics", "hash_range": [0.5, 0.6]}],
    }, "megamath")  # fmt: skip
    lid_cfg = _classifier_yaml(tmp / "lid.yaml", tmp / "models" / "lid.bin", {
        "en": [{"name": "en", "type": "wiki", "hash_range": [0.5, 0.6]}],
        "fr": [{"name": "fr", "type": "wiki", "lang": "fr-fr", "hash_range": [0.5, 0.7]}],
        "es": [{"name": "es", "type": "wiki", "lang": "es-es", "hash_range": [0.5, 0.7]}],
    }, "lines", minn=2, maxn=4)  # fmt: skip
    recipe = {
        "name": "messy",
        "output_dir": str(tmp / "out"),
        "sources": [
            {"name": "web", "type": "jsonl", "path": str(tmp / "web")},
            {"name": "qa_parquet", "type": "parquet", "path": str(tmp / "qa.parquet"), "format": "qa",
             "fields": {"question": "problem", "answer": "solution"}, "dedup": False},
            {"name": "hub_qa", "type": "hub", "dataset": "json", "streaming": False,
             "load_options": {"data_files": str(tmp / "hub" / "train.jsonl")}, "format": "qa", "dedup": False},
            {"name": "arith", "type": "arithmetic", "fields": {"text": "prose"}, "size": 60, "seed": 11,
             "dedup": False, "mix": [{"weight": 1, "options": EASY}, {"weight": 1, "options": HARD}]},
        ],
        "filters": {
            "language": {"model": str(tmp / "models" / "lid.bin"), "train_config": str(lid_cfg), "languages": ["en"],
                         "threshold": 0.5, "apply_to": ["web"]},
            "quality": [{"name": "gopher_repetition", "apply_to": ["web"]}],
            "math": {"model": str(tmp / "models" / "math.bin"), "train_config": str(math_cfg), "threshold": 0.5,
                     "apply_to": ["web"]},
        },
        "minhash": {"num_buckets": 8, "hashes_per_bucket": 4, "n_grams": 5},
        "decont": {"n_grams": 12, "benchmarks": ["gsm8k"], "benchmarks_dir": str(benchmarks_root),
                   "files": [{"name": "custom_eval", "path": str(tmp / "eval.jsonl")}]},
        "tokenize": {"tokenizer": None},
        "executor": {"local": {"tasks": 2}},
    }  # fmt: skip
    return {"tmp": tmp, "recipe": recipe, "planted": planted, "math": math, "french": french, "dups": dups}


@pytest.fixture(scope="module")
def built(messy, tiny_tokenizer):
    path = write_recipe(messy["tmp"] / "recipe.yaml", messy["recipe"])
    out = build(load_recipe(path, [f"tokenize.tokenizer={tiny_tokenizer}"]))
    return {**messy, "out": out, "stats": json.loads((out / "stats.json").read_text())}


def test_every_record_is_accounted_for(built):
    stats = built["stats"]
    assert stats["totals"]["balanced"] is True
    for name, s in stats["sources"].items():
        assert s["unaccounted"] == 0, name
        assert s["input"] == s["malformed"] + sum(s["dropped"].values()) + s["kept"], name
    web = stats["sources"]["web"]
    # every good web record, plus the malformed lines, plus what the truncated gzip gave before it broke
    assert web["input"] >= built["planted"]["good"] + 6
    kept_ids = {d["id"] for d in read_docs(built["out"] / "docs")}
    assert len(kept_ids) == stats["totals"]["kept"]
    manifest = json.loads((built["out"] / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["balanced"] is True


def test_malformed_input_is_counted_with_file_and_line(built):
    malformed = built["stats"]["malformed"]
    by_reason = malformed["by_reason"]
    for reason, lines in built["planted"]["malformed_part1"].items():
        assert by_reason.get(reason) == len(lines), reason
        rows = [e for e in malformed["examples"] if e["reason"] == reason]
        assert rows and rows[0]["file"].endswith("part1.jsonl") and rows[0]["line"] == lines[0], reason
    assert by_reason.get("corrupt_file") == 1  # the truncated gzip: reported, the task went on
    assert by_reason.get("missing_solution") == 1  # the parquet QA row without a solution
    logged = [json.loads(line) for p in (built["out"] / "malformed").glob("*.jsonl") for line in p.open()]
    assert len(logged) == malformed["total"]
    report = (built["out"] / "report.md").read_text()
    assert "part1.jsonl:3` bad_json" in report


def test_filters_drop_with_reasons_and_record_scores(built):
    steps = {s["step"]: s for s in built["stats"]["steps"]}
    language = steps["filter:language"]
    assert language["dropped_by_source"] == {"web": len(built["french"])}  # exactly the French leads
    assert language["out_of_scope"] > 0  # the QA and arithmetic sources pass through untouched
    math = steps["filter:math"]
    assert math["dropped"] > 0 and "math_score_below_0.5" in math["dropped_by_reason"]
    docs = read_docs(built["out"] / "docs")
    web_docs = [d for d in docs if d["metadata"]["source"] == "web"]
    assert web_docs and all(d["metadata"]["math_score"] >= 0.5 for d in web_docs)
    dropped = read_docs(built["out"] / "dropped" / "math")
    assert dropped and all(d["metadata"]["filter_reason"] == "math_score_below_0.5" for d in dropped)


def test_minhash_removes_near_duplicates(built):
    minhash = built["stats"]["minhash"]
    assert minhash["sources"] == ["web"]
    assert 8 <= minhash["removed"] <= 20  # ten near-duplicate pairs
    texts = [d["text"] for d in read_docs(built["out"] / "docs")]
    pairs_left = sum(1 for orig, dup in zip(built["math"], built["dups"]) if orig in texts and dup in texts)
    assert pairs_left <= 2


def test_formats_and_sources(built):
    docs = read_docs(built["out"] / "docs")
    by_source = Counter(d["metadata"]["source"] for d in docs)
    assert by_source["qa_parquet"] == 30 and by_source["hub_qa"] == 6 and by_source["arith"] == 60
    qa = next(d for d in docs if d["metadata"]["source"] == "qa_parquet")
    assert qa["text"].startswith("Question: What is ") and "\nAnswer: " in qa["text"]
    assert qa["metadata"]["format"] == "qa" and "qa.parquet:" in qa["metadata"]["origin"]
    hub = next(d for d in docs if d["metadata"]["source"] == "hub_qa")
    assert hub["text"].startswith("Question: Name prime number")
    assert all("dedup_group" not in d["metadata"] for d in docs)


def test_token_shards_have_bos_eos_and_per_source_counts(built, tiny_tokenizer):
    import numpy as np
    from datatrove.utils.dataset import DatatroveFolderDataset
    from tokenizers import Tokenizer

    tokens = built["stats"]["tokens"]
    assert tokens["total"] > 0 and sum(tokens["by_source"].values()) == tokens["total"]
    assert tokens["documents_by_source"]["arith"] == 60
    tok = Tokenizer.from_file(str(Path(tiny_tokenizer) / "tokenizer.json"))
    bos, eos = tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|end_of_text|>")
    shards = sorted((built["out"] / "tokens").glob("*.ds"))
    assert len(shards) == 2  # one per task
    for shard in shards:
        ids = np.fromfile(shard, dtype="<u2")
        ends = np.fromfile(f"{shard}.index", dtype="<u8")
        starts = np.concatenate([np.zeros(1, dtype=ends.dtype), ends[:-1]])
        assert (ids[ends - 1] == eos).all() and (ids[starts] == bos).all()
        meta = Path(f"{shard}.metadata").read_text().splitlines()
        assert meta[0].endswith("|2") and int(meta[1]) == len(ids)
    ds = DatatroveFolderDataset(
        str(built["out"] / "tokens"), seq_len=32, filename_pattern="*.ds", token_size=2
    )
    assert len(ds) > 0 and ds[0]["input_ids"].shape[0] == 33
    manifest = json.loads((built["out"] / "manifest.json").read_text())
    assert manifest["counts"]["tokens_by_source"] == tokens["by_source"]


def test_custom_eval_file_is_indexed(built):
    decont = built["stats"]["decont"]
    assert decont["benchmarks"]["custom_eval"]["items"] == 1
    assert decont["benchmarks"]["gsm8k"]["items"] == 1319


def _small_recipe(tmp_path: Path, name: str, **extra) -> dict:
    recipe = {
        "name": name,
        "output_dir": str(tmp_path / name),
        "sources": [
            {"name": "wiki", "type": "wiki", "exclude_topic": "Mathematics", "hash_range": [0.0, 0.03]},
            {"name": "arith", "type": "arithmetic", "format": "qa", "fields": {"answer": "solution"}, "size": 400,
             "seed": 21, "dedup": False, "mix": [{"weight": 1, "options": EASY}, {"weight": 1, "options": HARD}]},
        ],
        "minhash": {"num_buckets": 4, "hashes_per_bucket": 4},
    }  # fmt: skip
    recipe.update(extra)
    return recipe


def test_decontamination_removes_every_planted_question_and_nothing_else(tmp_path, benchmarks_root):
    from octo.assets import benchmark_items

    planted = []
    for bench in ("gsm8k", "math500"):
        items = [it for it in benchmark_items(bench, source="local") if len(it["question"].split()) >= 20]
        planted += [(bench, it) for it in items[:: max(1, len(items) // 15)][:15]]
    clean = [r["extract"] for r in wiki_summaries(exclude_topic="Mathematics")[:3000:10]]
    rows = [{"id": f"clean{i}", "text": t} for i, t in enumerate(clean)]
    rows += [
        {"id": f"planted-{b}-{i}", "text": f"Homework help. {it['question']} Please show your work."}
        for i, (b, it) in enumerate(planted)
    ]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"name": "decont", "output_dir": str(tmp_path / "out"),
              "sources": [{"name": "web", "type": "jsonl", "path": str(tmp_path / "corpus")}],
              "decont": {"n_grams": 12, "benchmarks": ["gsm8k", "math500"], "benchmarks_dir": str(benchmarks_root)}}  # fmt: skip
    out = build(load_recipe(write_recipe(tmp_path / "r.yaml", recipe)))
    stats = json.loads((out / "stats.json").read_text())
    removed = {d["id"] for d in read_docs(out / "dropped" / "decont")}
    assert removed == {r["id"] for r in rows if r["id"].startswith("planted")}
    kept = {d["id"] for d in read_docs(out / "docs")}
    assert kept == {r["id"] for r in rows if r["id"].startswith("clean")}
    hits = {k: v["hits"] for k, v in stats["decont"]["benchmarks"].items()}
    assert hits == {"gsm8k": 15, "math500": 15}
    assert stats["decont"]["benchmarks"]["gsm8k"]["examples"]
    assert "| gsm8k | 1,319 | 0 | 15 |" in (out / "report.md").read_text()


def test_minhash_number_normalisation_collapses_arithmetic(tmp_path):
    def removed(norm: bool) -> tuple[int, int, int]:
        recipe = {"name": f"mh{int(norm)}", "output_dir": str(tmp_path / f"mh{int(norm)}"),
                  "sources": [{"name": "arith", "type": "arithmetic", "fields": {"text": "prose"}, "size": 300,
                               "seed": 31, "mix": [{"weight": 1, "options": HARD}]}],
                  "minhash": {"num_buckets": 14, "hashes_per_bucket": 8, "n_grams": 5, "norm_numbers": norm}}  # fmt: skip
        out = build(load_recipe(write_recipe(tmp_path / f"mh{int(norm)}.yaml", recipe)))
        kept = read_docs(out / "docs")
        stats = json.loads((out / "stats.json").read_text())
        return stats["minhash"]["removed"], len(kept), len({d["text"] for d in kept})

    off_removed, off_kept, off_distinct = removed(False)
    on_removed, _, _ = removed(True)
    assert off_kept == off_distinct  # exact duplicates go ...
    assert off_removed < 60  # ... but different problems survive with number normalisation off
    assert on_removed > 200  # with it on, docs that differ only in their numbers collapse


def test_tokenize_later_runs_only_the_token_stages(tmp_path, tiny_tokenizer):
    path = write_recipe(tmp_path / "r.yaml", _small_recipe(tmp_path, "later"))
    out = build(load_recipe(path))
    assert (
        not list((out / "tokens").glob("*.ds"))
        and json.loads((out / "stats.json").read_text())["totals"]["tokens"] == 0
    )
    docs_before = docs_by_file(out / "docs")
    marker = out / "work" / "logs" / "filter" / "completions" / "00000"
    stamp = marker.stat().st_mtime_ns
    out = build(load_recipe(path, [f"tokenize.tokenizer={tiny_tokenizer}"]))
    assert marker.stat().st_mtime_ns == stamp  # the document stages were not run again
    assert docs_by_file(out / "docs") == docs_before
    stats = json.loads((out / "stats.json").read_text())
    assert stats["tokens"]["total"] > 0 and list((out / "tokens").glob("*.ds"))
    # `octo corpus tokenize` does the same from the folder's manifest
    from pipelines.__main__ import main

    assert main(["tokenize", str(out), "--tokenizer", str(tiny_tokenizer)]) == 0


def test_tokenize_with_a_checkpoints_tokenizer_and_merge(tmp_path, tiny_model):
    from datatrove.utils.dataset import DatatroveFolderDataset

    path = write_recipe(
        tmp_path / "r.yaml", _small_recipe(tmp_path, "merged", executor={"local": {"tasks": 2}})
    )
    overrides = [
        f"tokenize.tokenizer={tiny_model}",
        "tokenize.merge=true",
        "tokenize.max_tokens_per_file=20000",
    ]
    out = build(load_recipe(path, overrides))  # a model folder: its tokenizer.json and tokenizer_config.json
    shards = sorted(p.name for p in (out / "tokens").glob("*.ds"))
    assert len(shards) >= 2 and all(name.endswith("_merged.ds") for name in shards)
    stats = json.loads((out / "stats.json").read_text())
    assert (
        stats["tokens"]["bos_token"] == "<|begin_of_text|>"
        and stats["tokens"]["eos_token"] == "<|end_of_text|>"
    )
    assert (
        sum(int(Path(f"{out / 'tokens' / name}.metadata").read_text().splitlines()[1]) for name in shards)
        == stats["tokens"]["total"]
    )
    ds = DatatroveFolderDataset(str(out / "tokens"), seq_len=64, filename_pattern="*.ds", token_size=2)
    assert len(ds) > 0 and ds[0]["input_ids"].shape[0] == 65


def test_offline_sources_render_qa_and_long_chain_of_thought(tmp_path):
    recipe = {"name": "offline", "output_dir": str(tmp_path / "out"),
              "sources": [{"name": "gsm8k", "type": "gsm8k_offline", "format": "qa", "fields": {"answer": "solution"}},
                          {"name": "champ_cot", "type": "champ_solutions", "format": "cot", "size": 20},
                          {"name": "champ_qa", "type": "champ_problems", "format": "qa", "limit": 10}]}  # fmt: skip
    out = build(load_recipe(write_recipe(tmp_path / "r.yaml", recipe)))
    docs = read_docs(out / "docs")
    by = {
        name: [d for d in docs if d["metadata"]["source"] == name]
        for name in ("gsm8k", "champ_cot", "champ_qa")
    }
    assert len(by["gsm8k"]) == 100 and len(by["champ_cot"]) == 20 and len(by["champ_qa"]) == 10
    assert all(d["text"].startswith("Question: ") and "\nAnswer: " in d["text"] for d in docs)
    assert all("The answer is" in d["text"] for d in by["gsm8k"])
    assert all(d["metadata"]["format"] == "cot" for d in by["champ_cot"])
    assert sum(len(d["text"]) for d in by["champ_cot"]) / 20 > 1000  # long worked solutions


def test_changed_recipe_rebuilds_and_foreign_folder_is_refused(tmp_path):
    from octo.config import ConfigError

    data = _small_recipe(tmp_path, "change")
    path = write_recipe(tmp_path / "r.yaml", data)
    out = build(load_recipe(path, ["minhash=null"]))
    n = len(read_docs(out / "docs"))
    data["sources"][1]["size"] = 100
    out = build(load_recipe(write_recipe(path, data), ["minhash=null"]))
    assert len(read_docs(out / "docs")) == n - 300
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a corpus folder"):
        build(load_recipe(path, [f"output_dir={foreign}"]))
    assert (foreign / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_output(tmp_path, tiny_tokenizer):
    data = _small_recipe(
        tmp_path, "resume", tokenize={"tokenizer": str(tiny_tokenizer)}, executor={"local": {"tasks": 3}}
    )
    path = write_recipe(tmp_path / "r.yaml", data)
    reference = build(load_recipe(path, [f"output_dir={tmp_path / 'reference'}"]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "octo", "corpus", "build", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    first = Path(data["output_dir"]) / "work" / "logs" / "filter" / "completions" / "00000"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None
    with pytest.raises(
        RunLockedError, match=f"in use by an earlier run that is still alive: pid {proc.pid} "
    ):
        build(load_recipe(path))  # a second build of the same folder while the first one runs
    kill_run(proc, data["output_dir"])  # mid-way: after the first task of the first stage; nothing survives
    assert first.exists()
    manifest = json.loads((Path(data["output_dir"]) / "manifest.json").read_text())
    assert manifest["status"] == "running"
    stamp = first.stat().st_mtime_ns
    out = build(load_recipe(path))
    assert first.stat().st_mtime_ns == stamp  # the finished task was not redone
    assert docs_by_file(out / "docs") == docs_by_file(reference / "docs")
    assert token_files(out / "tokens") == token_files(reference / "tokens")
    a, b = json.loads((out / "stats.json").read_text()), json.loads((reference / "stats.json").read_text())
    assert a["sources"] == b["sources"] and a["totals"] == b["totals"]
