"""The embedded backend, for real on CPU: a full run, skip-when-complete, resume to identical weights, branches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from midtrain_helpers import build_corpora, tiny_config, write_config, write_shards
from procs_helpers import kill_run
from transformers import AutoModelForCausalLM, AutoTokenizer

import midtrain
import midtrain.train as train_module
from midtrain.checkpoint import list_checkpoints, read_state
from midtrain.config import MidtrainConfig
from midtrain.plan import make_plan
from midtrain.schedule import lr_at
from octo.config import ConfigError
from octo.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpora(tiny_tokenizer, tmp_path_factory):
    return build_corpora(tmp_path_factory.mktemp("corpora"), tiny_tokenizer)


def mix(corpora, *names_weights):
    return {name: (corpora[name], weight) for name, weight in names_weights}


def load(tmp_path, data: dict) -> MidtrainConfig:
    return midtrain.load(write_config(tmp_path / f"{Path(data['output_dir']).name}.yaml", data))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(str(folder)).state_dict()


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_final_metrics_plot_manifest_and_skips_when_complete(tmp_path, tiny_model, corpora):
    out = tmp_path / "run"
    config = load(
        tmp_path, tiny_config(out, tiny_model, mix(corpora, ("mathweb", 89), ("qa", 10), ("instr", 1)))
    )
    final = midtrain.run(config)
    assert final == out / "final"
    model = AutoModelForCausalLM.from_pretrained(str(final))
    tok = AutoTokenizer.from_pretrained(str(final))
    assert len(tok) == model.config.vocab_size
    base = weights(tiny_model)
    assert any(not torch.equal(base[k], v) for k, v in model.state_dict().items())

    metrics = rows(out)
    plan = make_plan(config)
    assert [r["step"] for r in metrics] == [2, 4, 6, 8, 10, 12]
    for r in metrics:
        assert {"step", "tokens", "loss", "lr", "tokens_per_s"} <= r.keys()
        assert r["tokens"] == r["step"] * 128 and r["tokens_per_s"] > 0
        assert r["lr"] == pytest.approx(lr_at(plan, r["step"] - 1))
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"

    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["tokens"] == 12 * 128
    share = manifest["counts"]["share_by_stage"]["main"]
    assert sum(share.values()) == pytest.approx(1.0)
    assert all(abs(share[n] - w) <= 1 / 48 for n, w in {"mathweb": 0.89, "qa": 0.10, "instr": 0.01}.items())
    assert [p.name for p in list_checkpoints(out)] == ["step-8", "step-12"]  # keep_checkpoints=2
    assert (list_checkpoints(out)[-1] / "config.json").is_file()  # a checkpoint is an HF folder too

    stamp = (out / "metrics.jsonl").stat().st_mtime_ns
    start = time.perf_counter()
    assert midtrain.run(config) == final
    assert time.perf_counter() - start < 2 and (out / "metrics.jsonl").stat().st_mtime_ns == stamp

    changed = config.model_copy(update={"schedule": config.schedule.model_copy(update={"lr": 1e-2})})
    with pytest.raises(ConfigError, match="schedule.lr"):
        midtrain.run(changed)


def test_interrupted_run_resumes_to_identical_weights(tmp_path, tiny_model, corpora, monkeypatch):
    sources = mix(corpora, ("web", 1), ("qa", 1))
    uninterrupted = midtrain.run(load(tmp_path, tiny_config(tmp_path / "a", tiny_model, sources)))

    real_lr_at = train_module.lr_at

    def crash(plan, step):
        if (
            step == 6
        ):  # dies in the middle of the run, after the checkpoint of step 4 and the metrics row of step 6
            raise KeyboardInterrupt("killed")
        return real_lr_at(plan, step)

    config = load(tmp_path, tiny_config(tmp_path / "b", tiny_model, sources))
    monkeypatch.setattr(train_module, "lr_at", crash)
    with pytest.raises(KeyboardInterrupt):
        midtrain.run(config)
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step-4"]
    assert read_state(list_checkpoints(tmp_path / "b")[0])["step"] == 4
    with (tmp_path / "b" / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 7, "tokens": 12')  # as if the kill came in the middle of a metrics write
    monkeypatch.setattr(train_module, "lr_at", real_lr_at)
    resumed = midtrain.run(config)

    a, b = weights(uninterrupted), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    keys = ("step", "tokens", "loss", "lr", "grad_norm")
    assert [{k: r[k] for k in keys} for r in rows(tmp_path / "a")] == [
        {k: r[k] for k in keys} for r in rows(tmp_path / "b")
    ]


def test_stages_follow_each_other_with_their_own_mixes(tmp_path, tiny_model, corpora):
    data = tiny_config(tmp_path / "stages", tiny_model, {"web": (corpora["web"], 1)})
    data["data"]["stages"]["main"]["tokens"] = 128 * 4
    data["data"]["stages"]["qa_only"] = {
        "tokens": 128 * 6,
        "mixture": {"qa": {"path": str(corpora["qa"]), "weight": 1}},
    }
    data["train"]["checkpoint_every"] = None
    data["train"]["keep_checkpoints"] = 5
    midtrain.run(load(tmp_path, data))
    metrics = rows(tmp_path / "stages")
    assert [(r["step"], r["stage"]) for r in metrics] == [
        (2, "main"),
        (4, "main"),
        (6, "qa_only"),
        (8, "qa_only"),
        (10, "qa_only"),
    ]
    assert [r.get("tokens/web") for r in metrics] == [256, 512, 512, 512, 512]
    assert [r.get("tokens/qa", 0) for r in metrics] == [0, 0, 256, 512, 768]
    assert [p.name for p in list_checkpoints(tmp_path / "stages")] == ["step-4", "step-10"]  # stage ends
    shares = read_manifest(tmp_path / "stages")["counts"]["share_by_stage"]
    assert shares == {"main": {"web": 1.0}, "qa_only": {"qa": 1.0}}
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    Accelerator(mixed_precision="bf16")  # run() left no accelerate state behind for the next stage of a study
    AcceleratorState._reset_state()


def test_decay_branch_continues_a_stable_run(tmp_path, tiny_tokenizer, corpora):
    # the stable run starts from a random-init factory model (model.tiny) and keeps a constant lr
    stable_data = tiny_config(tmp_path / "stable", None, mix(corpora, ("web", 1)))
    stable_data["model"] = {
        "tiny": {
            "tokenizer": str(tiny_tokenizer),
            "seed": 1,
            "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
        }
    }
    stable_data["schedule"] = {"lr": 2e-3, "warmup_tokens": 128 * 2, "decay": "none"}
    stable_data["data"]["stages"]["main"]["tokens"] = 128 * 8
    stable = load(tmp_path, stable_data)
    midtrain.run(stable)
    assert (tmp_path / "stable" / "init" / "config.json").is_file()
    parent = read_state(list_checkpoints(tmp_path / "stable")[-1])
    assert parent["step"] == 8 and all(r["lr"] == 2e-3 for r in rows(tmp_path / "stable")[1:])

    branch_data = tiny_config(tmp_path / "branch", None, mix(corpora, ("web", 1), ("qa", 3)))
    branch_data["model"] = {"base": str(tmp_path / "stable" / "final")}
    branch_data["branch"] = {"from_run": str(tmp_path / "stable")}
    branch_data["schedule"] = {"lr": 2e-3, "warmup_tokens": 128 * 2, "decay": "linear",
                               "decay_tokens": 128 * 4, "min_lr_ratio": 0.1}  # fmt: skip
    branch_data["data"]["stages"]["main"]["tokens"] = 128 * 4
    branch_data["train"]["checkpoint_every"] = None
    midtrain.run(load(tmp_path, branch_data))
    metrics = rows(tmp_path / "branch")
    assert [r["step"] for r in metrics] == [10, 12]
    assert metrics[0]["tokens"] == 10 * 128
    assert metrics[0]["lr"] == pytest.approx(2e-4 + 1.8e-3 * 3 / 4)  # step 9 = second decay step
    assert metrics[1]["lr"] == pytest.approx(2e-4 + 1.8e-3 * 1 / 4)
    state = read_state(list_checkpoints(tmp_path / "branch")[-1])
    assert state["run_start_step"] == 8 and state["step"] == 12
    # the web stream continues where the stable run left it; the stages start afresh
    assert (
        state["data"]["streams"]["web"]
        == parent["data"]["streams"]["web"] + state["data"]["stages"]["main"]["web"]
    )
    assert state["data"]["stages"]["main"] == {"web": 4, "qa": 12}
    assert read_manifest(tmp_path / "branch")["counts"]["start_step"] == 8


def test_recipes_validate_and_dry_run(capsys):
    from midtrain.__main__ import main

    for path in sorted((ROOT / "configs" / "midtrain").glob("*.yaml")):
        midtrain.dry_run(midtrain.load(path))
    assert main(["dry-run", str(ROOT / "configs/midtrain/octothinker_llama3b_stable.yaml")]) == 0
    text = capsys.readouterr().out
    assert "512 sequences x 8192 tokens = 4,194,304 tokens per step" in text
    assert "steps: 0 -> 47,684 (47,684 in this run, 200B tokens)" in text and "no decay" in text
    assert main(["dry-run", str(ROOT / "configs/midtrain/octothinker_llama3b_decay_long.yaml")]) == 0
    text = capsys.readouterr().out
    assert "steps: 47,684 -> 52,453 (4,769 in this run, 20B tokens)" in text
    assert "cosine decay over 4,769 steps (20B tokens) to 3e-06" in text
    demo = midtrain.load(ROOT / "configs/midtrain/demo_mathqa_instr.yaml")
    plan = make_plan(demo)
    assert plan.batch_sequences == 4 and plan.total_steps == 977 and plan.sequence_length == 256
    assert plan.stages[0].weights == pytest.approx({"mathweb": 0.89, "qa": 0.10, "instr": 0.01})
    pre = make_plan(midtrain.load(ROOT / "configs/midtrain/demo_pretrain.yaml"))
    assert pre.batch_sequences == 16 and pre.total_steps == 367 and pre.min_lr == pytest.approx(2e-4)


def test_config_errors_name_the_field(tmp_path, tiny_model):
    from midtrain.__main__ import main

    path = ROOT / "configs/midtrain/demo_mathqa.yaml"
    with pytest.raises(ConfigError, match="schedule.lrr"):
        midtrain.load(path, ["schedule.lrr=1"])
    with pytest.raises(
        ConfigError, match="data.stages.mathqa.mixture.mathweb.path: token folder not found: nowhere"
    ):
        main(["run", str(path), f"output_dir={tmp_path}/x", f"model.base={tiny_model}",
              "data.stages.mathqa.mixture.mathweb.path=nowhere"])  # fmt: skip


@pytest.mark.slow
def test_real_smollm2_short_run(tmp_path):
    """Two small steps of continued pre-training on the real SmolLM2-135M (shards made with its own tokenizer)."""
    from octo.assets import smollm2_path, wiki_summaries

    base = smollm2_path()
    texts = [r["extract"] for r in wiki_summaries(topic="Mathematics")[:60]]
    shards = write_shards(texts, base, tmp_path / "math", eos_token="<|endoftext|>")  # SmolLM2's document end
    data = tiny_config(tmp_path / "smol", base, {"math": (shards, 1)})
    eos = AutoTokenizer.from_pretrained(str(base)).convert_tokens_to_ids("<|endoftext|>")
    data["data"] = {
        "sequence_length": 32,
        "eos_token_id": eos,
        "stages": {"math": {"tokens": 2 * 64, "mixture": {"math": {"path": str(shards), "weight": 1}}}},
    }
    data["schedule"] = {"lr": 1e-5, "decay": "none"}
    data["train"] = {"global_batch_tokens": 64, "micro_batch_size": 1, "log_every": 1, "progress": False}
    final = midtrain.run(load(tmp_path, data))
    metrics = rows(tmp_path / "smol")
    assert len(metrics) == 2 and metrics[0]["loss"] < 5.0  # a real model on wiki math text (random: ~10.8)
    model = AutoModelForCausalLM.from_pretrained(str(final))
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    tok = AutoTokenizer.from_pretrained(str(final))
    ids = tok("The derivative of", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4


@pytest.mark.slow
def test_cli_killed_with_sigkill_resumes_to_identical_weights(tmp_path, tiny_model, corpora):
    """`octo midtrain run` killed for real (SIGKILL) twice, once with a metrics row cut short, and started again
    ends where an uninterrupted run ends; no process of a killed run is left, and the rows are the same."""
    sources = mix(corpora, ("web", 1), ("qa", 1))
    data = tiny_config(tmp_path / "cli", tiny_model, sources)
    data["data"]["stages"]["main"]["tokens"] = 128 * 60
    data["train"]["checkpoint_every"] = 10
    data["train"]["log_every"] = 10
    config_path = write_config(tmp_path / "cli.yaml", data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "octo", "midtrain", "run", str(config_path)]
    metrics = tmp_path / "cli" / "metrics.jsonl"

    def last_step() -> int:
        done = list_checkpoints(tmp_path / "cli")
        return read_state(done[-1])["step"] if done else 0

    for kill in (1, 2):  # kill after the first checkpoint, then after one more
        before = last_step()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while last_step() <= before and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        kill_run(proc, tmp_path / "cli")  # and no process of the killed run is left
        assert before < last_step() < 60 and not (tmp_path / "cli" / "final").exists()
        if kill == 1:  # as if the kill came in the middle of a metrics write
            with metrics.open("a") as fh:
                fh.write('{"step": 999, "loss": 1.')
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    data["output_dir"] = str(tmp_path / "ref")
    reference = midtrain.run(load(tmp_path, data))
    a, b = weights(reference), weights(tmp_path / "cli" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    keys = ("step", "tokens", "loss", "lr")
    assert [{k: r[k] for k in keys} for r in rows(tmp_path / "ref")] == [
        {k: r[k] for k in keys} for r in rows(tmp_path / "cli")
    ]


@pytest.mark.slow
def test_benchmark_script_runs():
    """benchmarks/midtrain.py end to end at a toy size (the figures themselves come from `make bench`)."""
    out = subprocess.run(
        [sys.executable, "benchmarks/midtrain.py", "--steps", "8", "--repeats", "1", "--docs", "300", "--batch", "4", "--seq", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio midtrain/bare:" in out.stdout and "data path share" in out.stdout
