"""Suites run for real through lighteval: tiny models on real benchmark items, and the real SmolLM2-135M."""

from __future__ import annotations

import json

import pytest

from eval.metrics import pass_at_k
from eval.runner import run
from octo.jsonl import read_jsonl
from octo.manifest import read_manifest
from octo.scoring import score as octo_score


@pytest.fixture(scope="session")
def long_tiny_model(tiny_tokenizer, tmp_path_factory):
    """A random 2-layer Llama with an 8k context: real benchmark few-shot prompts fit whole."""
    from octo.tiny import TinyLlamaShape, make_tiny_llama

    shape = TinyLlamaShape(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position_embeddings=8192
    )
    return make_tiny_llama(shape, tiny_tokenizer, tmp_path_factory.mktemp("long_tiny"), seed=0)


def details(out, task):
    return list(read_jsonl(out / "details" / f"{task}.jsonl"))


def assert_prompts_whole(out, task, model_path):
    """Every prompt reached the model whole: lighteval's input tokens == the full prompt, re-tokenised here."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    rows = details(out, task)
    for row in rows:
        assert row["input_tokens"] == row["prompt_tokens"] == len(tok(row["prompt"])["input_ids"]), (
            task,
            row["id"],
        )
    return rows


def test_base_fewshot_on_real_benchmark_items(benchmarks_root, long_tiny_model, tmp_path):
    import torch

    out = tmp_path / "base_fewshot"
    torch.manual_seed(123)
    expected_draw = torch.rand(1).item()
    torch.manual_seed(123)
    short = [f"tasks.{t}.max_new_tokens=8" for t in ("gsm8k", "mmlu_stem", "amc23")]
    results = run(
        "configs/eval/base_fewshot.yaml",
        long_tiny_model,
        out,
        overrides=["max_items=3", "generation.max_new_tokens=8", "model.threads=1", *short],
    )
    assert torch.is_grad_enabled()  # lighteval switches autograd off; run() gives it back
    assert torch.rand(1).item() == expected_draw  # and the random streams are as they were
    assert results["complete"] and set(results["tasks"]) == {
        "gsm8k",
        "math500",
        "olympiad_bench",
        "minerva_math",
        "mmlu_stem",
        "amc23",
    }
    for name, entry in results["tasks"].items():
        assert entry["n"] == 3 and entry["truncated_prompts"] == 0 and entry["main"] == "acc"
        assert 0.0 <= entry["score"] <= 1.0 and entry["stderr"] >= 0.0
        rows = assert_prompts_whole(out, name, long_tiny_model)
        marker = "Question:" if entry["prompt"] in ("qa", "mc") else "Problem:"
        for row in rows:
            assert row["prompt"].count(marker) == entry["fewshot"] + 1  # the exemplars, then the question
            assert row["id"] not in entry["exemplar_ids"] and len(row["completions"]) == 1
    gsm8k = details(out, "gsm8k")[0]
    assert (
        "The answer is" in gsm8k["prompt"] and "<<" not in gsm8k["prompt"]
    )  # exemplar answers, calculator marks removed
    assert results["settings"]["generation"]["temperature"] == 0.0
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["counts"]["gsm8k"] == 3
    assert manifest["inputs"]["model"]["exists"]

    # same config, same checkpoint: skipped (nothing rewritten); force re-runs
    stamp = (out / "details" / "gsm8k.jsonl").stat().st_mtime_ns
    again = run(
        "configs/eval/base_fewshot.yaml",
        long_tiny_model,
        out,
        overrides=["max_items=3", "generation.max_new_tokens=8", "model.threads=1", *short],
    )
    assert again == results and (out / "details" / "gsm8k.jsonl").stat().st_mtime_ns == stamp


def _crafted_items(path):
    """Two prompts whose character order and token order disagree (digits are one token each here)."""
    rows = [
        {"question": "the cat sat on the mat and " * 10, "answer": "1"},
        {"question": "Calculate " + "1234567890" * 12, "answer": "2"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lighteval_prompt_cut_is_fixed_and_guarded(long_tiny_model, tmp_path, monkeypatch):
    """lighteval cuts every prompt of a split to the token length of the one with the longest *question text*
    (+ generation size). The runner sorts by token length instead; without that patch the guard stops the run.
    (lighteval's own transformers model; the default engine never cuts a prompt.)"""
    items = _crafted_items(tmp_path / "items.jsonl")
    overrides = [
        "model.engine=lighteval",
        "tasks.0.source=jsonl",
        f"tasks.0.path={items}",
        "include=[arith]",
        "generation.max_new_tokens=4",
    ]
    out = tmp_path / "fixed"
    run("configs/eval/demo_zeroshot.yaml", long_tiny_model, out, overrides=overrides)
    rows = assert_prompts_whole(out, "arith", long_tiny_model)
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"] + 4  # the case that used to be cut

    from lighteval.data import GenerativeTaskDataset

    from eval.tasks import ORIGINALS

    monkeypatch.setattr(GenerativeTaskDataset, "_sorting_criteria", ORIGINALS["sorting_criteria"])
    with pytest.raises(RuntimeError, match="1 prompts reached the model truncated"):
        run("configs/eval/demo_zeroshot.yaml", long_tiny_model, tmp_path / "unpatched", overrides=overrides)
    cut = details(tmp_path / "unpatched", "arith")[1]
    assert cut["input_tokens"] < cut["prompt_tokens"]
    assert read_manifest(tmp_path / "unpatched")["status"] == "running"  # never marked complete


def test_sampled_runs_repeat_with_the_same_seed(long_tiny_model, tmp_path):
    overrides = ["max_items=5", "generation.max_new_tokens=6", "generation.n=4"]
    first = run("configs/eval/demo_sampled.yaml", long_tiny_model, tmp_path / "a", overrides=overrides)
    second = run("configs/eval/demo_sampled.yaml", long_tiny_model, tmp_path / "b", overrides=overrides)
    other = run(
        "configs/eval/demo_sampled.yaml", long_tiny_model, tmp_path / "c", overrides=[*overrides, "seed=1"]
    )
    texts = [[r["completions"] for r in details(tmp_path / d, "arith")] for d in "abc"]
    assert texts[0] == texts[1] and texts[0] != texts[2]

    def scores(results):  # everything but the timings
        return {
            k: {f: v for f, v in e.items() if f not in ("wall_s", "timing_s")}
            for k, e in results["tasks"].items()
        }

    assert scores(first) == scores(second)
    entry = first["tasks"]["arith"]
    assert set(entry["scores"]) == {"pass@1", "pass@2", "pass@4", "mean@4"} and entry["samples"] == 4
    assert all(len(t) == 4 for t in texts[0]) and other["settings"]["seed"] == 1


def test_generator_backend_scores_like_the_default(long_tiny_model, tmp_path):
    """The vLLM path's adapter (a lighteval model around a generate function), fed by plain model.generate,
    gives the same completions and scores as lighteval's transformers model."""
    from eval.backends import HFGenerateBackend
    from eval.config import load_suite

    overrides = ["include=[arith]", "max_items=6", "generation.max_new_tokens=10", "model.batch_size=1"]
    default = run(
        "configs/eval/demo_zeroshot.yaml", long_tiny_model, tmp_path / "default", overrides=overrides
    )
    suite = load_suite("configs/eval/demo_zeroshot.yaml", overrides)
    generator = run(
        suite, long_tiny_model, tmp_path / "generator", backend=HFGenerateBackend(suite, long_tiny_model)
    )
    assert generator["settings"]["backend"] == "hf_generate"
    assert [r["completions"] for r in details(tmp_path / "generator", "arith")] == [
        r["completions"] for r in details(tmp_path / "default", "arith")
    ]
    assert generator["tasks"]["arith"]["scores"] == default["tasks"]["arith"]["scores"]


def test_interrupted_run_keeps_finished_tasks(long_tiny_model, tmp_path, monkeypatch):
    import eval.runner as runner

    overrides = ["max_items=3", "generation.max_new_tokens=4", "tasks.gsm8k_offline.max_new_tokens=4"]
    real = runner.run_task

    def dies_on_gsm8k(task, *args):
        if task.name == "gsm8k_offline":
            raise KeyboardInterrupt
        return real(task, *args)

    monkeypatch.setattr(runner, "run_task", dies_on_gsm8k)
    with pytest.raises(KeyboardInterrupt):
        run("configs/eval/demo_zeroshot.yaml", long_tiny_model, tmp_path, overrides=overrides)
    partial = json.loads((tmp_path / "results.json").read_text())
    assert not partial["complete"] and list(partial["tasks"]) == ["arith"]
    stamp = (tmp_path / "details" / "arith.jsonl").stat().st_mtime_ns
    monkeypatch.setattr(runner, "run_task", real)
    done = run("configs/eval/demo_zeroshot.yaml", long_tiny_model, tmp_path, overrides=overrides)
    assert done["complete"] and list(done["tasks"]) == ["arith", "gsm8k_offline"]
    assert (tmp_path / "details" / "arith.jsonl").stat().st_mtime_ns == stamp  # kept, not re-run


def test_cli_killed_with_sigkill_resumes_to_the_same_results(long_tiny_model, tmp_path):
    """`octo eval run` SIGKILLed after its first task: nothing of it is left alive, the folder refuses nobody,
    and the resumed run keeps that task and ends with the results of an uninterrupted run."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from procs_helpers import kill_run

    root = Path(__file__).resolve().parent.parent
    suite = "configs/eval/demo_zeroshot.yaml"
    overrides = ["max_items=4", "generation.max_new_tokens=4", "tasks.gsm8k_offline.max_new_tokens=48"]
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "octo",
        "eval",
        "run",
        suite,
        "--model",
        str(long_tiny_model),
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    log = (tmp_path / "cli.log").open("w")
    proc = subprocess.Popen([*cmd, *overrides], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while not (out / "results.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
    kill_run(proc, out)
    partial = json.loads((out / "results.json").read_text())
    assert not partial["complete"] and list(partial["tasks"]) == ["arith"], "killed too late"
    stamp = (out / "details" / "arith.jsonl").stat().st_mtime_ns
    done = run(suite, long_tiny_model, out, overrides=overrides)
    reference = run(suite, long_tiny_model, tmp_path / "reference", overrides=overrides)
    assert (out / "details" / "arith.jsonl").stat().st_mtime_ns == stamp  # kept, not re-run
    assert done["complete"] and {k: v["scores"] for k, v in done["tasks"].items()} == {
        k: v["scores"] for k, v in reference["tasks"].items()
    }
    for task in ("arith", "gsm8k_offline"):
        assert [r["completions"] for r in details(out, task)] == [
            r["completions"] for r in details(tmp_path / "reference", task)
        ]


def test_cli_runs_a_suite(long_tiny_model, tmp_path, capsys):
    from eval.__main__ import main

    out = tmp_path / "cli"
    code = main(
        [
            "run",
            "configs/eval/demo_zeroshot.yaml",
            "--model",
            str(long_tiny_model),
            "--out",
            str(out),
            "max_items=2",
            "generation.max_new_tokens=4",
            "tasks.gsm8k_offline.max_new_tokens=4",
        ]
    )
    assert code == 0 and (out / "results.json").is_file()
    printed = capsys.readouterr().out
    assert "arith" in printed and "gsm8k_offline" in printed and "acc" in printed


@pytest.fixture(scope="session")
def smollm2():
    from octo.assets import MissingAssetError, smollm2_path

    try:
        return smollm2_path()
    except MissingAssetError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_real_smollm2_scores_arithmetic_and_runs_gsm8k(smollm2, benchmarks_root, tmp_path):
    """The real SmolLM2-135M: clearly non-zero 3-shot accuracy on held-out generated problems (greedy and
    sampled, scored with the RL reward's checker), and an 8-shot GSM8K run on a few real test items."""
    greedy = run(
        "configs/eval/demo_fewshot.yaml",
        smollm2,
        tmp_path / "greedy",
        overrides=["include=[arith]", "max_items=10", "generation.max_new_tokens=20", "model.threads=1"],
    )
    arith = greedy["tasks"]["arith"]
    assert arith["score"] > 0.2, details(tmp_path / "greedy", "arith")
    for row in assert_prompts_whole(tmp_path / "greedy", "arith", smollm2):
        assert row["correct"] == [octo_score(row["completions"][0], row["gold"]).correct]
    assert arith["score"] == pytest.approx(
        sum(r["correct"][0] for r in details(tmp_path / "greedy", "arith")) / 10
    )

    sampled = run(
        "configs/eval/demo_sampled.yaml",
        smollm2,
        tmp_path / "sampled",
        overrides=[
            "max_items=6",
            "generation.max_new_tokens=20",
            "tasks.arith.fewshot=3",
            "tasks.arith.fewshot_seed=4242",
            "model.threads=1",
        ],
    )
    entry = sampled["tasks"]["arith"]
    rows = details(tmp_path / "sampled", "arith")
    for k in (1, 2, 4):  # the aggregate is the mean of per-item unbiased estimates from the details
        expected = sum(pass_at_k(4, sum(r["correct"]), k) for r in rows) / len(rows)
        assert entry["scores"][f"pass@{k}"]["value"] == pytest.approx(expected)
    assert entry["scores"]["pass@4"]["value"] >= entry["scores"]["pass@1"]["value"] > 0

    gsm8k = run(
        "configs/eval/base_fewshot.yaml",
        smollm2,
        tmp_path / "gsm8k",
        overrides=["include=[gsm8k]", "max_items=2", "tasks.gsm8k.max_new_tokens=96", "model.threads=1"],
    )
    assert gsm8k["tasks"]["gsm8k"]["fewshot"] == 8 and gsm8k["tasks"]["gsm8k"]["n"] == 2
    for row in assert_prompts_whole(tmp_path / "gsm8k", "gsm8k", smollm2):
        assert row["prompt"].count("Question:") == 9 and row["prompt_tokens"] > 800
        assert any(ch.isdigit() for ch in row["completions"][0])  # a real model answers with numbers


def test_readiness_reads_real_eval_results(long_tiny_model, tmp_path):
    """The readiness table over results.json files written by run() (the study layout), RL metrics alongside."""
    from eval.readiness import build_readiness
    from octo.jsonl import write_jsonl

    study = tmp_path / "study"
    quick = ["max_items=3", "generation.max_new_tokens=4", "tasks.gsm8k_offline.max_new_tokens=4"]
    for model in ("base", "base-rl"):
        run(
            "configs/eval/demo_zeroshot.yaml",
            long_tiny_model,
            study / "eval" / model / "demo_zeroshot",
            overrides=quick,
        )
    run(
        "configs/eval/demo_sampled.yaml",
        long_tiny_model,
        study / "eval" / "base" / "demo_sampled",
        overrides=["max_items=3", "generation.max_new_tokens=4"],
    )
    write_jsonl(
        study / "rl" / "base" / "metrics.jsonl",
        [{"step": i, "accuracy": 0.0, "response_len_mean": 4.0} for i in range(20)],
    )
    build_readiness(study)
    data = json.loads((study / "readiness.json").read_text())
    row = data["rows"][0]
    assert data["suites"] == {"demo_sampled": "passk", "demo_zeroshot": "zeroshot"}
    assert row["arm"] == "base" and row["verdict"] == "not ready"
    assert (
        row["zeroshot_pre/demo_zeroshot/arith"] == 0.0
        and row["zeroshot_post/demo_zeroshot/gsm8k_offline"] == 0.0
    )
    assert row["passk_pre/demo_sampled/arith/pass@4"] == 0.0
    assert "eval/base-rl/demo_sampled missing" in row["notes"]


def test_vllm_backend_without_vllm_fails_clearly(long_tiny_model, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(RuntimeError, match=r"backend=vllm needs vLLM"):
        run(
            "configs/eval/demo_zeroshot.yaml",
            long_tiny_model,
            tmp_path,
            overrides=["backend=vllm", "max_items=1"],
        )
