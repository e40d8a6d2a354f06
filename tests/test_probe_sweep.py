"""The probe sweep: the full config validates and plans a probe before every RL run (dry run); the reduced one
runs end to end and `octo probe validate` computes its correlations."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study.config import load
from study.runner import plan

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "configs/studies/probe_sweep.yaml"
REDUCED = ROOT / "configs/studies/probe_sweep_reduced.yaml"


def test_the_sweep_dry_run_plans_a_probe_before_every_rl_run(tmp_path):
    out = subprocess.run([sys.executable, "-m", "octo", "study", "run", str(SWEEP), "--dry-run",
                          f"out_dir={tmp_path / 's0'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    study = load(SWEEP, [f"out_dir={tmp_path / 's0'}"])
    names = [s.name for s in plan(study)]
    arms = study.rl_arms()
    assert len(arms) >= 10 and {"base", "control", "web100", "web0_qa100", "long_cot"} <= set(arms)
    mixes = {name: arm.mixture for name, arm in study.arms.items()}
    assert (
        mixes["web89_qa10_instr1"]
        == mixes["web89_qa10_instr1_1M"]
        == {"mathweb": 89, "qa": 10, "instruct": 1}
    )
    assert study.arms["web89_qa10_instr1"].tokens != study.arms["web89_qa10_instr1_1M"].tokens
    for arm in arms:
        assert names.index(f"probe {arm}") < names.index(f"rl {arm}"), arm
        assert f"probe {arm}" in out.stdout
    assert "(5% of RL's)" in out.stdout


@pytest.mark.slow
def test_the_reduced_sweep_runs_and_validates(tmp_path):
    started = time.time()
    out_dir = tmp_path / "reduced" / "s0"
    run = subprocess.run([sys.executable, "-m", "octo", "study", "run", str(REDUCED), f"out_dir={out_dir}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    probes = {
        arm: json.loads((out_dir / "probe" / arm / "probe.json").read_text())
        for arm in ("base", "control", "web0_qa100")
    }
    for probe in probes.values():
        assert probe["budget"]["spent_tokens"] <= probe["budget"]["allowed_tokens"]
        assert probe["budget"]["spent_share_of_rl"] <= 0.05
    readiness = (out_dir / "readiness.md").read_text()
    assert (
        "predicted before RL (probe score)" in readiness and (out_dir / "plots" / "probe_vs_rl.png").is_file()
    )
    check = subprocess.run([sys.executable, "-m", "octo", "probe", "validate", str(tmp_path / "reduced")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    report = json.loads((tmp_path / "reduced" / "probe_validation.json").read_text())
    assert report["arms"] == ["base", "control", "web0_qa100"] and report["seed_dirs"] == ["s0"]
    assert 0 < report["compute"]["share_of_rl_budget"] <= 0.05
    predictors = [r["predictor"] for r in report["tables"]["rl_acc_final"]["rows"]]
    assert len(predictors) == 5 and "few-shot accuracy before RL" in predictors
    print(f"reduced sweep + validate: {time.time() - started:.0f} s")
