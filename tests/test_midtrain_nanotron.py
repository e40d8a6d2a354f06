"""nanotron for scale, without nanotron: checkpoint conversion (round trip, RoPE layouts, TP shards) and configs.

nanotron GitHub main cannot be installed here (it pins numpy<2 and needs CUDA and flash-attn), so the YAML is
checked against the project's mirror of its config dataclasses (``midtrain.nanotron_schema``), and its lr
schedule against a transcription of ``lr_lambda`` from ``src/nanotron/helpers.py`` at commit 2411b022a75f.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from midtrain_helpers import build_corpora, tiny_config, write_config
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

import midtrain
from midtrain.convert import (
    from_interleaved,
    hf_to_nanotron,
    merge_shards,
    nanotron_to_hf,
    to_interleaved,
)
from midtrain.nanotron_config import generate
from midtrain.nanotron_schema import LlamaConfig as NanotronLlamaConfig
from midtrain.nanotron_schema import validate
from midtrain.plan import make_plan
from midtrain.schedule import lr_at
from octo.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------- helpers
def tiny_llama(tmp_path: Path, tied: bool, name: str = "hf", **extra) -> Path:
    config = LlamaConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=tied, rope_theta=500000.0, **extra,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    for p in model.parameters():  # norms are ones at init: make every tensor distinctive
        torch.nn.init.normal_(p, std=0.2)
    model.save_pretrained(tmp_path / name)
    return tmp_path / name


def logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    model = LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def nanotron_lr(step: int, a: dict, total_steps: int) -> float:
    """nanotron's lr_lambda (helpers.py, main @ 2411b022a75f), transcribed for an explicit decay length."""
    decay_steps = a["lr_decay_steps"]
    start = a["lr_decay_starting_step"] if a["lr_decay_starting_step"] is not None else a["lr_warmup_steps"]
    lr, floor, warm = a["learning_rate"], a["min_decay_lr"], a["lr_warmup_steps"]
    if warm == 0 and decay_steps == 0:
        return lr
    if a["lr_warmup_style"] is not None and step <= warm:
        return lr * step / max(warm, 1) if a["lr_warmup_style"] == "linear" else lr
    if step < start:
        return lr
    if step < start + decay_steps:
        x = (step - start) / decay_steps
        style = a["lr_decay_style"]
        if style == "cosine":
            return floor + (lr - floor) * (1 + math.cos(math.pi * x)) / 2
        if style == "linear":
            return floor + (lr - floor) * (decay_steps - (step - start)) / decay_steps
        return floor + (lr - floor) * (1 - math.sqrt(x))
    return floor


# ----------------------------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("interleaved", [False, True])
def test_hf_nanotron_hf_round_trip_gives_identical_logits(tmp_path, tied, interleaved):
    hf = tiny_llama(tmp_path, tied)
    nt = hf_to_nanotron(hf, tmp_path / "nt", rope_interleaved=interleaved)
    back = nanotron_to_hf(nt, tmp_path / "back")
    ids = torch.randint(0, 300, (2, 17), generator=torch.Generator().manual_seed(1))
    assert torch.equal(logits(hf, ids), logits(back, ids))
    model_cfg = json.loads((nt / "model_config.json").read_text())
    assert model_cfg["rope_interleaved"] is interleaved and model_cfg["rope_theta"] == 500000.0
    NanotronLlamaConfig.model_validate(
        model_cfg
    )  # the fields nanotron's LlamaConfig declares, strictly typed
    lm_head = nt / "model/model/lm_head/pp_block/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors"
    assert lm_head.is_file() is not tied


def test_checkpoint_layout_and_shard_metadata(tmp_path):
    nt = hf_to_nanotron(tiny_llama(tmp_path, tied=False), tmp_path / "nt")
    layer = nt / "model/model/decoder/0/pp_block"
    with safe_open(
        str(layer / "attn/qkv_proj/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors"), "pt"
    ) as f:
        meta, qkv = f.metadata(), f.get_tensor("data")
    # q: 4 heads x 16, k and v: 2 heads x 16 -> three contiguous chunks, as nanotron's qkv_contiguous_chunks
    assert qkv.shape == (128, 64) and meta["unsharded_shape"] == "(128, 64)" and meta["version"] == "1.5"
    assert meta["local_global_slices_pairs"] == ";".join(
        f"{a},{b},None|None,None,None#{a},{b},None|None,None,None" for a, b in ((0, 64), (64, 96), (96, 128))
    )
    with safe_open(
        str(layer / "attn/o_proj/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors"), "pt"
    ) as f:
        assert (
            f.metadata()["local_global_slices_pairs"]
            == "None,None,None|None,None,None#None,None,None|0,64,None"
        )
    with safe_open(str(layer / "input_layernorm/model_weight.safetensors"), "pt") as f:
        assert not f.metadata() and f.get_tensor("data").shape == (64,)
    embed = nt / "model/model/token_position_embeddings/pp_block/token_embedding"
    assert (embed / "model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors").is_file()
    assert (nt / "model/model/final_layer_norm/pp_block/model_weight.safetensors").is_file()
    meta = json.loads((nt / "checkpoint_metadata.json").read_text())
    assert meta["version"] == "1.5" and meta["metas"]["last_train_step"] == 0


def test_rope_layouts_match_hf_attention_numerically(tmp_path):
    """Attention logits of one head: HF weights with HF's rotate-half RoPE equal converted weights with the RoPE
    math nanotron runs for each layout (interleaved: GPT-J pairs as complex numbers, models/llama.py
    RotaryEmbedding; not interleaved: LlamaRotaryEmbedding.rotate_half)."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    hf_dir = tiny_llama(tmp_path, tied=False)
    model = LlamaForCausalLM.from_pretrained(str(hf_dir))
    d, n = 16, 11
    x = torch.randn(n, 64, generator=torch.Generator().manual_seed(2))
    q_w = model.model.layers[0].self_attn.q_proj.weight[:d]  # head 0
    k_w = model.model.layers[0].self_attn.k_proj.weight[:d]  # its kv head
    pos = torch.arange(n)[None]
    cos, sin = LlamaRotaryEmbedding(model.config)(x[None], pos)
    q, k = apply_rotary_pos_emb((x @ q_w.T)[None, None], (x @ k_w.T)[None, None], cos, sin)
    reference = (q[0, 0] @ k[0, 0].T).detach()

    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, d, 2, dtype=torch.float) / d))
    angles = torch.outer(torch.arange(n, dtype=torch.float), inv_freq)

    def gptj(v):  # nanotron RotaryEmbedding: adjacent pairs as complex numbers times e^{i t f}
        return torch.view_as_real(torch.view_as_complex(v.reshape(n, d // 2, 2)) * torch.polar(torch.ones_like(angles), angles)).reshape(n, d)  # fmt: skip

    nt = hf_to_nanotron(hf_dir, tmp_path / "nt_i", rope_interleaved=True)
    with safe_open(str(nt / "model/model/decoder/0/pp_block/attn/qkv_proj/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors"), "pt") as f:  # fmt: skip
        qkv = f.get_tensor("data")
    q_i, k_i = qkv[:d], qkv[64 : 64 + d]
    assert torch.allclose(gptj(x @ q_i.T) @ gptj(x @ k_i.T).T, reference, atol=1e-4)
    # without the permutation the interleaved RoPE gives other attention
    assert not torch.allclose(gptj(x @ q_w.T) @ gptj(x @ k_w.T).T, reference, atol=1e-2)
    assert torch.equal(from_interleaved(to_interleaved(q_w, d), d), q_w)

    def rotate_half_rope(v):  # nanotron LlamaRotaryEmbedding (non-interleaved), transcribed
        emb = torch.cat([angles, angles], dim=-1)
        rot = torch.cat([-v[:, d // 2 :], v[:, : d // 2]], dim=-1)
        return v * emb.cos() + rot * emb.sin()

    nt = hf_to_nanotron(hf_dir, tmp_path / "nt_n", rope_interleaved=False)
    with safe_open(str(nt / "model/model/decoder/0/pp_block/attn/qkv_proj/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors"), "pt") as f:  # fmt: skip
        qkv = f.get_tensor("data")
    assert torch.equal(qkv[:d], q_w) and torch.equal(qkv[64 : 64 + d], k_w)  # rows unchanged
    assert torch.allclose(
        rotate_half_rope(x @ qkv[:d].T) @ rotate_half_rope(x @ qkv[64 : 64 + d].T).T, reference, atol=1e-4
    )


def test_tensor_parallel_shards_merge(tmp_path):
    """Shards written the way nanotron shards tp=2 (inside each contiguous chunk) merge back to the full tensor."""
    full = torch.arange(128 * 8, dtype=torch.float32).reshape(128, 8)
    chunks, tp = (64, 32, 32), 2
    for rank in range(tp):
        pairs, local, start = [], 0, 0
        parts = []
        for size in chunks:
            shard = size // tp
            g0 = start + rank * shard
            pairs.append(f"{local},{local + shard},None|None,None,None#{g0},{g0 + shard},None|None,None,None")
            parts.append(full[g0 : g0 + shard])
            local, start = local + shard, start + size
        meta = {
            "version": "1.5",
            "local_global_slices_pairs": ";".join(pairs),
            "unsharded_shape": "(np.int64(128), 8)",
        }
        save_file({"data": torch.cat(parts)}, str(tmp_path / f"model_weight_pp-rank-0-of-1_tp-rank-{rank}-of-2.safetensors"), metadata=meta)  # fmt: skip
    assert torch.equal(merge_shards(sorted(tmp_path.glob("*.safetensors"))), full)


def test_convert_cli(tmp_path):
    from midtrain.__main__ import main

    hf = tiny_llama(tmp_path, tied=True)
    assert main(["convert", "hf-to-nanotron", str(hf), str(tmp_path / "nt")]) == 0
    assert main(["convert", "nanotron-to-hf", str(tmp_path / "nt"), str(tmp_path / "back")]) == 0
    ids = torch.randint(0, 300, (1, 9))
    assert torch.equal(logits(hf, ids), logits(tmp_path / "back", ids))


# ----------------------------------------------------------------------------------------------- configs
@pytest.fixture(scope="module")
def corpora(tiny_tokenizer, tmp_path_factory):
    return build_corpora(tmp_path_factory.mktemp("nt_corpora"), tiny_tokenizer)


def two_stage_config(tmp_path, model, corpora, **nanotron):
    data = tiny_config(tmp_path / "run", model, {"web": (corpora["web"], 1)})
    data["data"]["stages"]["main"]["tokens"] = 128 * 30
    data["data"]["stages"]["math"] = {
        "tokens": 128 * 10,
        "mixture": {
            n: {"path": str(corpora[n]), "weight": w} for n, w in (("mathweb", 89), ("qa", 10), ("instr", 1))
        },
    }
    data["schedule"] = {"lr": 1e-3, "warmup_tokens": 128 * 5, "decay": "1-sqrt", "decay_tokens": 128 * 10}
    data["nanotron"] = {
        "nodes": 1,
        "gpus_per_node": 2,
        "dp": 2,
        "micro_batch_size": 1,
        "checkpoint_interval": 10,
        **nanotron,
    }
    return midtrain.load(write_config(tmp_path / "c.yaml", data))


def test_nanotron_config_two_stages_validates_and_matches_the_plan(tmp_path, tiny_model, corpora):
    config = two_stage_config(tmp_path, tiny_model, corpora)
    files = generate(config, launch=True)
    out = tmp_path / "run" / "nanotron"
    assert [f.name for f in files] == [
        "stage1_main.yaml",
        "stage2_math.yaml",
        "plan.json",
        "launch.sh",
        "launch.sbatch",
    ]
    docs = [yaml.safe_load(f.read_text()) for f in files[:2]]
    for doc in docs:
        validate(doc)
    s1, s2 = docs
    assert [s["start_training_step"] for s in s2["data_stages"]] == [1, 31]
    assert s1["tokens"]["train_steps"] == 30 and s2["tokens"]["train_steps"] == 40
    assert (
        s1["tokens"]["micro_batch_size"] == 1 and s1["tokens"]["batch_accumulation_per_replica"] == 2
    )  # 4 / (1 x dp 2)
    assert s1["checkpoints"]["resume_checkpoint_path"] is None
    assert s2["checkpoints"]["resume_checkpoint_path"] == str(out / "checkpoints" / "30")
    assert s1["model"]["init_method"] == {"path": str(out / "init")}
    math_stage = s2["data_stages"][1]["data"]["dataset"]
    assert math_stage["dataset_weights"] == pytest.approx([0.89, 0.10, 0.01])
    assert (
        math_stage["token_size_in_bytes"] == 2
        and math_stage["vocab_size"] == s2["model"]["model_config"]["vocab_size"]
    )
    # datatrove recorded the tokenizer.json file; nanotron needs a name AutoTokenizer loads: a view folder says so
    view = Path(math_stage["dataset_folder"][0])
    assert view == out / "data" / "mathweb"
    meta = next(view.glob("*.ds.metadata")).read_text().splitlines()
    assert meta[0] == f"{Path(tiny_model).resolve()}|2" == f"{s2['tokenizer']['tokenizer_name_or_path']}|2"
    ds = next(view.glob("*.ds"))
    assert ds.is_symlink() and ds.resolve().parent == corpora["mathweb"].resolve()
    # the lr schedule nanotron will follow is ours, step by step
    plan = make_plan(config)
    lr_args = s2["optimizer"]["learning_rate_scheduler"]
    assert lr_args["lr_decay_style"] == "1-sqrt" and lr_args["lr_warmup_style"] == "linear"
    assert all(nanotron_lr(k, lr_args, 40) == pytest.approx(lr_at(plan, k)) for k in range(40))
    # launch scripts: convert in, one torchrun per stage, convert out; valid bash
    sh = files[3].read_text()
    assert (
        sh.count('run_train.py" --config-file') == 2
        and "convert hf-to-nanotron" in sh
        and "convert nanotron-to-hf" in sh
    )
    assert "torchrun --nproc_per_node=2 --nnodes=1" in sh and str(out / "checkpoints" / "40") in sh
    sbatch = files[4].read_text()
    assert (
        "#SBATCH --nodes=1" in sbatch and "#SBATCH --gpus-per-node=2" in sbatch and "srun torchrun" in sbatch
    )
    for script in files[3:]:
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_nanotron_config_for_a_decay_branch(tmp_path, tiny_model, corpora):
    stable = tiny_config(tmp_path / "stable", tiny_model, {"web": (corpora["web"], 1)})
    stable["data"]["stages"]["main"]["tokens"] = 128 * 20
    stable["schedule"] = {"lr": 1e-3, "warmup_tokens": 128 * 2, "decay": "none"}
    stable["nanotron"] = {"nodes": 1, "gpus_per_node": 1, "checkpoint_interval": 10}
    generate(midtrain.load(write_config(tmp_path / "stable.yaml", stable)))
    s = yaml.safe_load((tmp_path / "stable/nanotron/stage1_main.yaml").read_text())
    const = s["optimizer"]["learning_rate_scheduler"]
    assert all(nanotron_lr(k, const, 20) == pytest.approx(1e-3 * min(1, k / 2)) for k in range(20))

    branch = tiny_config(
        tmp_path / "decay", tiny_model, {"web": (corpora["web"], 1), "qa": (corpora["qa"], 1)}
    )
    branch["branch"] = {"from_run": str(tmp_path / "stable")}
    branch["data"]["stages"] = {
        "decay": {"tokens": 128 * 8, "mixture": branch["data"]["stages"]["main"]["mixture"]}
    }
    branch["schedule"] = {"lr": 1e-3, "warmup_tokens": 128 * 2, "decay": "cosine", "decay_tokens": 128 * 8}
    branch["nanotron"] = {"nodes": 1, "gpus_per_node": 1}
    config = midtrain.load(write_config(tmp_path / "decay.yaml", branch))
    files = generate(config, launch=True)
    doc = yaml.safe_load(files[0].read_text())
    assert [s["name"] for s in doc["data_stages"]] == ["main", "decay"]
    assert [s["start_training_step"] for s in doc["data_stages"]] == [1, 21]
    assert doc["checkpoints"]["resume_checkpoint_path"] == str(tmp_path / "stable/nanotron/checkpoints/20")
    assert doc["tokens"]["train_steps"] == 28 and doc["model"]["init_method"] == s["model"]["init_method"]
    lr_args = doc["optimizer"]["learning_rate_scheduler"]
    plan = make_plan(config, start_step=20)
    assert all(nanotron_lr(k, lr_args, 28) == pytest.approx(lr_at(plan, k)) for k in range(20, 28))
    assert "nothing to convert" in files[-2].read_text()
    with pytest.raises(ConfigError, match="checkpoint interval"):
        branch["branch"]["at_tokens"] = 128 * 15
        generate(midtrain.load(write_config(tmp_path / "decay2.yaml", branch)))


def test_schema_rejects_what_nanotron_rejects(tmp_path, tiny_model, corpora):
    config = two_stage_config(tmp_path, tiny_model, corpora)
    good = yaml.safe_load(generate(config)[0].read_text())

    def broken(change):
        doc = json.loads(json.dumps(good))
        change(doc)
        with pytest.raises(ValidationError):
            validate(doc)

    broken(lambda d: d["tokens"].update(typo=1))  # unknown key
    broken(
        lambda d: d["optimizer"]["learning_rate_scheduler"].update(learning_rate="1e-3")
    )  # a string, not a float
    broken(lambda d: d["optimizer"]["learning_rate_scheduler"].pop("lr_warmup_style"))  # nanotron's own bug
    broken(lambda d: d["optimizer"]["learning_rate_scheduler"].update(lr_decay_style="exp"))
    broken(lambda d: d["data_stages"][0].update(start_training_step=2))  # no stage at step 1
    broken(lambda d: d["data_stages"][0]["data"]["dataset"].update(vocab_size=7))
    broken(lambda d: d["model"]["model_config"].update(num_key_value_heads=3))


def test_rope_scaling_is_refused_unless_allowed(tmp_path, corpora):
    from midtrain.nanotron_config import _model

    scaling = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}  # fmt: skip
    hf = tiny_llama(tmp_path, tied=True, name="l3", rope_scaling=scaling)
    with pytest.raises(ConfigError, match="allow_rope_scaling_drop"):
        generate(two_stage_config(tmp_path, hf, corpora, gpus_per_node=2))
    model, _, _ = _model(
        two_stage_config(tmp_path, hf, corpora, gpus_per_node=2, allow_rope_scaling_drop=True)
    )
    assert model["rope_scaling"]["rope_type"] == "llama3" and model["rope_theta"] == 500000.0


def test_octothinker_recipe_lays_out_for_nanotron(tmp_path):
    """The 3B recipe end to end on paper: Llama-3.2-3B's config, uint32 shards made with the real Llama-3 tokenizer."""
    from midtrain_helpers import instruction_texts, qa_texts, write_shards

    from octo.assets import llama3_tokenizer_path, wiki_summaries

    tok = llama3_tokenizer_path()
    base = tmp_path / "Llama-3.2-3B"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({  # Llama-3.2-3B's published architecture
        "model_type": "llama", "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
        "num_attention_heads": 24, "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": True, "bos_token_id": 128000,
        "eos_token_id": 128001, "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}))  # fmt: skip
    texts = {
        "megamath_web_pro": [r["extract"] for r in wiki_summaries(topic="Mathematics")[:40]],
        "qa": qa_texts(40),
        "instruct": instruction_texts(10),
        "qa_long": qa_texts(30, seed=3),
    }
    paths = {n: write_shards(t, tok, tmp_path / n) for n, t in texts.items()}
    assert next(paths["qa"].glob("*.ds.metadata")).read_text().splitlines()[0].endswith("|4")  # uint32 tokens
    recipe = ROOT / "configs/midtrain"
    common = [f"model.base={base}", f"nanotron.out_dir={tmp_path}/stable/nanotron"]
    stable = midtrain.load(recipe / "octothinker_llama3b_stable.yaml", [
        f"output_dir={tmp_path}/stable", *common,
        *(f"data.stages.stable.mixture.{n}.path={paths[n]}" for n in ("megamath_web_pro", "qa", "instruct"))])  # fmt: skip
    files = generate(stable, launch=True)
    doc = yaml.safe_load(files[0].read_text())
    assert doc["tokens"] == {"sequence_length": 8192, "train_steps": 47684, "micro_batch_size": 2,
                             "batch_accumulation_per_replica": 8, "val_check_interval": -1,
                             "limit_val_batches": 0, "limit_test_batches": 0}  # fmt: skip
    assert doc["parallelism"]["dp"] == 32 and doc["model"]["model_config"]["rope_theta"] == 500000.0
    dataset = doc["data_stages"][0]["data"]["dataset"]
    assert dataset["token_size_in_bytes"] == 4 and dataset["vocab_size"] == 128256
    assert dataset["dataset_weights"] == pytest.approx([0.89, 0.10, 0.01])
    lr = doc["optimizer"]["learning_rate_scheduler"]
    assert (lr["lr_warmup_steps"], lr["lr_decay_starting_step"], lr["min_decay_lr"]) == (477, 47684, 3e-5)
    assert "#SBATCH --nodes=4" in files[-1].read_text()

    long = midtrain.load(recipe / "octothinker_llama3b_decay_long.yaml", [
        f"output_dir={tmp_path}/long", f"model.base={base}", f"branch.from_run={tmp_path}/stable",
        *(f"data.stages.decay_long.mixture.{n}.path={paths[n]}" for n in ("megamath_web_pro", "qa_long", "instruct"))])  # fmt: skip
    doc = yaml.safe_load(generate(long)[0].read_text())
    assert [(s["name"], s["start_training_step"]) for s in doc["data_stages"]] == [
        ("stable", 1),
        ("decay_long", 47685),
    ]
    assert doc["checkpoints"]["resume_checkpoint_path"] == f"{tmp_path}/stable/nanotron/checkpoints/47684"
    lr = doc["optimizer"]["learning_rate_scheduler"]
    assert (lr["lr_decay_style"], lr["lr_decay_starting_step"], lr["lr_decay_steps"]) == (
        "cosine",
        47684,
        4769,
    )
    assert doc["tokens"]["train_steps"] == 52453 and lr["min_decay_lr"] == pytest.approx(3e-6)
