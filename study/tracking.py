"""The study's ``tracking:`` section: handed down to every mid-training and RL run, plus one run of its own.

A stage config without tracking of its own inherits the study's, with the study's name as the project and
``<arm>/midtrain`` or ``<arm>/rl`` as the run name, so one tracker project holds the whole study. The study's own
run (``study``) logs the evaluation summaries (``eval/<model>/<suite>/<task>/<metric>``, at the study step that
produced them), the readiness rows (``readiness/<arm>/<column>``) and the progress (``study/steps_done``,
``study/elapsed_min``, ``study/left_min``).
"""

from __future__ import annotations

import json
from pathlib import Path

from octo.tracking import Tracker, TrackingConfig, start


def for_stage(study, own: TrackingConfig, run_name: str) -> TrackingConfig:
    """A stage's tracking: its own when it has some, else the study's under the study's project."""
    if own.enabled or not study.tracking.enabled:
        return own
    return study.tracking.model_copy(
        update={"project": study.tracking.project or study.name, "run_name": run_name}
    )


def open_study_run(study) -> Tracker:
    cfg = for_stage(study, TrackingConfig(), "study")
    return start(cfg, run_name="study", config=study, output_dir=study.root / "study")


def eval_scores(model: str, suite: str, results: dict) -> dict[str, float]:
    """An eval stage's results.json as tracker metrics."""
    out = {}
    for task, entry in (results or {}).get("tasks", {}).items():
        if isinstance(entry.get("score"), int | float):
            out[f"eval/{model}/{suite}/{task}/{entry.get('main', 'score')}"] = entry["score"]
    return out


def readiness_scores(study_root: Path) -> dict[str, float]:
    path = Path(study_root) / "readiness.json"
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text()).get("rows", [])
    return {
        f"readiness/{row['arm']}/{key}": value for row in rows for key, value in row.items() if key != "arm"
    }


def study_row(step, result, progress) -> dict[str, float]:
    """What the study run logs when ``step`` finishes: progress, and the scores of an eval or readiness step."""
    row = {
        "study/steps_done": progress.done,
        "study/elapsed_min": round(progress.elapsed() / 60, 3),
        "study/left_min": round(progress.left() / 60, 3),
    }
    if step.stage == "eval" and isinstance(result, dict):
        row.update(eval_scores(step.out.parent.name, step.out.name, result))
    if step.stage == "readiness":
        row.update(readiness_scores(step.out))
    return row
