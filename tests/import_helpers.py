"""Writers of external run logs in each format the importer reads (the tests make their own files)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def wandb_curve(run: int, step: int) -> float:
    """Validation accuracy of three runs: a rising one, a flat one and one that peaks and collapses."""
    x = step / 500
    return [0.20 + 0.25 * x, 0.21 + 0.005 * math.sin(step), 0.20 + 0.5 * math.sin(math.pi * x) ** 4][run]


def write_wandb_csv(
    path: Path, runs: list[str], metric: str, steps_of, value_of, *, companions=False
) -> Path:
    """A W&B chart export: Step, then '<run> - <metric>' (and __MIN/__MAX) columns, empty where not logged."""
    all_steps = sorted({s for i in range(len(runs)) for s in steps_of(i)})
    header = ["Step"]
    for run in runs:
        header.append(f"{run} - {metric}")
        if companions:
            header += [f"{run} - {metric}__MIN", f"{run} - {metric}__MAX"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(header)
        for step in all_steps:
            row = [step]
            for i in range(len(runs)):
                value = value_of(i, step) if step in steps_of(i) else ""
                row.append(value)
                if companions:
                    row += [value if value == "" else value - 0.01, value if value == "" else value + 0.01]
            writer.writerow(row)
    return path


def write_trainer_state(path: Path, steps: int = 60, *, eval_every: int = 20) -> Path:
    """A TRL GRPOTrainer trainer_state.json: log_history with TRL's metric names, eval_ entries, a summary."""
    history = []
    for step in range(1, steps + 1):
        acc = 0.1 + 0.4 * step / steps
        history.append(
            {
                "step": step,
                "epoch": step / steps,
                "loss": 0.01,
                "grad_norm": 0.5,
                "learning_rate": 1e-6,
                "reward": acc,
                "reward_std": 0.4,
                "rewards/accuracy_reward/mean": acc,
                "rewards/accuracy_reward/std": 0.4,
                "frac_reward_zero_std": 0.3,
                "completions/mean_length": 200.0 + step,
                "completions/clipped_ratio": 0.05,
                "entropy": 0.9,
                "kl": 0.001 * step,
                "num_tokens": 1000.0 * step,
            }
        )
        if step % eval_every == 0:
            history.append({"step": step, "eval_rewards/accuracy_reward/mean": acc, "eval_runtime": 3.0})
    history.append({"step": steps, "train_runtime": 100.0, "train_loss": 0.01, "total_flos": 0.0})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"global_step": steps, "log_history": history, "max_steps": steps}, indent=2))
    return path


def verl_metrics(step: int, total: int = 30) -> dict:
    acc = 0.2 + 0.3 * step / total
    data = {
        "critic/score/mean": acc,
        "critic/rewards/mean": acc - 0.01,
        "response_length/mean": 300.0 + 5 * step,
        "response_length/clip_ratio": 0.02,
        "actor/entropy": 1.1,
        "actor/pg_loss": 0.0,
        "timing_s/step": 12.5,
    }
    if step % 10 == 0:
        data["val-core/math500/acc/mean@1"] = acc
        data["val/test_score/gsm8k"] = acc + 0.1
    return data


def write_verl_jsonl(path: Path, steps) -> Path:
    """veRL's file logger: {"step": N, "data": {...}} lines."""
    with path.open("w", encoding="utf-8") as fh:
        for step in steps:
            fh.write(json.dumps({"step": step, "data": verl_metrics(step)}) + "\n")
    return path


def write_verl_console(path: Path, steps) -> Path:
    """veRL's console lines (concat_dict_to_str), with a Ray prefix and noise lines between."""
    with path.open("w", encoding="utf-8") as fh:
        for step in steps:
            fh.write("Training Progress:  10%|#         | 1/10 [00:01<00:09]\n")
            parts = [f"step:{step}"] + [
                f"{k}:np.float64({v})" if i % 2 else f"{k}:{v}"
                for i, (k, v) in enumerate(verl_metrics(step).items())
            ]
            fh.write("(TaskRunner pid=4242) " + " - ".join(parts) + "\n")
    return path


def write_lighteval(path: Path, tasks: dict[str, float], fewshot: int, *, suite_prefix: bool = True) -> Path:
    """A lighteval results JSON (results_<date>.json) with per-task metrics and the summary counts; task keys
    are '<suite>|<task>|<fewshot>' (older lighteval) or '<task>|<fewshot>' (lighteval 0.13)."""
    prefix = "lighteval|" if suite_prefix else ""
    results = {
        f"{prefix}{t}|{fewshot}": {"extractive_match": s, "extractive_match_stderr": 0.02}
        for t, s in tasks.items()
    }
    results["all"] = {"extractive_match": sum(tasks.values()) / len(tasks)}
    summary = {f"{prefix}{t}|{fewshot}": {"truncated": 0, "non_truncated": 200} for t in tasks}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"config_general": {"model_name": "m"}, "results": results, "summary_tasks": summary})
    )
    return path
