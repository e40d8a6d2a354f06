"""GRPO data-parallel for real: TRL's GRPOTrainer as 2 CPU processes under torchrun (gloo) against 1 process.

Same seed, prompts and global batch (4 prompts x 4 rollouts per step, one optimizer update): with 2
processes each generates, scores and trains on 8 of the 16 completions; the rewards are gathered for the
group advantages and the gradients all-reduced. Completions are sampled per row with a seed from (step,
row) (tests/ddp_rl_entry.py), so both runs see the same rollouts and their losses must agree to float
rounding: 1e-4 absolute on the per-step loss, 1e-3 relative on the weights' change.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from ddp_helpers import ROOT, alive, crash_launcher_when, env, run
from test_rl_run import _config, problem_files, qa_model  # noqa: F401  (fixtures)
from transformers import AutoModelForCausalLM

from octo.config import dump_config
from octo.jsonl import read_jsonl
from octo.manifest import read_manifest

ENTRY = str(ROOT / "tests" / "ddp_rl_entry.py")
LOSS_ATOL = 1e-4


def _torchrun(procs: int, recipe: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            ENTRY, str(recipe)]  # fmt: skip


def _recipe(qa_model, problem_files, tmp_path: Path, name: str, steps: int = 4) -> Path:  # noqa: F811
    cfg = _config(
        qa_model, tmp_path / name, problem_files, steps=steps, prompts_per_step=4, num_generations=4
    )
    cfg.validation.every, cfg.validation.at_start, cfg.checkpoint.every = 0, False, 2
    return dump_config(cfg, tmp_path / f"{name}.yaml")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()


@pytest.mark.slow
def test_two_processes_match_one(qa_model, problem_files, tmp_path):  # noqa: F811
    for name, procs in (("one", 1), ("two", 2)):
        result = run(_torchrun(procs, _recipe(qa_model, problem_files, tmp_path, name)))
        assert f"[ddp] world_size {procs}" in result.stdout
    one, two = tmp_path / "one", tmp_path / "two"

    # the main process wrote every sample, in the same order as one process, and each metrics row once
    s1, s2 = list(read_jsonl(one / "samples.jsonl")), list(read_jsonl(two / "samples.jsonl"))
    assert len(s2) == 4 * 16
    assert [(s["step"], s["prompt_id"], s["text"]) for s in s1] == [
        (s["step"], s["prompt_id"], s["text"]) for s in s2
    ]
    m1, m2 = list(read_jsonl(one / "metrics.jsonl")), list(read_jsonl(two / "metrics.jsonl"))
    assert [r["step"] for r in m2] == [1, 2, 3, 4] == [r["step"] for r in m1]
    print("loss 1 process:", [r["loss"] for r in m1], "2 processes:", [r["loss"] for r in m2])
    for r1, r2 in zip(m1, m2):
        assert r2["completions"] == 16 and r2["reward_mean"] == r1["reward_mean"]
        assert r2["loss"] == pytest.approx(r1["loss"], abs=LOSS_ATOL), r2["step"]
        assert r2["entropy"] == pytest.approx(r1["entropy"], rel=1e-3), r2["step"]

    base, w1, w2 = _weights(qa_model), _weights(one / "final"), _weights(two / "final")
    moved = max((w1[k] - base[k]).abs().max().item() for k in base)
    apart = max((w1[k] - w2[k]).abs().max().item() for k in base)
    print(f"weights moved {moved:.3g}, 1 vs 2 processes apart {apart:.3g}")
    assert moved > 0 and apart < 1e-3 * moved, (moved, apart)
    for ckpt in sorted((two / "checkpoints").glob("checkpoint-*")):  # TRL's checkpoints load as models
        AutoModelForCausalLM.from_pretrained(str(ckpt))
    assert sorted(p.name for p in (two / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    manifest = read_manifest(two)
    assert manifest["status"] == "complete" and manifest["counts"]["completions"] == 4 * 16


@pytest.mark.slow
def test_two_processes_killed_with_sigkill_resume(qa_model, problem_files, tmp_path):  # noqa: F811
    """SIGKILL the launcher after the first checkpoint; the relaunch resumes there and ends where an
    uninterrupted 2-process run ends; no worker outlives the test."""
    run(_torchrun(2, _recipe(qa_model, problem_files, tmp_path, "ref", steps=6)))
    recipe = _recipe(qa_model, problem_files, tmp_path, "cut", steps=6)
    out = tmp_path / "cut"
    proc = subprocess.Popen(_torchrun(2, recipe), cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    target = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    workers = crash_launcher_when(proc, target.exists, timeout=240, poll=0.05)
    assert workers and not alive(workers)
    assert target.exists() and not (out / "final").exists(), (
        "the run was not cut between checkpoint 2 and the end"
    )

    run(_torchrun(2, recipe))
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, 7))
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert [sum(s["step"] == k for s in samples) for k in range(1, 7)] == [16] * 6
    ref, cut = _weights(tmp_path / "ref" / "final"), _weights(out / "final")
    apart = max((ref[k] - cut[k]).abs().max().item() for k in ref)
    print(f"resumed vs uninterrupted: {apart:.3g}")
    assert apart < 1e-6, apart
    assert read_manifest(out)["status"] == "complete"
