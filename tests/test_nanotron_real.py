"""The generated nanotron config and the converted checkpoint, read by nanotron's own code (PyPI nanotron 0.4).

The project targets nanotron GitHub main (commit 2411b022a75f), which cannot be installed here; PyPI has only
0.4 (March 2024). 0.4 installs on CPU (pure Python: torch>=1.13.1, pyyaml, numpy, packaging, safetensors,
dacite, tqdm; flash-attn is only its optional ``fast-modeling`` extra), but ``import nanotron.config`` hits an
upstream import cycle (huggingface/nanotron#191, #235), worked around below, and ``nanotron.models`` needs
flash-attn. So what is checked here, with 0.4's own functions:

* config: ``get_config_from_file`` rejects the generated YAML on ``data_stages`` (main only); with exactly
  the main-only fields in ``MAIN_ONLY`` taken out, 0.4's ``get_config_from_dict`` (strict dacite, its own type
  hooks and ``__post_init__`` checks) accepts every other field, with the values we wrote;
* checkpoint: every file of a converted checkpoint sits at the path ``serialize.utils.get_path`` gives; the
  shard metadata parses with ``TensorMetadata.from_str_dict``; ``load_sharded_param_latest`` reshards each
  tensor-parallel weight for tp=2 to the rows/columns nanotron's parallel layers expect.

Skipped where nanotron is not installed (``pip install --no-deps nanotron==0.4 dacite``).
"""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from midtrain_helpers import tiny_config, write_config
from safetensors import safe_open
from test_midtrain_nanotron import corpora, tiny_llama  # noqa: F401  (fixture)

import midtrain
from midtrain.convert import hf_to_nanotron, load_hf_state
from midtrain.nanotron_config import generate

pytest.importorskip("nanotron", reason="nanotron 0.4 not installed")
pytest.importorskip("dacite", reason="dacite (a nanotron dependency) not installed")

# Fields of the generated YAML (nanotron main) that nanotron 0.4's dataclasses do not have.
MAIN_ONLY = {
    "parallelism": ["context_parallel_size", "recompute_layer"],
    "checkpoints": ["load_optimizer", "load_lr_scheduler", "save_final_state"],
    "model.model_config": ["rope_theta", "rope_interleaved", "attention_bias"],
}


def _import_nanotron_config():
    """``import nanotron.config`` despite 0.4's cycle (logging -> config -> parallel -> logging)."""
    if "nanotron.config" in sys.modules and hasattr(sys.modules["nanotron.config"], "Config"):
        return sys.modules["nanotron.config"]
    stub_pkg, stub_cfg = types.ModuleType("nanotron.config"), types.ModuleType("nanotron.config.config")
    stub_pkg.__path__ = []
    stub_cfg.LoggingArgs = type("LoggingArgs", (), {})  # nanotron/logging.py uses it only as an annotation
    sys.modules["nanotron.config"], sys.modules["nanotron.config.config"] = stub_pkg, stub_cfg
    try:
        import nanotron.logging
    finally:
        del sys.modules["nanotron.config"], sys.modules["nanotron.config.config"]
    import nanotron.config as config

    nanotron.logging.LoggingArgs = config.LoggingArgs
    return config


@pytest.fixture(scope="module")
def nt():
    return _import_nanotron_config()


@pytest.fixture(scope="module")
def stage_yaml(tiny_model, corpora, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("nt_real")
    data = tiny_config(root / "run", tiny_model, {"web": (corpora["web"], 1), "qa": (corpora["qa"], 1)})
    data["nanotron"] = {"nodes": 1, "gpus_per_node": 2, "dp": 2, "micro_batch_size": 1}
    return generate(midtrain.load(write_config(root / "c.yaml", data)))[0]


def _down_to_0_4(doc: dict) -> dict:
    """The generated document with exactly the main-only fields taken out or re-shaped for 0.4."""
    doc = copy.deepcopy(doc)
    for dotted, keys in MAIN_ONLY.items():
        node = doc
        for part in dotted.split("."):
            node = node[part]
        for key in keys:
            node.pop(key)
    opt = doc["optimizer"]
    factory = opt.pop("optimizer_factory")  # main nests the AdamW settings; 0.4 has them flat (AdamW only)
    assert factory.pop("name") == "adamW"
    opt.update(factory)
    stage = doc.pop("data_stages")[-1]  # 0.4 has one `data:` section and no .ds datasets
    doc["data"] = {"dataset": None, "seed": stage["data"]["seed"],
                   "num_loading_workers": stage["data"]["num_loading_workers"]}  # fmt: skip
    return doc


def test_nanotron_0_4_rejects_the_main_config_on_data_stages(nt, stage_yaml):
    import dacite

    with pytest.raises(dacite.UnexpectedDataError, match="data_stages"):
        nt.get_config_from_file(str(stage_yaml))


def test_nanotron_0_4_accepts_every_shared_field_of_the_generated_config(nt, stage_yaml, tmp_path):
    doc = yaml.safe_load(stage_yaml.read_text())
    config = nt.get_config_from_dict(_down_to_0_4(doc))
    assert type(config).__name__ == "Config"
    assert (config.parallelism.dp, config.parallelism.tp, config.parallelism.pp) == (2, 1, 1)
    assert type(config.parallelism.pp_engine).__name__ == "OneForwardOneBackwardPipelineEngine"
    assert config.model.dtype == torch.bfloat16
    assert str(config.model.init_method.path) == doc["model"]["init_method"]["path"]
    mc = config.model.model_config
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
                "tie_word_embeddings", "rms_norm_eps", "eos_token_id"):  # fmt: skip
        assert getattr(mc, key) == doc["model"]["model_config"][key], key
    t = config.tokens
    assert (t.train_steps, t.sequence_length, t.micro_batch_size, t.batch_accumulation_per_replica) == (
        12,
        32,
        1,
        2,
    )
    lr = config.optimizer.learning_rate_scheduler
    wrote = doc["optimizer"]["learning_rate_scheduler"]
    assert (lr.learning_rate, lr.lr_warmup_steps, lr.lr_decay_steps, lr.lr_decay_style, lr.min_decay_lr) == (
        wrote["learning_rate"], wrote["lr_warmup_steps"], wrote["lr_decay_steps"], wrote["lr_decay_style"],
        wrote["min_decay_lr"],
    )  # fmt: skip
    assert config.optimizer.adam_beta2 == 0.95 and config.optimizer.weight_decay == 0.1
    # 0.4 writes it back and reads it again itself (save_as_yaml re-loads the file as a check)
    config.save_as_yaml(tmp_path / "config.yaml")
    assert nt.get_config_from_file(str(tmp_path / "config.yaml")).as_dict() == config.as_dict()


def test_nanotron_0_4_rejects_a_wrongly_typed_shared_field(nt, stage_yaml):
    import dacite

    doc = _down_to_0_4(yaml.safe_load(stage_yaml.read_text()))
    doc["tokens"]["train_steps"] = "12 steps"
    with pytest.raises(dacite.WrongTypeError, match="tokens.train_steps"):
        nt.get_config_from_dict(doc)


def _tp2_pairs(name: str, shape: tuple[int, ...], rank: int, cfg: dict):
    """nanotron's tp=2 layout of a parameter: (local, global) slice pairs of rank ``rank``."""
    from nanotron.parallel.parameters import SlicesPair

    full = slice(None)
    if name.endswith(("o_proj", "down_proj")):  # row parallel: split the input dimension
        w = shape[1] // 2
        return (SlicesPair((full, slice(0, w)), (full, slice(rank * w, (rank + 1) * w))),)
    if name.endswith("qkv_proj"):
        d = cfg["hidden_size"] // cfg["num_attention_heads"]
        chunks = [
            cfg["num_attention_heads"] * d,
            cfg["num_key_value_heads"] * d,
            cfg["num_key_value_heads"] * d,
        ]
    elif name.endswith("gate_up_proj"):
        chunks = [cfg["intermediate_size"]] * 2
    else:  # embeddings, lm_head: split the vocabulary
        chunks = [shape[0]]
    pairs, local, start = [], 0, 0
    for c in chunks:  # column parallel: each fused chunk is split in halves
        h = c // 2
        pairs.append(
            SlicesPair(
                (slice(local, local + h), full), (slice(start + rank * h, start + (rank + 1) * h), full)
            )
        )
        local, start = local + h, start + c
    return tuple(pairs)


def test_converted_checkpoint_reads_and_reshards_with_nanotron_0_4(nt, tmp_path):
    import json

    from nanotron.parallel.parameters import ShardedInfo
    from nanotron.serialize.metadata import TensorMetadata
    from nanotron.serialize.utils import ObjectType, get_path
    from nanotron.serialize.weights import load_sharded_param_latest

    hf_dir = tiny_llama(tmp_path, tied=False)
    ckpt = hf_to_nanotron(hf_dir, tmp_path / "nt")
    cfg = json.loads((ckpt / "model_config.json").read_text())
    hf = load_hf_state(hf_dir)
    files = sorted((ckpt / "model").rglob("*.safetensors"))
    sharded = [f for f in files if "_tp-rank-" in f.name]
    assert (
        len(files) == 2 + 6 * cfg["num_hidden_layers"] + 1
        and len(sharded) == 2 + 4 * cfg["num_hidden_layers"]
    )
    for f in files:
        rel = f.relative_to(ckpt / "model").parent
        name = ".".join(rel.parts) + "." + f.name.split("_")[1].split(".")[0]
        tp = ((0, 1), (0, 1)) if f in sharded else None
        assert Path(*get_path(name, ObjectType.MODEL, tp)) == f.relative_to(ckpt / "model"), f
    for f in sharded:
        with safe_open(str(f), framework="pt") as fh:
            meta, full = TensorMetadata.from_str_dict(fh.metadata()), fh.get_tensor("data")
        assert str(meta.version) == "1.5" and tuple(meta.unsharded_shape) == tuple(full.shape)
        name = f.parent.name
        for rank in (0, 1):
            pairs = _tp2_pairs(name, tuple(full.shape), rank, cfg)
            rows = (
                sum(p.local_slices[0].stop - p.local_slices[0].start for p in pairs)
                if name not in ("o_proj", "down_proj")
                else full.shape[0]
            )
            cols = full.shape[1] // 2 if name in ("o_proj", "down_proj") else full.shape[1]
            buf = torch.zeros(rows, cols)
            info = ShardedInfo(
                global_ranks=(0, 1), local_global_slices_pairs=pairs, unsharded_shape=full.shape
            )
            load_sharded_param_latest(buf, info, [f])
            for p in pairs:
                assert torch.equal(buf[p.local_slices], full[p.global_slices])
    # and the unsharded tensors are the HF weights: q rows first in qkv, embeddings as they were
    qkv = safe_open(
        str(next(f for f in sharded if "decoder/0/" in str(f) and "qkv" in str(f))), "pt"
    ).get_tensor("data")
    assert torch.equal(
        qkv[: hf["model.layers.0.self_attn.q_proj.weight"].shape[0]],
        hf["model.layers.0.self_attn.q_proj.weight"],
    )
