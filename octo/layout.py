"""The study folder layout and the RL metrics schema: the names every stage, the readiness table and the
importer of external runs agree on (one owner, so they cannot drift).

    <study>/midtrain/<arm>/metrics.jsonl         mid-training rows (step, tokens, loss, lr, tokens_per_s)
    <study>/rl/<arm>/metrics.jsonl               one row per RL step (``RL_METRIC_FIELDS`` + ``val/...`` keys)
    <study>/eval/<arm>/<suite>/results.json      the checkpoint before RL
    <study>/eval/<arm>-rl/<suite>/results.json   the checkpoint after RL
    <study>/probe/<arm>/probe.json               the readiness probe of the checkpoint before RL
"""

from __future__ import annotations

import re
from pathlib import Path

RL_SUFFIX = "-rl"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
PROBE_FILE = "probe.json"  # the readiness probe's measurements and prediction (rl.probe)

# The per-step fields of rl/<arm>/metrics.jsonl (every native row carries each, null when not measured).
RL_METRIC_FIELDS = (
    "step", "reward_mean", "reward_std", "accuracy", "frac_zero_std_groups", "response_len_mean",
    "correct_len_mean", "clip_ratio", "repetition_ratio", "multi_boxed_ratio", "boxed_first_ratio",
    "no_answer_ratio", "entropy", "lr", "step_time",
)  # fmt: skip
# Also written by the RL stage: accuracy_strict, accuracy_lenient, stop_ratio, max_completion_length, loss,
# grad_norm, ppo_clip_ratio, kl, completions, wall_time, and the validation keys below.
RL_EXTRA_FIELDS = (
    "accuracy_strict", "accuracy_lenient", "stop_ratio", "max_completion_length", "loss", "grad_norm",
    "ppo_clip_ratio", "kl", "completions", "wall_time",
)  # fmt: skip
# Validation keys: val/<benchmark>/<field>; ``n`` is the number of items one validation point scored.
VAL_FIELDS = ("acc", "correct_len", "response_len", "n")
_VAL_KEY = re.compile(r"^val/(?P<bench>.+)/(?P<field>acc|correct_len|response_len|n)$")


def val_key(bench: str, field: str = "acc") -> str:
    """``val/<bench>/<field>``: the metrics key of a validation measurement."""
    if field not in VAL_FIELDS:
        raise ValueError(f"unknown validation field {field!r} (expected one of {', '.join(VAL_FIELDS)})")
    return f"val/{bench}/{field}"


def parse_val_key(key: str) -> tuple[str, str] | None:
    """(benchmark, field) of a ``val/<bench>/<field>`` key, or None for any other key."""
    match = _VAL_KEY.match(key)
    return (match["bench"], match["field"]) if match else None


def project_fields() -> set[str]:
    """The non-validation fields of the RL metrics schema (what an importer may map an external metric to)."""
    return set(RL_METRIC_FIELDS) | set(RL_EXTRA_FIELDS)


class StudyLayout:
    """Where each stage of a study writes, relative to the study root."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def corpus_dir(self, name: str) -> Path:
        return self.root / "corpus" / name

    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    def midtrain_dir(self, arm: str) -> Path:
        return self.root / "midtrain" / arm

    def rl_dir(self, arm: str) -> Path:
        return self.root / "rl" / arm

    def eval_dir(self, model: str, suite: str) -> Path:
        return self.root / "eval" / model / suite

    def eval_model(self, arm: str, after_rl: bool) -> str:
        """The eval/ folder name of an arm's checkpoint before (``<arm>``) or after (``<arm>-rl``) RL."""
        return arm + RL_SUFFIX if after_rl else arm

    def rl_metrics(self, arm: str) -> Path:
        return self.rl_dir(arm) / METRICS_FILE

    def midtrain_metrics(self, arm: str) -> Path:
        return self.midtrain_dir(arm) / METRICS_FILE

    def study_manifest(self) -> Path:
        return self.root / "study" / "manifest.json"

    def probe_dir(self, arm: str) -> Path:
        """The readiness probe of an arm's checkpoint before RL: ``probe/<arm>/probe.json``."""
        return self.root / "probe" / arm

    def probe_file(self, arm: str) -> Path:
        return self.probe_dir(arm) / PROBE_FILE
