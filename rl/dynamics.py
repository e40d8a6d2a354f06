"""RL dynamics: one ``samples.jsonl`` row per completion and one ``metrics.jsonl`` row per RL step.

The per-step fields are ``octo.layout.RL_METRIC_FIELDS`` (documented in docs/rl.md). Lengths are in tokens. Every row carries every
field; a value that was not measured at that step is null (e.g. the training fields of the step-0
validation row, or ``correct_len_mean`` when nothing was correct).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from octo.layout import RL_METRIC_FIELDS

METRIC_FIELDS = RL_METRIC_FIELDS  # owned by octo.layout (the readiness table and the importer read them)
SAMPLE_FIELDS = (
    "step", "prompt_id", "group", "text", "length", "reward", "correct", "correct_strict", "correct_lenient",
    "answer", "n_boxed", "boxed_first", "repetitive", "no_answer", "finish",
)  # fmt: skip


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _std(values: Sequence[float]) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def summarise_rollout(samples: list[dict], num_generations: int) -> dict:
    """The rollout half of a metrics row, from one rollout batch of sample rows (groups are consecutive)."""
    n = len(samples)
    rewards = [s["reward"] for s in samples]
    groups = [rewards[i : i + num_generations] for i in range(0, n, num_generations)]
    correct_lengths = [s["length"] for s in samples if s["correct"]]

    def ratio(key, test=bool):
        return sum(1 for s in samples if test(s[key])) / n if n else None

    return {
        "reward_mean": _mean(rewards),
        "reward_std": _std(rewards),
        "accuracy": ratio("correct"),
        "frac_zero_std_groups": sum(1 for g in groups if max(g) - min(g) < 1e-9) / len(groups)
        if groups
        else None,
        "response_len_mean": _mean([s["length"] for s in samples]),
        "correct_len_mean": _mean(correct_lengths),
        "clip_ratio": ratio("finish", lambda f: f == "length"),
        "repetition_ratio": ratio("repetitive"),
        "multi_boxed_ratio": ratio("n_boxed", lambda k: k >= 2),
        "boxed_first_ratio": ratio("boxed_first"),
        "no_answer_ratio": ratio("no_answer"),
        "accuracy_strict": ratio("correct_strict"),
        "accuracy_lenient": ratio("correct_lenient"),
        "stop_ratio": ratio("finish", lambda f: f == "stop"),
        "completions": n,
    }


def summarise_updates(logs: list[dict]) -> dict:
    """The training half of a metrics row, from TRL's logs of the optimizer updates of one RL step."""

    def mean_of(key):
        values = [x[key] for x in logs if x.get(key) is not None]
        return _mean(values)

    step_times = [x["step_time"] for x in logs if x.get("step_time") is not None]
    return {
        "entropy": mean_of("entropy"),
        "lr": logs[-1].get("learning_rate") if logs else None,
        "step_time": float(sum(step_times)) if step_times else None,
        "loss": mean_of("loss"),
        "grad_norm": mean_of("grad_norm"),
        "ppo_clip_ratio": mean_of("clip_ratio/region_mean"),
        "kl": mean_of("kl"),
    }


def metrics_row(
    step: int, rollout: dict | None = None, updates: dict | None = None, extra: dict | None = None
) -> dict:
    """One metrics.jsonl row: every schema field present (null when not measured), extras after them."""
    row = dict.fromkeys(METRIC_FIELDS)
    row["step"] = step
    for part in (rollout, updates, extra):
        row.update(part or {})
    return row
