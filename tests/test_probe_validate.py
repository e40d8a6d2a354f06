"""`octo probe validate` on synthetic study folders written in the real formats (probe.json, RL metrics,
evaluation results): known rankings give known correlations."""

from __future__ import annotations

import json

import pytest

from eval.probe_validate import bootstrap_intervals, leave_one_arm_out, rank_correlations, validate
from octo.cli import main as octo_main
from octo.jsonl import write_jsonl
from octo.layout import StudyLayout

ARMS = ["base", "control", "mathweb", "mathqa", "mathqa_instr"]


def _results(score: float, n: int, fewshot: int = 0) -> dict:
    key = "acc" if n == 1 else "pass@1"
    entry = {"score": score, "stderr": 0.02, "fewshot": fewshot, "n": 100, "scores": {key: {"value": score}}}
    return {"suite": "x", "complete": True, "settings": {"generation": {"n": n}}, "tasks": {"arith": entry}}


def write_arm(root, arm: str, *, score: float, final_acc: float, gain: float, fewshot: float = 0.1):
    layout = StudyLayout(root)
    signals = {"pass_at_1": score / 2, "pass_at_G": score, "learnable_fraction": score, "final_boxed_rate": 0.5,
               "reference_loss": 3.0 - score}  # fmt: skip
    probe = {"model": arm, "signals": signals, "prediction": {"score": score, "verdict": "ready", "reasons": []},
             "budget": {"spent_tokens": 400, "rl_generation_tokens": 10_000}}  # fmt: skip
    layout.probe_dir(arm).mkdir(parents=True)
    layout.probe_file(arm).write_text(json.dumps(probe))
    rows = [
        {"step": s, "accuracy": final_acc, "completions": 32, "response_len_mean": 10.0} for s in range(50)
    ]
    write_jsonl(layout.rl_metrics(arm), rows)
    for model, sampled in ((arm, 0.2), (arm + "-rl", 0.2 + gain)):
        for suite, results in (("demo_sampled", _results(sampled, 8)), ("demo_zeroshot", _results(0.3, 1))):
            layout.eval_dir(model, suite).mkdir(parents=True)
            (layout.eval_dir(model, suite) / "results.json").write_text(json.dumps(results))
    layout.eval_dir(arm, "demo_fewshot").mkdir(parents=True)
    (layout.eval_dir(arm, "demo_fewshot") / "results.json").write_text(json.dumps(_results(fewshot, 1, 3)))


def make_sweep(root, seeds=3, reverse=False):
    for seed in range(seeds):
        for i, arm in enumerate(ARMS):
            outcome = 0.1 * (len(ARMS) - i if reverse else i + 1) + 0.01 * seed
            write_arm(root / f"s{seed}", arm, score=0.1 * (i + 1), final_acc=outcome, gain=outcome / 2,
                      fewshot=0.1 + 0.05 * ((i * 3) % 5))  # fmt: skip
    return root


def _row(report, outcome, predictor):
    return next(r for r in report["tables"][outcome]["rows"] if r["predictor"].startswith(predictor))


def test_perfectly_ranked_arms_give_one(tmp_path):
    report = validate(make_sweep(tmp_path / "sweep"))
    assert report["seed_dirs"] == ["s0", "s1", "s2"] and len(report["arms"]) == 5
    for outcome in ("rl_acc_final", "heldout_gain"):
        row = _row(report, outcome, "probe score")
        assert row["spearman"] == pytest.approx(1.0) and row["kendall"] == pytest.approx(1.0)
        assert row["per_seed"]["seeds"] == 3 and row["per_seed"]["spearman_min"] == pytest.approx(1.0)
        assert row["ci95"]["spearman"][1] == pytest.approx(1.0)
    # few-shot accuracy 0.1, 0.25, 0.4, 0.15, 0.3 for outcomes ranked 1..5: Spearman 0.5 (hand computation)
    assert _row(report, "rl_acc_final", "few-shot")["spearman"] == pytest.approx(0.5)
    assert _row(report, "rl_acc_final", "0-shot")["spearman"] is None  # constant: undefined, not 0
    assert report["compute"]["share_of_rl_budget"] == pytest.approx(0.04)
    assert report["compute"]["share_of_rl_generated"] == pytest.approx(400 / (50 * 32 * 10))
    assert "leave-one-arm-out" in report["note"]


def test_reversed_ranking_gives_minus_one_and_the_cli_writes_the_report(tmp_path, capsys):
    root = make_sweep(tmp_path / "sweep", seeds=1, reverse=True)
    assert octo_main(["probe", "validate", str(root)]) == 0
    report = json.loads((root / "probe_validation.json").read_text())
    row = _row(report, "rl_acc_final", "probe score")
    assert row["spearman"] == pytest.approx(-1.0) and row["kendall"] == pytest.approx(-1.0)
    assert "| probe score (fixed weights) | 5 | -1.00 |" in capsys.readouterr().out
    assert (root / "probe_validation.md").is_file()


def test_a_single_study_folder_and_missing_probes(tmp_path):
    root = tmp_path / "one"
    for i, arm in enumerate(ARMS):
        write_arm(root, arm, score=0.1 * i, final_acc=0.1 * i, gain=0.0)
    assert _row(validate(root), "rl_acc_final", "probe score")["spearman"] == pytest.approx(1.0)
    assert octo_main(["probe", "validate", str(tmp_path / "nothing")]) == 2


def test_statistics_helpers():
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == {"spearman": 1.0, "kendall": 1.0}
    assert rank_correlations([1, 2], [1, 2])["spearman"] is None
    ci = bootstrap_intervals([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert ci["spearman"] == [1.0, 1.0]
    # the fitted prediction of an arm comes from the other arms only: a linear outcome is recovered exactly
    records = [{"arm": f"a{i}", "pass_at_1": i / 10, "pass_at_G": (i % 3) / 3, "learnable_fraction": (i * 7 % 5) / 5,
                "final_boxed_rate": (i % 2) / 2, "reference_loss": 3 - (i * i % 7) / 7,
                "rl_acc_final": 0.2 + 0.5 * i / 10} for i in range(10)]  # fmt: skip
    got = leave_one_arm_out(records, "rl_acc_final")
    assert all(got[r["arm"]] == pytest.approx(r["rl_acc_final"], abs=0.01) for r in records)


def test_rank_correlations_agree_with_scipy():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 4, 9).astype(float), rng.normal(size=9)  # ties in x
        got = rank_correlations(x, y)
        assert got["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
        assert got["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)


def test_readiness_table_shows_the_prediction_and_the_scatter(tmp_path):
    from eval import build_readiness

    root = make_sweep(tmp_path / "sweep", seeds=2)
    md = build_readiness(root / "s0").read_text()
    assert "predicted before RL (probe score)" in md and "ready (0.50)" in md
    assert (root / "s0" / "plots" / "probe_vs_rl.png").is_file()
    rows = json.loads((root / "s0" / "readiness.json").read_text())["rows"]
    assert {r["arm"]: r["probe_score"] for r in rows} == pytest.approx(
        {arm: 0.1 * (i + 1) for i, arm in enumerate(ARMS)}
    )
    assert octo_main(["probe", "validate", str(root)]) == 0
    assert (root / "probe_vs_rl.png").stat().st_size > 1000  # one point per arm and seed
