"""HF ``LlamaForCausalLM`` <-> nanotron checkpoints, with plain torch + safetensors (no nanotron import).

Target: nanotron GitHub main at commit 2411b022a75f (2026-04-07), ``LlamaForTraining`` (``is_llama_config``),
checkpoint version 1.5. Layout of ``<ckpt>/``, as nanotron's ``serialize/weights.py`` writes and reads it:

  model_config.json                    ``dataclasses.asdict(LlamaConfig)``
  checkpoint_metadata.json             version, tp/dp/cp, training metadata (zero steps for a converted model)
  model/model/token_position_embeddings/pp_block/token_embedding/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors
  model/model/decoder/<i>/pp_block/attn/qkv_proj/...        rows [q; k; v]
  model/model/decoder/<i>/pp_block/attn/o_proj/...
  model/model/decoder/<i>/pp_block/mlp/gate_up_proj/...     rows [gate; up]
  model/model/decoder/<i>/pp_block/mlp/down_proj/...
  model/model/decoder/<i>/pp_block/{input,post_attention}_layernorm/model_weight.safetensors   (not sharded)
  model/model/final_layer_norm/pp_block/model_weight.safetensors
  model/model/lm_head/pp_block/model_weight_pp-rank-0-of-1_tp-rank-0-of-1.safetensors   (absent when tied)

Each file holds one tensor under ``"data"``; tensor-parallel ones carry the metadata nanotron's
``TensorMetadata`` parses (``version``, ``local_global_slices_pairs``, ``unsharded_shape``), written here with plain
ints so any tp>1 load can reshard them.

RoPE. nanotron main has two layouts, chosen by ``rope_interleaved`` in the model config. With ``False`` (the
default of main's ``LlamaConfig``, and what this project targets) attention uses the same rotate-half (GPT-NeoX)
RoPE as transformers, so q/k rows are copied unchanged. With ``True`` it rotates interleaved (GPT-J) pairs, and
the rows of every q/k head are permuted from [first half; second half] to [x0, x(d/2), x1, x(d/2+1), ...]
(``--rope-interleaved``). Both are checked numerically in the tests.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from octo.errors import InputError, MissingInputError

NANOTRON_COMMIT = "2411b022a75fb7f7561a1bb4166706da5e1b76de"
CHECKPOINT_VERSION = "1.5"  # nanotron.constants.CHECKPOINT_VERSION at that commit
TP1 = "pp-rank-0-of-1_tp-rank-0-of-1"


# ----------------------------------------------------------------------------------------------- configs
def hf_rope(hf: dict) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling or None) from an HF config (transformers 4 or 5 spelling)."""
    params = hf.get("rope_parameters") or {}
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling")
    if scaling is None and params.get("rope_type", "default") != "default":
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    return float(theta), scaling


def nanotron_model_config(hf: dict, rope_interleaved: bool = False) -> dict:
    """nanotron ``LlamaConfig`` fields (as in ``model_config.json``) for an HF Llama ``config.json`` dict."""
    if hf.get("model_type", "llama") != "llama":
        raise InputError(f"only Llama checkpoints convert (model_type={hf.get('model_type')!r})")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise InputError("nanotron's LlamaForTraining has no attention/MLP biases; this checkpoint uses them")
    heads = hf["num_attention_heads"]
    if hf.get("head_dim") not in (None, hf["hidden_size"] // heads):
        raise InputError(f"head_dim {hf['head_dim']} != hidden_size / heads; nanotron derives it from those")
    theta, scaling = hf_rope(hf)
    eos = hf.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    return {
        "bos_token_id": hf.get("bos_token_id") if hf.get("bos_token_id") is not None else 1,
        "eos_token_id": eos if eos is not None else 2,
        "hidden_act": hf.get("hidden_act", "silu"),
        "hidden_size": hf["hidden_size"],
        "initializer_range": float(hf.get("initializer_range", 0.02)),
        "intermediate_size": hf["intermediate_size"],
        "is_llama_config": True,
        "max_position_embeddings": hf.get("max_position_embeddings", 2048),
        "num_attention_heads": heads,
        "num_hidden_layers": hf["num_hidden_layers"],
        "attention_bias": False,
        "num_key_value_heads": hf.get("num_key_value_heads") or heads,
        "pad_token_id": hf.get("pad_token_id"),
        "pretraining_tp": 1,
        "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "rope_scaling": scaling,
        "rope_theta": theta,
        "rope_interleaved": rope_interleaved,
        "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
        "use_cache": True,
        "vocab_size": hf["vocab_size"],
    }


def hf_config_from_nanotron(nt: dict) -> dict:
    """An HF ``LlamaConfig`` kwargs dict for nanotron ``LlamaConfig`` fields."""
    rope = {"rope_type": "default", "rope_theta": nt["rope_theta"]}
    if nt.get("rope_scaling"):
        rope = {**nt["rope_scaling"], "rope_theta": nt["rope_theta"]}
        rope.setdefault("rope_type", rope.get("type", "default"))
    return {
        "vocab_size": nt["vocab_size"],
        "hidden_size": nt["hidden_size"],
        "intermediate_size": nt["intermediate_size"],
        "num_hidden_layers": nt["num_hidden_layers"],
        "num_attention_heads": nt["num_attention_heads"],
        "num_key_value_heads": nt.get("num_key_value_heads") or nt["num_attention_heads"],
        "hidden_act": nt.get("hidden_act", "silu"),
        "max_position_embeddings": nt["max_position_embeddings"],
        "initializer_range": nt.get("initializer_range", 0.02),
        "rms_norm_eps": nt["rms_norm_eps"],
        "rope_parameters": rope,
        "tie_word_embeddings": nt["tie_word_embeddings"],
        "bos_token_id": nt.get("bos_token_id"),
        "eos_token_id": nt.get("eos_token_id"),
        "pad_token_id": nt.get("pad_token_id"),
        "attention_bias": False,
        "mlp_bias": False,
    }


# ----------------------------------------------------------------------------------------------- RoPE layout
def to_interleaved(w: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rows of each head: [first half; second half] (rotate-half RoPE) -> interleaved pairs (GPT-J RoPE)."""
    return torch.cat(
        [h.view(2, head_dim // 2, -1).transpose(0, 1).reshape(head_dim, -1) for h in w.split(head_dim)]
    )


def from_interleaved(w: torch.Tensor, head_dim: int) -> torch.Tensor:
    return torch.cat(
        [h.view(head_dim // 2, 2, -1).transpose(0, 1).reshape(head_dim, -1) for h in w.split(head_dim)]
    )


# ----------------------------------------------------------------------------------------------- slices metadata
def _slice(s: slice) -> str:
    return ",".join("None" if x is None else str(int(x)) for x in (s.start, s.stop, s.step))


def _pairs(pairs: list[tuple[tuple[slice, ...], tuple[slice, ...]]]) -> str:
    """nanotron's ``SlicesPair.tuple_to_str``: 'local|dims#global|dims' per pair, pairs joined by ';'."""
    return ";".join("|".join(map(_slice, loc)) + "#" + "|".join(map(_slice, glob)) for loc, glob in pairs)


def shard_metadata(shape: tuple[int, ...], split_dim: int, chunks: tuple[int, ...] | None = None) -> dict:
    """Metadata of a tp=1 shard, as nanotron's ``create_sharded_parameter_from_config`` describes it."""
    full = tuple(slice(None) for _ in shape)
    if chunks is None:
        glob = tuple(slice(0, shape[d]) if d == split_dim else slice(None) for d in range(len(shape)))
        pairs = [(full, glob)]
    else:
        pairs, start = [], 0
        for size in chunks:
            s = tuple(
                slice(start, start + size) if d == split_dim else slice(None) for d in range(len(shape))
            )
            pairs.append((s, s))
            start += size
    return {
        "version": CHECKPOINT_VERSION,
        "local_global_slices_pairs": _pairs(pairs),
        "unsharded_shape": str(tuple(int(x) for x in shape)),
    }


def _parse_slice(text: str) -> slice:
    return slice(*(None if x == "None" else int(x) for x in text.split(",")))


def merge_shards(files: list[Path]) -> torch.Tensor:
    """The full tensor from the TP shards of one parameter (any tp size), using their slices metadata."""
    full = None
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            meta, shard = f.metadata() or {}, f.get_tensor("data")
        if "unsharded_shape" not in meta:
            if len(files) != 1:
                raise InputError(f"{path}: several files but no sharding metadata")
            return shard
        shape = tuple(
            int(x.split("(")[-1].rstrip(")"))
            for x in meta["unsharded_shape"].strip("()").split(",")
            if x.strip()
        )
        if full is None:
            full = torch.empty(shape, dtype=shard.dtype)
        for pair in meta["local_global_slices_pairs"].split(";"):
            local, glob = (tuple(map(_parse_slice, half.split("|"))) for half in pair.split("#"))
            full[glob] = shard[local]
    return full


# ----------------------------------------------------------------------------------------------- HF -> nanotron
def load_hf_state(hf_dir: Path) -> dict[str, torch.Tensor]:
    index = hf_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (hf_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise MissingInputError(
            f"{hf_dir}: no model.safetensors (or index); only safetensors checkpoints convert"
        )
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(str(hf_dir / name)))
    return state


def _param_path(root: Path, name: str, sharded: bool) -> Path:
    *parts, leaf = name.split(".")
    suffix = f"_{TP1}" if sharded else ""
    return root.joinpath("model", *parts, f"model_{leaf}{suffix}.safetensors")


def _save(root: Path, name: str, tensor: torch.Tensor, split_dim: int | None = None, chunks=None) -> None:
    path = _param_path(root, name, split_dim is not None)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = shard_metadata(tuple(tensor.shape), split_dim, chunks) if split_dim is not None else None
    save_file({"data": tensor.contiguous()}, str(path), metadata=meta)


def hf_to_nanotron(
    hf_dir: str | Path, out_dir: str | Path, *, rope_interleaved: bool = False, dtype=None
) -> Path:
    """Write a nanotron checkpoint (tp=1, pp=1) for an HF Llama folder; returns ``out_dir``."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    hf = json.loads((hf_dir / "config.json").read_text())
    cfg = nanotron_model_config(hf, rope_interleaved)
    if cfg["rope_scaling"]:
        warnings.warn(
            f"{hf_dir}: rope_scaling {cfg['rope_scaling']} is kept in model_config.json, but nanotron main's "
            "Llama ignores it (plain RoPE with rope_theta)",
            stacklevel=2,
        )
    state = load_hf_state(hf_dir)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    d = cfg["hidden_size"] // cfg["num_attention_heads"]
    nq, nkv, inter = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d, cfg["intermediate_size"]
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _save(
        tmp,
        "model.token_position_embeddings.pp_block.token_embedding.weight",
        state["model.embed_tokens.weight"],
        0,
    )
    for i in range(cfg["num_hidden_layers"]):
        hp, nt = f"model.layers.{i}", f"model.decoder.{i}.pp_block"
        q, k = state[f"{hp}.self_attn.q_proj.weight"], state[f"{hp}.self_attn.k_proj.weight"]
        if rope_interleaved:
            q, k = to_interleaved(q, d), to_interleaved(k, d)
        qkv = torch.cat([q, k, state[f"{hp}.self_attn.v_proj.weight"]])
        _save(tmp, f"{nt}.attn.qkv_proj.weight", qkv, 0, (nq, nkv, nkv))
        _save(tmp, f"{nt}.attn.o_proj.weight", state[f"{hp}.self_attn.o_proj.weight"], 1)
        gate_up = torch.cat([state[f"{hp}.mlp.gate_proj.weight"], state[f"{hp}.mlp.up_proj.weight"]])
        _save(tmp, f"{nt}.mlp.gate_up_proj.weight", gate_up, 0, (inter, inter))
        _save(tmp, f"{nt}.mlp.down_proj.weight", state[f"{hp}.mlp.down_proj.weight"], 1)
        _save(tmp, f"{nt}.input_layernorm.weight", state[f"{hp}.input_layernorm.weight"])
        _save(tmp, f"{nt}.post_attention_layernorm.weight", state[f"{hp}.post_attention_layernorm.weight"])
    _save(tmp, "model.final_layer_norm.pp_block.weight", state["model.norm.weight"])
    if not cfg["tie_word_embeddings"]:
        _save(tmp, "model.lm_head.pp_block.weight", state["lm_head.weight"], 0)
    (tmp / "model_config.json").write_text(
        json.dumps(
            {
                **cfg,
                "_attn_implementation": "flash_attention_2",
                "z_loss_enabled": False,
                "z_loss_coefficient": 0.0001,
            },
            indent=2,
        )
        + "\n"
    )
    metadata = {
        "version": CHECKPOINT_VERSION,
        "tp": 1,
        "dp": 1,
        "cp": 1,
        "custom_metas": {"converted_from": str(hf_dir), "by": "octo midtrain convert"},
        "metas": {
            "consumed_train_samples": 0,
            "consumed_tokens_total": 0,
            "last_train_step": 0,
            "last_stage_idx": 0,
            "data_stages": [],
        },
    }
    (tmp / "checkpoint_metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


# ----------------------------------------------------------------------------------------------- nanotron -> HF
def _load_param(root: Path, name: str) -> torch.Tensor:
    *parts, leaf = name.split(".")
    folder = root.joinpath("model", *parts)
    files = sorted(folder.glob(f"model_{leaf}*.safetensors"))
    if not files:
        raise MissingInputError(f"{root}: no file for parameter {name} in {folder}")
    return merge_shards(files)


def nanotron_to_state(nt_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(nanotron model config, HF state dict) of a nanotron checkpoint folder (any tp/pp)."""
    nt_dir = Path(nt_dir)
    cfg_path = nt_dir / "model_config.json"
    if not cfg_path.is_file():
        raise MissingInputError(
            f"{nt_dir}: no model_config.json (is this a nanotron checkpoint step folder?)"
        )
    cfg = json.loads(cfg_path.read_text())
    d = cfg["hidden_size"] // cfg["num_attention_heads"]
    nq, nkv, inter = (
        cfg["num_attention_heads"] * d,
        (cfg.get("num_key_value_heads") or cfg["num_attention_heads"]) * d,
        cfg["intermediate_size"],
    )
    state = {
        "model.embed_tokens.weight": _load_param(
            nt_dir, "model.token_position_embeddings.pp_block.token_embedding.weight"
        )
    }
    for i in range(cfg["num_hidden_layers"]):
        hp, nt = f"model.layers.{i}", f"model.decoder.{i}.pp_block"
        q, k, v = _load_param(nt_dir, f"{nt}.attn.qkv_proj.weight").split([nq, nkv, nkv])
        if cfg.get("rope_interleaved"):
            q, k = from_interleaved(q, d), from_interleaved(k, d)
        state[f"{hp}.self_attn.q_proj.weight"] = q.contiguous()
        state[f"{hp}.self_attn.k_proj.weight"] = k.contiguous()
        state[f"{hp}.self_attn.v_proj.weight"] = v.contiguous()
        state[f"{hp}.self_attn.o_proj.weight"] = _load_param(nt_dir, f"{nt}.attn.o_proj.weight")
        gate, up = _load_param(nt_dir, f"{nt}.mlp.gate_up_proj.weight").split([inter, inter])
        state[f"{hp}.mlp.gate_proj.weight"], state[f"{hp}.mlp.up_proj.weight"] = (
            gate.contiguous(),
            up.contiguous(),
        )
        state[f"{hp}.mlp.down_proj.weight"] = _load_param(nt_dir, f"{nt}.mlp.down_proj.weight")
        state[f"{hp}.input_layernorm.weight"] = _load_param(nt_dir, f"{nt}.input_layernorm.weight")
        state[f"{hp}.post_attention_layernorm.weight"] = _load_param(
            nt_dir, f"{nt}.post_attention_layernorm.weight"
        )
    state["model.norm.weight"] = _load_param(nt_dir, "model.final_layer_norm.pp_block.weight")
    if not cfg["tie_word_embeddings"]:
        state["lm_head.weight"] = _load_param(nt_dir, "model.lm_head.pp_block.weight")
    return cfg, state


def nanotron_to_hf(
    nt_dir: str | Path, out_dir: str | Path, *, tokenizer: str | Path | None = None, dtype=None
) -> Path:
    """Write an HF Llama folder (config.json, model.safetensors, tokenizer if given) for a nanotron checkpoint."""
    from transformers import LlamaConfig

    cfg, state = nanotron_to_state(nt_dir)
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hf_config = LlamaConfig(**hf_config_from_nanotron(cfg))
    hf_config.architectures = ["LlamaForCausalLM"]
    hf_config.dtype = str(next(iter(state.values())).dtype).removeprefix("torch.")
    hf_config.save_pretrained(tmp)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(tokenizer)).save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
