"""`octo publish`: a real mid-training run and an RL run on top of it, inside a study folder with evaluation
results and a readiness table, published as a Hub folder that transformers loads and whose card says how it
was made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from midtrain_helpers import qa_texts, tiny_config, write_config, write_shards

from octo.manifest import PROJECT_ROOT, read_manifest, write_manifest
from octo.publish import SMOLLM2_HUB_ID, base_model, lineage, main, publish


def eval_results(score: float, fewshot: int = 0) -> dict:
    """A results.json as eval.runner writes it (the fields readiness and publish read)."""
    entry = {"main": "acc", "score": score, "stderr": 0.03, "fewshot": fewshot, "n": 40,
             "scores": {"acc": {"value": score, "stderr": 0.03}}}  # fmt: skip
    return {
        "suite": "demo_zeroshot",
        "complete": True,
        "settings": {"generation": {"n": 1}},
        "tasks": {"arith": entry},
    }


@pytest.fixture(scope="module")
def study(tiny_model, tiny_tokenizer, tmp_path_factory):
    import midtrain
    import rl
    from eval.readiness import build_readiness

    root = tmp_path_factory.mktemp("study")
    corpus = root / "corpus" / "qa"
    tokens = write_shards(qa_texts(200), tiny_tokenizer, corpus)
    corpus_tokens = sum(f.stat().st_size for f in tokens.glob("*.ds")) // 2  # uint16 token ids
    write_manifest(corpus, stage="corpus", config={"name": "qa"}, counts={"tokens": corpus_tokens})
    data = tiny_config(root / "midtrain" / "qa", tiny_model, {"qa": (tokens, 1.0)}, name="qa")
    midtrain.run(midtrain.load(write_config(root / "mt.yaml", data)))
    overrides = [
        f"model={root / 'midtrain' / 'qa' / 'final'}", f"output_dir={root / 'rl' / 'qa'}", "trainer.steps=2",
        "trainer.prompts_per_step=2", "trainer.num_generations=2", "trainer.max_completion_length=8",
        "prompts.size=20", "validation.every=0", "write_samples=false",
    ]  # fmt: skip
    rl.run(rl.load(PROJECT_ROOT / "configs/rl/demo.yaml", overrides))
    for model, score in (("qa", 0.2), ("qa-rl", 0.35)):
        (root / "eval" / model / "demo_zeroshot").mkdir(parents=True)
        (root / "eval" / model / "demo_zeroshot" / "results.json").write_text(json.dumps(eval_results(score)))
    build_readiness(root)
    return {"root": root, "corpus_tokens": corpus_tokens}


def card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    _, meta, body = text.split("---\n", 2)
    return yaml.safe_load(meta), body


@pytest.mark.slow
def test_published_rl_run_loads_and_its_card_says_how_it_was_made(study, tiny_model, tmp_path):
    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    root = study["root"]
    out = publish(root / "rl" / "qa", tmp_path / "pub")
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "octo_provenance.json"} <= names and not any(n.endswith(".bin") for n in names)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    eos = GenerationConfig.from_pretrained(out).eos_token_id
    assert tok.eos_token_id in (eos if isinstance(eos, list) else [eos])
    original = AutoModelForCausalLM.from_pretrained(root / "rl" / "qa" / "final").state_dict()
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())
    ids = tok("Question: What is 2 + 3?\nAnswer:", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=4, do_sample=False).shape[1] > ids["input_ids"].shape[1]

    meta, body = card(out)
    assert ModelCard.load(out / "README.md").data.license == "apache-2.0" == meta["license"]
    assert "base_model" not in meta  # a local tiny Llama has no Hub id; the card names the folder instead
    assert f"from the local checkpoint {tiny_model}." in body and "Mid-training `qa`" in body
    mid = read_manifest(root / "midtrain" / "qa")
    sha = mid["inputs"]["data/qa"]["sha256"]
    trained = mid["counts"]["tokens_by_source"]["qa"]
    assert f"| qa | {trained:,} | {study['corpus_tokens']:,} | `{sha}` |" in body
    assert "data stage `main`: 1,536 tokens, mixture qa 1" in body and "peak lr 0.003" in body
    assert "2 steps x 2 prompts x 2 rollouts" in body and "loss dapo" in body  # the RL settings
    row = json.loads((root / "readiness.json").read_text())["rows"][0]
    assert f"**{row['verdict']}** ({row['reason']})" in body
    (result,) = meta["model-index"][0]["results"]
    assert result["metrics"][0]["value"] == 0.35 and result["dataset"]["name"] == "demo_zeroshot/arith"
    assert f"at commit `{read_manifest(root / 'rl' / 'qa')['git']['commit']}`" in body
    assert "octo-lab 0.1.0" in body
    provenance = json.loads((out / "octo_provenance.json").read_text())
    assert [p["stage"] for p in provenance] == ["rl", "midtrain"]


@pytest.mark.slow
def test_published_midtrain_run_has_no_rl_section(study, tmp_path):
    out = publish(study["root"] / "midtrain" / "qa", tmp_path / "pub")
    meta, body = card(out)
    assert "RL (GRPO" not in body and meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.2
    assert [r["stage"] for r in lineage(study["root"] / "rl" / "qa")] == ["rl", "midtrain"]


def test_base_model_of_the_shipped_smollm2_and_hub_ids():
    runs = [{"stage": "midtrain", "manifest": {"config": {"model": {"base": "smollm2:2"}}}}]
    base = base_model(runs)
    assert base["hub_id"] == SMOLLM2_HUB_ID and "dequantized from a 4-bit GGUF" in base["description"]
    runs[0]["manifest"]["config"]["model"]["base"] = "org/some-model"
    assert base_model(runs)["hub_id"] == "org/some-model"


def test_push_offline_fails_at_once_and_bad_folders_are_named(tmp_path, monkeypatch, capsys):
    from octo.cli import main as octo

    run = tmp_path / "rl" / "arm"
    write_manifest(run, stage="rl", config={"model": "x"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert octo(["publish", str(run), "--out", str(tmp_path / "x"), "--push", "me/x"]) == 2
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE=1" in err and "me/x" in err and not (tmp_path / "x").exists()
    assert octo(["publish", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert "not a mid-training or RL run folder" in capsys.readouterr().err
    assert octo(["publish", str(run), "--out", str(tmp_path / "y")]) == 2
    assert "the run is not complete" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_writes_the_folder(study, tmp_path, capsys):
    assert main([str(study["root"] / "midtrain" / "qa"), "--out", str(tmp_path / "z")]) == 0
    assert (tmp_path / "z" / "model.safetensors").is_file() and "model card" in capsys.readouterr().out
