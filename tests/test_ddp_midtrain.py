"""Mid-training data-parallel for real: 2 CPU processes under torchrun (gloo) against 1 process.

Same seed, same data, same global batch (4 sequences per step): with 2 processes each takes 2 of them, as
2 micro-batches of 1 in the 1-process run are 4 micro-batches of 1. The loss is the same mean over the same
sequences, so the curves agree to float rounding (summation order differs): we allow 1e-4 relative.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from ddp_helpers import ROOT, alive, crash_launcher_when, env, run, torchrun
from midtrain_helpers import build_corpora, tiny_config, write_config
from transformers import AutoModelForCausalLM

import midtrain
from midtrain.checkpoint import list_checkpoints, read_state
from octo.manifest import config_hash, read_manifest

LOSS_RTOL = 1e-4  # relative, per logged step
WEIGHT_ATOL = 1e-4  # absolute, per parameter after 12 AdamW steps


@pytest.fixture(scope="module")
def corpora(tiny_tokenizer, tmp_path_factory):
    return build_corpora(tmp_path_factory.mktemp("corpora"), tiny_tokenizer)


def _config(tmp_path: Path, name: str, tiny_model, corpora, **changes) -> Path:
    data = tiny_config(tmp_path / name, tiny_model, {"web": (corpora["web"], 1), "qa": (corpora["qa"], 1)},
                       **{"train.micro_batch_size": 1, "train.num_threads": 1, **changes})  # fmt: skip
    return write_config(tmp_path / f"{name}.yaml", data)


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, tiny_model, corpora):
    one = midtrain.run(midtrain.load(_config(tmp_path, "one", tiny_model, corpora)))
    two_cfg = _config(tmp_path, "two", tiny_model, corpora)
    result = run(torchrun(2, "midtrain", "run", str(two_cfg)))
    assert "data parallel: 2 processes x 2 micro-batches of 1 sequences per step" in result.stderr
    two_dir = tmp_path / "two"

    # the main process alone wrote the logs: each step once, and the same curve as one process
    a, b = _rows(tmp_path / "one"), _rows(two_dir)
    assert [r["step"] for r in b] == [2, 4, 6, 8, 10, 12] == [r["step"] for r in a]
    for ra, rb in zip(a, b):
        assert rb["tokens"] == ra["tokens"] and rb["lr"] == ra["lr"]
        assert rb["loss"] == pytest.approx(ra["loss"], rel=LOSS_RTOL), rb["step"]
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-3), rb["step"]
        assert rb["tokens/web"] == ra["tokens/web"] and rb["tokens/qa"] == ra["tokens/qa"]
    assert b[-1]["loss"] < b[0]["loss"]

    wa, wb = _weights(one), _weights(two_dir / "final")
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    print(
        "loss 1 process:",
        [r["loss"] for r in a],
        "2 processes:",
        [r["loss"] for r in b],
        f"weights apart {worst:.3g}",
    )
    assert worst < WEIGHT_ATOL, worst
    init = _weights(tiny_model)
    assert any(not torch.equal(init[k], wb[k]) for k in wb)  # it trained

    # checkpoints: loadable HF folders with the trainer state of their step; one manifest, complete
    ckpts = list_checkpoints(two_dir)
    assert [p.name for p in ckpts] == ["step-8", "step-12"]
    for ckpt in ckpts:
        assert read_state(ckpt)["step"] == int(ckpt.name.split("-")[1])
        AutoModelForCausalLM.from_pretrained(str(ckpt))
    manifest = read_manifest(two_dir)
    assert manifest["status"] == "complete"
    assert manifest["config_hash"] == config_hash(midtrain.load(two_cfg))
    assert manifest["counts"]["tokens"] == 12 * 128
    assert not list(two_dir.glob("**/*.tmp"))


@pytest.mark.slow
def test_two_processes_killed_with_sigkill_resume(tmp_path, tiny_model, corpora):
    """SIGKILL the launcher of a 2-process run after its first checkpoint; a relaunch ends where an
    uninterrupted 2-process run ends (bit for bit), and no worker outlives the test."""
    changes = {"data.stages.main.tokens": 128 * 80, "train.checkpoint_every": 10, "train.log_every": 10}
    ref_cfg = _config(tmp_path, "ref", tiny_model, corpora, **changes)
    run(torchrun(2, "midtrain", "run", str(ref_cfg)))

    cfg = _config(tmp_path, "cut", tiny_model, corpora, **changes)
    cmd = torchrun(2, "midtrain", "run", str(cfg))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    workers = crash_launcher_when(
        proc, lambda: bool(list_checkpoints(tmp_path / "cut")), timeout=120, poll=0.02
    )
    assert workers and not alive(workers)
    done = list_checkpoints(tmp_path / "cut")
    assert done and read_state(done[-1])["step"] < 80 and not (tmp_path / "cut" / "final").exists()

    run(torchrun(2, "midtrain", "run", str(cfg)))
    a, b = _weights(tmp_path / "ref" / "final"), _weights(tmp_path / "cut" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    keys = ("step", "loss", "grad_norm")
    assert [{k: r[k] for k in keys} for r in _rows(tmp_path / "ref")] == [
        {k: r[k] for k in keys} for r in _rows(tmp_path / "cut")
    ]
