"""Problems for RL and validation, and the check that no RL prompt appears in an evaluation set.

Sources: local JSONL/parquet, Hugging Face Hub datasets (when online; e.g. MATH levels 3-5), offline
reasoning-gym generators, and the benchmark test sets of ``octo.assets``. Every item becomes
``{id, question, answer}``.
"""

from __future__ import annotations

import re
from pathlib import Path

from octo import sources
from octo.assets import MissingAssetError, benchmark_items, last_boxed, reasoning_gym_items
from octo.decont import EvalIndex
from octo.errors import InputError, MissingInputError
from octo.jsonl import read_jsonl

from .config import DecontaminationConfig, ItemSource

QUESTION_FIELDS = ("question", "problem", "prompt", "Question")


def _rows_from_file(path: Path, fmt: str) -> list[dict]:
    if not path.is_file():
        raise MissingInputError(f"prompts file not found: {path}")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return list(read_jsonl(path))


def _to_item(row: dict, index: int, where: str, src: ItemSource) -> dict:
    qf = src.question_field or next((f for f in QUESTION_FIELDS if row.get(f)), None)
    question = row.get(qf) if qf else None
    if src.answer_field:
        answer = row.get(src.answer_field)
    else:
        answer = row.get("answer")
        if answer is None and row.get("solution"):
            answer = last_boxed(str(row["solution"]))
    if not isinstance(question, str) or not question.strip():
        raise InputError(
            f"{where}: row {index + 1} has no question (fields tried: {src.question_field or QUESTION_FIELDS})"
        )
    if answer is None or str(answer).strip() == "":
        raise InputError(
            f"{where}: row {index + 1} has no answer (field {src.answer_field or 'answer / solution'})"
        )
    item_id = row.get("id") or row.get("unique_id") or f"{Path(where).stem}-{index}"
    return {"id": str(item_id), "question": question.strip(), "answer": str(answer).strip()}


def load_items(src: ItemSource, seed_offset: int = 0) -> list[dict]:
    """The items of one source as [{id, question, answer}] (``seed_offset`` shifts the reasoning-gym seed)."""
    if src.source in sources.FILE_SOURCES:
        rows = _rows_from_file(Path(src.path), src.source)
        items = [_to_item(r, i, src.path, src) for i, r in enumerate(rows)]
    elif src.source == sources.REASONING_GYM:
        items = [
            {"id": x["id"], "question": x["question"], "answer": x["answer"]}
            for x in reasoning_gym_items(src.dataset, src.size, src.seed + seed_offset, **src.options)
        ]
    elif src.source == sources.BENCHMARK:
        items = [{k: x[k] for k in ("id", "question", "answer")} for x in benchmark_items(src.dataset)]
    else:
        items = _hub_items(src)
    if src.limit is not None:
        items = items[: src.limit]
    if not items:
        raise InputError(f"{src.source} source {src.path or src.dataset}: no items")
    return items


def _hub_items(src: ItemSource) -> list[dict]:
    from datasets import load_dataset

    try:
        ds = load_dataset(src.dataset, src.subset, split=src.split)
    except Exception as exc:  # offline, gated, renamed: say what was tried
        raise MissingAssetError(
            f"hub dataset {src.dataset} ({src.subset or 'default'}, split {src.split}) could not be loaded: "
            f"{type(exc).__name__}: {str(exc)[:300]}. Offline, export it to JSONL/parquet and use source=jsonl"
        ) from exc
    items = []
    for i, row in enumerate(ds):
        if src.levels is not None:
            level = str(row.get("level", ""))
            digits = re.sub(r"\D", "", level)
            if not digits or int(digits) not in src.levels:
                continue
        items.append(_to_item(dict(row), i, src.dataset, src))
    return items


# ------------------------------------------------------------------------------------- decontamination
def _eval_file_items(path: str) -> list[dict]:
    fmt = "parquet" if path.endswith(".parquet") else "jsonl"
    rows = _rows_from_file(Path(path), fmt)
    out = []
    for i, row in enumerate(rows):
        question = next((row[f] for f in QUESTION_FIELDS if isinstance(row.get(f), str)), None)
        if question is None:
            raise InputError(f"{path}: row {i + 1} has no question field ({', '.join(QUESTION_FIELDS)})")
        out.append({"id": str(row.get("id", i)), "question": question})
    return out


class ContaminationError(ValueError):
    pass


def decontaminate(
    items: list[dict], cfg: DecontaminationConfig, validation: dict[str, list[dict]] | None = None
) -> tuple[list[dict], dict]:
    """Remove (or report, or fail on) RL prompts that appear in the evaluation sets; returns (kept, report)."""
    index = EvalIndex(cfg.ngram)
    for name in cfg.benchmarks:
        index.add(f"benchmark/{name}", benchmark_items(name))
    for path in cfg.eval_files:
        index.add(f"file/{path}", _eval_file_items(path))
    if cfg.include_validation:
        for name, val_items in (validation or {}).items():
            index.add(f"validation/{name}", val_items)
    kept, hits = [], []
    for item in items:
        found = index.match(item["question"]) if index.sizes else None
        if found is None:
            kept.append(item)
        else:
            hits.append(
                {"id": item["id"], "question": item["question"][:200], "how": found[0], "eval_item": found[1]}
            )
    report = {
        "checked_against": index.sizes,
        "ngram": cfg.ngram,
        "action": cfg.action,
        "prompts": len(items),
        "contaminated": len(hits),
        "kept": len(kept) if cfg.action == "drop" else len(items),
        "examples": hits[:50],
    }
    if hits and cfg.action == "fail":
        first = hits[0]
        raise ContaminationError(
            f"{len(hits)} of {len(items)} RL prompts appear in the evaluation sets (first: {first['id']} "
            f"matches {first['eval_item']} by {first['how']}); set prompts.decontaminate.action=drop to remove them"
        )
    return (kept if cfg.action == "drop" else list(items)), report
