"""Accounting for a built corpus: ``stats.json`` and ``report.md`` from the stages' datatrove stats.

Every input record ends up in exactly one place: malformed (logged with file and line), dropped by a named
step (kept under ``dropped/<step>/`` with the reason in its metadata) or kept in ``docs/``. The report checks
that per source ``input == malformed + dropped + kept`` and says so.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

from octo.errors import InputError
from pipelines.layout import decont_index_folder, layout, special_tokens, stage_dir, tokenizer_file

__all__ = ["finalize", "merged_stage_stats", "total"]

MAX_MALFORMED_EXAMPLES = 50


def total(value) -> float:
    """A datatrove stat is a bare number or a dict with 'total'."""
    if isinstance(value, dict):
        return value.get("total", 0)
    return value or 0


def merged_stage_stats(logging_dir: Path, stage) -> list[dict]:
    """Sum the per-task stats of a stage (all tasks, also those finished by an earlier, interrupted run)."""
    from datatrove.utils.stats import PipelineStats

    merged = PipelineStats()
    for path in sorted((logging_dir / "stats").glob("*.json")):
        merged += PipelineStats.from_json(json.loads(path.read_text()))
    steps = [s.to_dict() for s in merged.stats]
    if steps and len(steps) != len(stage.labels):
        raise InputError(f"{logging_dir}: {len(steps)} steps in stats, {len(stage.labels)} in the plan")
    return [
        {"label": label, "stats": s["stats"], "seconds": total(s["time_stats"])}
        for label, s in zip(stage.labels, steps)
    ]


def _by_prefix(stats: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: total(v) for k, v in stats.items() if k.startswith(prefix)}


def _read_rows(folder: Path, limit: int) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                rows.append(json.loads(line))
                if len(rows) >= limit:
                    return rows
    return rows


def _decont_examples(folder: Path, per_task: int) -> dict[str, list[dict]]:
    examples: dict[str, list[dict]] = defaultdict(list)
    if per_task <= 0 or not folder.is_dir():
        return {}
    for row in _read_rows(folder, 10_000):
        meta = row.get("metadata", {})
        task = meta.get("contaminated_task", "?")
        if len(examples[task]) < per_task:
            examples[task].append(
                {
                    "id": row.get("id"),
                    "source": meta.get("source"),
                    "ngram": meta.get("contaminated_ngram"),
                    "text": row.get("text", "")[:200],
                }  # fmt: skip
            )
    return dict(examples)


def _step_row(stage: str, step: dict) -> dict:
    s = step["stats"]
    row = {
        "stage": stage,
        "step": step["label"],
        "in": total(s.get("total", 0)),
        "kept": total(s.get("forwarded", 0)),
        "dropped": total(s.get("dropped", 0)),
        "dropped_by_reason": {
            k: v for k, v in _by_prefix(s, "dropped_").items() if not k.startswith("source/")
        },
        "dropped_by_source": _by_prefix(s, "dropped_source/"),
        "seconds": round(step["seconds"], 3),
    }
    if step["label"] == "filter:decont":
        row["contaminated_by_benchmark"] = {
            k: v for k, v in _by_prefix(s, "contaminated_").items() if not k.startswith("tg_")
        }
    if step["label"].startswith("filter:") and "out_of_scope" in s:
        row["out_of_scope"] = total(s["out_of_scope"])
    for key, value in s.items():
        if key.endswith("_score") and isinstance(value, dict):
            row["mean_score"] = round(value.get("mean", 0.0), 4)
    return row


def collect(recipe, out: Path, stages) -> dict:
    """stats.json's content: per-source accounting, per-step rows and one section per optional feature."""
    paths = layout(out)
    sources = {s.name: Counter() for s in recipe.sources}
    steps, malformed_reasons, tokens = _count_steps(out, stages, sources)
    per_source = _per_source(sources, tokens)
    totals = {
        "input": sum(v["input"] for v in per_source.values()),
        "malformed": sum(v["malformed"] for v in per_source.values()),
        "dropped": sum(sum(v["dropped"].values()) for v in per_source.values()),
        "kept": sum(v["kept"] for v in per_source.values()),
        "tokens": int(tokens["total"]),
    }
    totals["balanced"] = all(v["unaccounted"] == 0 for v in per_source.values())
    malformed_rows = (
        _read_rows(paths["malformed"], MAX_MALFORMED_EXAMPLES) if paths["malformed"].is_dir() else []
    )
    result = {
        "recipe": recipe.name,
        "totals": totals,
        "sources": per_source,
        "steps": steps,
        "malformed": {
            "total": totals["malformed"],
            "by_reason": dict(malformed_reasons),
            "examples": malformed_rows,
            "log_folder": str(paths["malformed"]),
        },
    }
    if recipe.decont is not None:
        result["decont"] = _decont_section(recipe, paths, steps)
    if recipe.minhash is not None:
        result["minhash"] = {**recipe.minhash.model_dump(), "sources": recipe.minhash_sources,
                             "removed": next((r["dropped"] for r in steps if r["step"] == "filter:minhash"), 0)}  # fmt: skip
    if recipe.refine is not None:
        from pipelines.refine import report_section  # datatrove's inference runner: only for refined corpora

        runner = {step["label"]: step["stats"] for st in stages if st.name == "refine"
                  for step in merged_stage_stats(stage_dir(out, st), st)}  # fmt: skip
        result["refine"] = report_section(recipe, steps, runner)
    if recipe.filters.math is not None:
        metrics_file = Path(f"{recipe.filters.math.model}.json")
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            result["math_classifier"] = {"model": recipe.filters.math.model, "threshold": recipe.filters.math.threshold,
                                         "held_out": metrics.get("held_out"), "documents": metrics.get("documents")}  # fmt: skip
    if recipe.tokenize.tokenizer:
        result["tokens"] = _tokens_section(recipe, paths, tokens)
    return result


def _count_steps(out: Path, stages, sources: dict[str, Counter]) -> tuple[list[dict], Counter, dict]:
    """Walk every step's merged stats: step rows, and (in place) the per-source counts; malformed reasons, tokens."""
    steps, malformed_reasons = [], Counter()
    tokens = {"total": 0, "by_source": Counter(), "docs_by_source": Counter()}
    for stage in stages:
        for step in merged_stage_stats(stage_dir(out, stage), stage):
            label, s = step["label"], step["stats"]
            if stage.name == "decont_index":
                continue
            if label.startswith("read:") and label[5:] in sources:
                steps.append(_read_row(stage.name, step, sources[label[5:]], label[5:], malformed_reasons))
            elif label.startswith("filter:"):
                row = _step_row(stage.name, step)
                steps.append(row)
                for name, n in row["dropped_by_source"].items():
                    sources.setdefault(name, Counter())[f"dropped:{label[7:]}"] += n
            elif label == "count:kept":
                for name, n in _by_prefix(s, "kept_source/").items():
                    sources.setdefault(name, Counter())["kept"] += n
            elif label == "tokenize":
                tokens["total"] += total(s.get("tokens", 0))
                tokens["by_source"].update(_by_prefix(s, "tokens_source/"))
                tokens["docs_by_source"].update(_by_prefix(s, "docs_source/"))
    return steps, malformed_reasons, tokens


def _read_row(stage: str, step: dict, counts: Counter, name: str, malformed_reasons: Counter) -> dict:
    """A source reader's row; its read and malformed records go into the source's counts."""
    s = step["stats"]
    read, bad = _by_prefix(s, "read_source/").get(name, 0), _by_prefix(s, "malformed_source/").get(name, 0)
    counts["input"] += read + bad
    counts["malformed"] += bad
    reasons = _by_prefix(s, "malformed/")
    malformed_reasons.update(reasons)
    return {"stage": stage, "step": step["label"], "in": read + bad, "kept": read, "dropped": bad,
            "dropped_by_reason": reasons, "dropped_by_source": {name: bad} if bad else {},
            "seconds": round(step["seconds"], 3)}  # fmt: skip


def _per_source(sources: dict[str, Counter], tokens: dict) -> dict[str, dict]:
    """input == malformed + dropped + kept per source; what does not add up is reported as unaccounted."""
    per_source = {}
    for name, c in sources.items():
        dropped = {k.split(":", 1)[1]: v for k, v in c.items() if k.startswith("dropped:")}
        accounted = c["malformed"] + sum(dropped.values()) + c["kept"]
        per_source[name] = {
            "input": int(c["input"]),
            "malformed": int(c["malformed"]),
            "dropped": {k: int(v) for k, v in dropped.items()},
            "kept": int(c["kept"]),
            "tokens": int(tokens["by_source"].get(name, 0)),
            "unaccounted": int(c["input"] - accounted),
        }
    return per_source


def _decont_section(recipe, paths: dict, steps: list[dict]) -> dict:
    """Per benchmark: items indexed, those too short to match, hashes, documents removed and examples."""
    index_stats = decont_index_folder(recipe) / "index_stats.json"
    decont_index = json.loads(index_stats.read_text()) if index_stats.is_file() else {}
    decont_step = next((r for r in steps if r["step"] == "filter:decont"), {})
    hits = decont_step.get("contaminated_by_benchmark", {})
    examples = _decont_examples(paths["dropped"] / "decont", recipe.decont.examples)
    return {
        "n_grams": recipe.decont.n_grams,
        "index": str(decont_index_folder(recipe)),
        "benchmarks": {
            task: {
                "items": int(c["items"]),
                "too_short_to_match": int(c["too_short"]),
                "ngram_hashes": int(c["hashes"]),
                "hits": int(hits.get(task, 0)),
                "examples": examples.get(task, []),
            }  # fmt: skip
            for task, c in sorted(decont_index.items())
        },
    }


def _tokens_section(recipe, paths: dict, tokens: dict) -> dict:
    bos, eos = special_tokens(recipe)
    return {
        "total": int(tokens["total"]),
        "by_source": {k: int(v) for k, v in tokens["by_source"].items()},
        "documents_by_source": {k: int(v) for k, v in tokens["docs_by_source"].items()},
        "tokenizer": str(tokenizer_file(recipe.tokenize.tokenizer).resolve()),
        "bos_token": bos,
        "eos_token": eos,
        "token_size": _token_size(paths["tokens"]),
        "files": sorted(p.name for p in paths["tokens"].glob("*.ds")),
    }


def _token_size(folder: Path) -> int | None:
    for meta in sorted(folder.glob("*.ds.metadata")):
        first = meta.read_text().splitlines()[0]
        return int(first.rsplit("|", 1)[1])
    return None


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(value) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else str(value)


def render_report(stats: dict) -> str:
    """report.md: the summary, then one section per part of stats.json (optional ones only when present)."""
    parts = (
        _summary(stats) + _sources_table(stats) + _steps_table(stats) + _malformed_section(stats["malformed"])
    )
    if "math_classifier" in stats:
        mc = stats["math_classifier"]
        held = mc.get("held_out") or {}
        per = held.get("per_class", {})
        parts += ["## Math classifier", "", f"`{mc['model']}`, keep if P(math) >= {mc['threshold']}. Held-out: "
                  + ", ".join(f"{k} precision {v['precision']:.3f} recall {v['recall']:.3f}" for k, v in per.items()), ""]  # fmt: skip
    if "minhash" in stats:
        mh = stats["minhash"]
        parts += ["## MinHash", "", f"{mh['num_buckets']} buckets x {mh['hashes_per_bucket']} hashes, {mh['n_grams']}-grams, "
                  f"number normalisation {'on' if mh['norm_numbers'] else 'off'}; over sources {mh['sources']}; "
                  f"{_n(mh['removed'])} near-duplicates removed.", ""]  # fmt: skip
    if "refine" in stats:
        from pipelines.refine import render_section  # datatrove's inference runner: only for refined corpora

        parts += render_section(stats["refine"])
    if "decont" in stats:
        parts += _decont_report(stats["decont"])
    if "tokens" in stats:
        parts += _tokens_report(stats["tokens"])
    if stats.get("stage_seconds"):
        parts += [
            "## Stage wall times (s)",
            "",
            ", ".join(f"{k}: {v}" for k, v in stats["stage_seconds"].items()),
            "",
        ]
    return "\n".join(parts)


def _summary(stats: dict) -> list[str]:
    t = stats["totals"]
    return [
        f"# Corpus `{stats['recipe']}`",
        "",
        f"{_n(t['input'])} input records -> {_n(t['kept'])} documents kept ({_n(t['dropped'])} dropped by filters, "
        f"{_n(t['malformed'])} malformed), {_n(t['tokens'])} tokens. Executor: {stats.get('executor')}; "
        f"wall time {stats.get('wall_s', 0):.1f} s.",
        "",
        "Accounting: " + ("every input record is kept, dropped with a reason, or logged as malformed."
                          if t["balanced"] else "**UNBALANCED: some records are unaccounted for (see sources).**"),
        "",
    ]  # fmt: skip


def _sources_table(stats: dict) -> list[str]:
    drop_steps = sorted({k for v in stats["sources"].values() for k in v["dropped"]})
    header = [
        "source",
        "input",
        "malformed",
        *[f"dropped: {k}" for k in drop_steps],
        "kept",
        "tokens",
        "unaccounted",
    ]
    rows = [
        [
            name,
            _n(v["input"]),
            _n(v["malformed"]),
            *[_n(v["dropped"].get(k, 0)) for k in drop_steps],
            _n(v["kept"]),
            _n(v["tokens"]),
            v["unaccounted"],
        ]  # fmt: skip
        for name, v in stats["sources"].items()
    ]
    return ["## Sources", "", _table(header, rows), ""]


def _steps_table(stats: dict) -> list[str]:
    rows = []
    for r in stats["steps"]:
        reasons = ", ".join(f"{k}: {_n(v)}" for k, v in r["dropped_by_reason"].items()) or "-"
        extra = f" (mean score {r['mean_score']})" if "mean_score" in r else ""
        rows.append(
            [
                r["stage"],
                r["step"] + extra,
                _n(r["in"]),
                _n(r["kept"]),
                _n(r["dropped"]),
                reasons,
                f"{r['seconds']:.2f}",
            ]
        )
    header = ["stage", "step", "in", "kept", "dropped", "dropped by reason", "step s"]
    return ["## Steps", "", _table(header, rows), ""]


def _malformed_section(m: dict) -> list[str]:
    parts = ["## Malformed input", ""]
    if m["total"]:
        parts += [f"{_n(m['total'])} records ({', '.join(f'{k}: {v}' for k, v in m['by_reason'].items())}); "
                  f"all listed in `{m['log_folder']}/`. First ones:", ""]  # fmt: skip
        parts += [
            f"- `{e['file']}:{e['line']}` {e['reason']} {e.get('detail', '')}".rstrip()
            for e in m["examples"][:20]
        ]
    else:
        parts.append("None.")
    return parts + [""]


def _decont_report(d: dict) -> list[str]:
    parts = ["## Decontamination", "", f"{d['n_grams']}-gram matches against the evaluation sets:", ""]
    rows = [
        [task, _n(b["items"]), _n(b["too_short_to_match"]), _n(b["hits"])]
        for task, b in d["benchmarks"].items()
    ]
    parts += [_table(["benchmark", "items", "too short to match", "documents removed"], rows), ""]
    for task, b in d["benchmarks"].items():
        for e in b["examples"]:
            parts.append(f'- {task}: `{e["id"]}` ({e["source"]}) matched "{e["ngram"]}"')
    return parts + [""]


def _tokens_report(tk: dict) -> list[str]:
    parts = ["## Tokens", "", f"Tokenizer `{tk['tokenizer']}` (BOS {tk['bos_token']!r}, EOS {tk['eos_token']!r}, "
             f"{tk['token_size']} bytes per token), {len(tk['files'])} shard(s) in `tokens/`.", ""]  # fmt: skip
    rows = [[k, _n(tk["documents_by_source"].get(k, 0)), _n(v)] for k, v in tk["by_source"].items()]
    return parts + [_table(["source", "documents", "tokens"], rows), ""]


def finalize(recipe, out: Path, stages, executor: str, stage_seconds: dict, wall_s: float) -> dict:
    """Write stats.json and report.md; return the counts for the manifest."""
    previous = json.loads((out / "stats.json").read_text()) if (out / "stats.json").is_file() else {}
    stats = collect(recipe, out, stages)
    stats["executor"] = executor
    # a resumed or tokens-only run keeps the times of the stages an earlier run did
    stats["stage_seconds"] = {**previous.get("stage_seconds", {}), **stage_seconds}
    stats["wall_s"] = round(wall_s, 2)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (out / "report.md").write_text(render_report(stats))
    t = stats["totals"]
    return {
        "input_records": t["input"],
        "malformed": t["malformed"],
        "dropped": t["dropped"],
        "documents_kept": t["kept"],
        "tokens": t["tokens"],
        "balanced": t["balanced"],
        "documents_by_source": {k: v["kept"] for k, v in stats["sources"].items()},
        "tokens_by_source": {k: v["tokens"] for k, v in stats["sources"].items()},
    }
