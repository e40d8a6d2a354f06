"""The readiness probe: its signals against hand computations on recorded completions, its budget, and one
real probe of the tiny model with the demo's RL recipe."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from octo.config import ConfigError
from octo.manifest import read_manifest
from rl.probe_config import load_probe, plan_budget, rl_generation_budget
from rl.probe_signals import Completion, answer_entropy, group_signals, predict, readiness_score

ROOT = Path(__file__).resolve().parent.parent


def _c(tokens=10, correct=False, answer=None, clipped=False, boxed_first=False, repetitive=False):
    return Completion(tokens=tokens, clipped=clipped, reward=1.0 if correct else -1.0, correct=correct,
                      answer=answer, boxed=answer is not None, boxed_first=boxed_first, repetitive=repetitive)  # fmt: skip


def _recorded() -> list[list[Completion]]:
    """Three prompts x 4 samples: one mixed (2 right), one all wrong, one all right."""
    mixed = [_c(8, True, "5"), _c(12, False, "6"), _c(16, True, "5", boxed_first=True), _c(48, clipped=True)]
    wrong = [_c(20, False, "1", repetitive=True), _c(20), _c(20), _c(20, False, "2")]
    right = [_c(4, True, "9") for _ in range(4)]
    return [mixed, wrong, right]


def test_signals_match_a_hand_computation():
    s = group_signals(_recorded())
    assert s["prompts"] == 3 and s["samples_per_prompt"] == 4
    assert s["learnable_fraction"] == pytest.approx(1 / 3)  # only the mixed group's rewards vary
    assert s["pass_at_1"] == pytest.approx((2 / 4 + 0 + 1) / 3)
    # pass@2 of the mixed group: 1 - C(2,2)/C(4,2) = 5/6
    assert s["pass_at_k"]["pass@2"] == pytest.approx((5 / 6 + 0 + 1) / 3)
    assert s["pass_at_G"] == s["pass_at_k"]["pass@4"] == pytest.approx(2 / 3)
    assert s["final_boxed_rate"] == pytest.approx(3 / 12 + 2 / 12 + 4 / 12)
    assert s["boxed_first_rate"] == pytest.approx(1 / 12)
    assert s["repetition_rate"] == pytest.approx(1 / 12)
    assert s["clip_rate"] == pytest.approx(1 / 12)
    assert s["mean_length"] == pytest.approx((8 + 12 + 16 + 48 + 80 + 16) / 12)
    assert s["mean_correct_length"] == pytest.approx((8 + 16 + 16) / 6)
    assert s["generated_tokens"] == 8 + 12 + 16 + 48 + 80 + 16
    # answers: mixed {5:2, 6:1, none:1} -> 1.5 bits; wrong {1, none x2, 2} -> 1.5 bits; right {9 x4} -> 0
    assert answer_entropy(_recorded()[0]) == pytest.approx(1.5)
    assert s["answer_entropy"] == pytest.approx((1.5 + 1.5 + 0) / 3)


def test_prediction_score_verdict_and_reasons():
    s = group_signals(_recorded())
    expected = 0.4 * (2 / 3) + 0.3 * (1 / 3) + 0.2 * s["pass_at_1"] + 0.1 * s["final_boxed_rate"]
    assert readiness_score(s) == pytest.approx(expected * (1 - 0.5 / 12), abs=1e-6)
    pred = predict(s)
    assert pred["verdict"] == "ready" and any("33% of GRPO groups of 4" in r for r in pred["reasons"])
    flat = group_signals([[_c() for _ in range(4)] for _ in range(3)])
    assert flat["learnable_fraction"] == 0 and predict(flat)["verdict"] == "not ready: no learning signal"
    assert readiness_score(flat) == 0.0


def test_learnable_fraction_with_more_samples_than_the_group():
    from rl.probe_signals import varying_group_chance

    # 4 samples, 2 right: of the C(4,2)=6 pairs, 2 are all-equal (both right, both wrong) -> 4/6 vary
    assert varying_group_chance([1, 1, -1, -1], 2) == pytest.approx(4 / 6)
    assert varying_group_chance([1, -1, -1, -1], 4) == 1.0 and varying_group_chance([1, 1, 1], 2) == 0.0
    s = group_signals(_recorded(), group_size=2)
    assert (
        s["learnable_fraction"] == pytest.approx((4 / 6) / 3) and s["pass_at_G"] == s["pass_at_k"]["pass@4"]
    )


def test_unequal_groups_are_refused():
    with pytest.raises(ValueError, match="same number"):
        group_signals([[_c()], [_c(), _c()]])


def test_budget_is_five_percent_of_the_rl_generation_at_most():
    import rl

    cfg = rl.load(ROOT / "configs/rl/demo.yaml")
    assert rl_generation_budget(cfg) == 120 * 4 * 8 * 48
    plan = plan_budget(load_probe(), cfg)
    assert plan["allowed_tokens"] == int(0.05 * 120 * 4 * 8 * 48)
    assert plan["prompts"] == 24 and plan["worst_case_tokens"] <= plan["allowed_tokens"]
    assert plan["samples_per_prompt"] == plan["group_size"] == 8
    # a long RL run affords max_prompts prompts with budget to spare: more samples, pass@k beyond G (<= 4 G)
    long_run = plan_budget(load_probe(["max_prompts=8"]), cfg)
    assert (
        long_run["samples_per_prompt"] == 24 and long_run["worst_case_tokens"] <= long_run["allowed_tokens"]
    )
    with pytest.raises(ConfigError, match="budget_share"):
        load_probe(["budget_share=0.2"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_probe(["budget_shares=0.01"])


def test_probe_runs_on_the_tiny_model(tiny_model, tmp_path):
    import rl
    from rl.probe import run_probe

    cfg = rl.load(ROOT / "configs/rl/demo.yaml", ["trainer.max_completion_length=16", "trainer.steps=40"])
    probe = load_probe([f"output_dir={tmp_path / 'probe'}", "references.count=8"])
    path = run_probe(probe, cfg, str(tiny_model))
    result = json.loads(path.read_text())
    budget, signals = result["budget"], result["signals"]
    assert budget["prompts"] == int(0.05 * 40 * 32 * 16) // (8 * 16) == 8
    assert 0 < budget["spent_tokens"] <= budget["allowed_tokens"]
    assert budget["spent_share_of_rl"] <= 0.05
    rows = [json.loads(line) for line in (path.parent / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 8 and sum(r["tokens"] for r in rows) == budget["spent_tokens"]
    assert signals["clip_rate"] == pytest.approx(sum(r["clipped"] for r in rows) / len(rows))
    assert signals["reference_loss"] > math.log(2) and signals["references"] == 8  # random init: high loss
    assert result["prediction"]["verdict"] and read_manifest(path.parent)["status"] == "complete"
    stamp = path.stat().st_mtime_ns
    assert (
        run_probe(probe, cfg, str(tiny_model)) == path and path.stat().st_mtime_ns == stamp
    )  # complete: skip


def test_octo_probe_command(tiny_model, tmp_path, capsys):
    from octo.cli import main

    out = tmp_path / "cli"
    argv = ["probe", str(tiny_model), "--rl", str(ROOT / "configs/rl/demo.yaml"), "--out", str(out),
            "rl.trainer.steps=40", "rl.trainer.max_completion_length=8", "references.count=4", "samples=4"]  # fmt: skip
    assert main(argv) == 0
    assert "of RL's generation" in capsys.readouterr().out
    result = json.loads((out / "probe.json").read_text())
    assert result["signals"]["samples_per_prompt"] == 4 and len(result["signals"]["pass_at_k"]) == 4
    assert main(argv[:4] + ["budget_share=0.5"]) == 2  # over 5%: a one-line config error
