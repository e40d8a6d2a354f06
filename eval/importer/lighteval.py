"""lighteval's results JSON (``results/<model>/results_<date>.json``) -> the eval runner's ``results.json``.

lighteval writes ``{"config_general": ..., "results": {"<suite>|<task>|<fewshot>": {"<metric>": x,
"<metric>_stderr": se}, "all": ...}, "summary_tasks": {...}}``. Each task becomes an entry with its score, the
few-shot count from the task key, and the number of items where lighteval's summary says how many it scored.
The suite is named by kind (``<suite>_fewshot`` / ``<suite>_zeroshot``), since the readiness table shows few-shot
scores before RL only and zero-shot scores before and after.
"""

from __future__ import annotations

from pathlib import Path

from octo.errors import InputError
from octo.jsonl import read_json


def _task_parts(key: str) -> tuple[str, int] | None:
    parts = key.split("|")
    if key == "all" or len(parts) < 2:
        return None
    try:
        fewshot = int(parts[-1])
    except ValueError:
        return None
    return parts[-2], fewshot


def _items(summary: dict) -> int | None:
    counts = [summary.get(k) for k in ("truncated", "non_truncated")]
    if all(isinstance(c, int) for c in counts) and sum(counts):
        return sum(counts)
    return None


def convert(path: Path, prefer: list[str], suite: str) -> tuple[str, dict]:
    """(suite name, results in the eval runner's format) of one lighteval results file."""
    data = read_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise InputError(f"{path}: no 'results' object (expected a lighteval results JSON)")
    tasks = {}
    for key, metrics in results.items():
        parts = _task_parts(key)
        if parts is None or not isinstance(metrics, dict):
            continue
        name, fewshot = parts
        scores = {
            m: {"value": float(v), "stderr": float(metrics.get(f"{m}_stderr") or 0.0)}
            for m, v in metrics.items()
            if not m.endswith("_stderr") and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if not scores:
            raise InputError(f"{path}: results[{key!r}] has no numeric metric")
        main = next((m for m in prefer if m in scores), next(iter(scores)))
        summary = (data.get("summary_tasks") or {}).get(key) or {}
        tasks[name] = {
            "fewshot": fewshot,
            "n": _items(summary),
            "main": main,
            "score": scores[main]["value"],
            "stderr": scores[main]["stderr"],
            "scores": scores,
            "lighteval_task": key,
        }
    if not tasks:
        raise InputError(f"{path}: no '<suite>|<task>|<fewshot>' entries under 'results'")
    kind = "fewshot" if any(t["fewshot"] > 0 for t in tasks.values()) else "zeroshot"
    model = ((data.get("config_general") or {}).get("model_name")) if isinstance(data, dict) else None
    out = {
        "suite": f"{suite}_{kind}",
        "complete": True,
        "imported_from": str(path),
        "model": model,
        "settings": {"generation": {"n": 1}},
        "tasks": tasks,
    }
    return out["suite"], out
