"""Lay a midtrain config out for nanotron (GitHub main): one YAML per data stage, plus launch scripts.

nanotron's ``run_train.py`` trains the *last* stage listed in ``data_stages`` and expects a new stage to start
right after a checkpoint (``get_dataloader``: "If you're trying to start a new stage, you need to set
start_training_step to the step after the last stage's"). So stage k gets its own YAML listing stages 1..k,
with ``train_steps`` at the end of stage k and ``resume_checkpoint_path`` at the end of stage k-1; the launch
script runs them in order. A decay branch lists its parent's stages, then its own, and resumes from the
parent's checkpoint (optimizer and step counter included, with its own lr schedule).

Data: nanotron reads datatrove ``.ds`` folders itself (``NanosetDatasetsArgs``). It takes the tokenizer name
from each folder's ``*.ds.metadata`` and loads it with ``AutoTokenizer.from_pretrained``, which fails on a
``tokenizer.json`` file path (what datatrove records for a local tokenizer). When the recorded name is not the
tokenizer this config uses, a *view* folder is written: symlinks to the ``.ds``/``.ds.index`` files and
``.ds.metadata`` files naming the model's tokenizer folder.
"""

from __future__ import annotations

import json
import math
import shlex
import warnings
from pathlib import Path

import yaml

from midtrain.config import MidtrainConfig
from midtrain.convert import NANOTRON_COMMIT, nanotron_model_config
from midtrain.data import find_shards, shard_metadata
from midtrain.nanotron_schema import validate
from midtrain.plan import make_plan
from midtrain.train import resolve_base
from octo.config import ConfigError
from octo.tiny import resolve_tokenizer

INDEX = "plan.json"


def _model(config: MidtrainConfig) -> tuple[dict, str, dict]:
    """(nanotron LlamaConfig dict, tokenizer reference, init_method) for the config's base model."""
    if config.model.tiny is not None:
        from transformers import AutoTokenizer

        tok_dir = resolve_tokenizer(config.model.tiny.tokenizer)
        tok = AutoTokenizer.from_pretrained(str(tok_dir))
        s = config.model.tiny.model
        hf = {
            "hidden_size": s.hidden_size,
            "intermediate_size": s.intermediate_size,
            "num_hidden_layers": s.num_layers,
            "num_attention_heads": s.num_heads,
            "num_key_value_heads": s.num_kv_heads or s.num_heads,
            "max_position_embeddings": s.max_position_embeddings,
            "rope_theta": s.rope_theta,
            "tie_word_embeddings": s.tie_word_embeddings,
            "initializer_range": s.initializer_range,
            "vocab_size": len(tok),
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "rms_norm_eps": 1e-6,
        }
        return nanotron_model_config(hf), str(Path(tok_dir).resolve()), {"std": float(s.initializer_range)}

    base = resolve_base(config.model.base)
    if not Path(base).is_dir():
        raise ConfigError(f"model.base: '{base}' must be a local HF folder to write a nanotron config")
    hf = json.loads((Path(base) / "config.json").read_text())
    try:
        model = nanotron_model_config(hf, config.nanotron.rope_interleaved)
    except ValueError as exc:
        raise ConfigError(f"model.base: {exc}") from None
    if model["rope_scaling"] and not config.nanotron.allow_rope_scaling_drop:
        raise ConfigError(
            f"model.base: {base} uses rope_scaling {model['rope_scaling']}, which nanotron main accepts but "
            "ignores (its Llama applies plain RoPE with rope_theta); the model would train with other position "
            "frequencies than it was pre-trained and will be evaluated with. Set "
            "nanotron.allow_rope_scaling_drop=true to accept that knowingly."
        )
    return model, str(Path(base).resolve()), {}


def _data_folder(path: str, name: str, tokenizer: str, views: Path) -> tuple[str, int]:
    """(folder nanotron should read, bytes per token); writes a view when the metadata names another tokenizer."""
    shards = find_shards(path, f"data source '{name}'")
    recorded, size = shard_metadata(shards[0])
    folder = shards[0].parent.resolve()
    if recorded == tokenizer:
        return str(folder), size
    view = views / name
    view.mkdir(parents=True, exist_ok=True)
    for old in view.iterdir():
        old.unlink()
    for ds in shards:
        for suffix in ("", ".index"):
            (view / f"{ds.name}{suffix}").symlink_to(Path(f"{ds}{suffix}").resolve())
        lines = Path(f"{ds}.metadata").read_text().splitlines()
        lines[0] = f"{tokenizer}|{size}"
        (view / f"{ds.name}.metadata").write_text("\n".join(lines))
    return str(view.resolve()), size


def _eos_in_shards(path: str, eos_id: int, sample: int = 200) -> bool:
    import numpy as np

    ds = find_shards(path)[0]
    _, size = shard_metadata(ds)
    ends = np.fromfile(f"{ds}.index", dtype="<u8", count=sample).astype(np.int64)
    tokens = np.memmap(ds, dtype="<u2" if size == 2 else "<u4", mode="r")
    return bool(len(ends)) and bool(np.all(tokens[ends - 1] == eos_id))


def _stage_entry(
    name: str,
    start: int,
    folders: list[str],
    weights: list[float],
    tokenizer: str,
    size: int,
    vocab: int,
    seq: int,
    seed: int,
) -> dict:
    return {
        "name": name,
        "start_training_step": start,
        "sequence_length": seq,
        "data": {
            "dataset": {
                "dataset_folder": folders,
                "dataset_weights": weights,
                "tokenizer_name": tokenizer,
                "token_size_in_bytes": size,
                "vocab_size": vocab,
                "return_positions": True,
                "shuffle_files": False,
            },
            "seed": seed,
            "num_loading_workers": 1,
        },
    }


def _start(config: MidtrainConfig, out: Path, init: dict | None):
    """Where this run starts: step 0 with the base, or a parent's nanotron checkpoint (a branch).

    Returns (plan, checkpoint to resume from, init method, the parent's data stages, the parent's index).
    """
    if config.branch is None:
        return make_plan(config, start_step=0), None, init or {"path": str(out / "init")}, [], None
    parent_index = Path(config.branch.from_run) / "nanotron" / INDEX
    if not parent_index.is_file():
        raise ConfigError(
            f"branch.from_run: {parent_index} not found; write the parent's nanotron config first "
            "(octo midtrain nanotron-config <parent config>)"
        )
    parent = json.loads(parent_index.read_text())
    if parent["batch_tokens"] != config.train.global_batch_tokens:
        raise ConfigError("train.global_batch_tokens: a branch keeps its parent's batch size")
    start = parent["total_steps"]
    if config.branch.at_tokens is not None:
        start = math.ceil(config.branch.at_tokens / config.train.global_batch_tokens)
        if start != parent["total_steps"] and start % parent["checkpoint_interval"]:
            raise ConfigError(
                f"branch.at_tokens: step {start} is neither the parent's last step ({parent['total_steps']}) "
                f"nor a multiple of its checkpoint interval ({parent['checkpoint_interval']})"
            )
    plan = make_plan(config, start_step=start)
    resume = str(Path(parent["checkpoints_path"]) / str(start))
    return plan, resume, parent["init_method"], parent["data_stages"], parent


def _micro_batch(config: MidtrainConfig, plan) -> int:
    """The micro batch size, after checking that the parallel layout fits the batch and the nodes."""
    nt = config.nanotron
    mbs = nt.micro_batch_size or config.train.micro_batch_size
    if plan.batch_sequences % (mbs * nt.dp):
        raise ConfigError(
            f"nanotron.micro_batch_size: {plan.batch_sequences} sequences per step do not split into "
            f"dp={nt.dp} x {mbs}"
        )
    if nt.dp * nt.tp * nt.pp != nt.nodes * nt.gpus_per_node:
        raise ConfigError(
            f"nanotron: dp*tp*pp = {nt.dp * nt.tp * nt.pp} must equal nodes*gpus_per_node = "
            f"{nt.nodes * nt.gpus_per_node}"
        )
    return mbs


def _stage_folders(stage, tokenizer: str, views: Path, eos_id: int) -> tuple[list[str], int]:
    """The nanotron dataset folders of a stage's sources and their (single) token size in bytes."""
    folders, sizes = [], set()
    for name, path in stage.paths.items():
        folder, size = _data_folder(path, name, tokenizer, views)
        folders.append(folder)
        sizes.add(size)
        if not _eos_in_shards(path, eos_id):
            warnings.warn(
                f"source '{name}': documents in {path} do not end with EOS id {eos_id}; nanotron adds none "
                "(the embedded backend does)",
                stacklevel=3,
            )
    if len(sizes) != 1:
        raise ConfigError(f"stage '{stage.name}': sources mix token sizes {sorted(sizes)}")
    return folders, sizes.pop()


def _lr_scheduler(plan) -> dict:
    return {
        "learning_rate": float(plan.peak_lr),
        "lr_warmup_steps": plan.warmup_steps,
        "lr_warmup_style": "linear" if plan.warmup_steps else "constant",
        "lr_decay_style": plan.decay if plan.decay != "none" else "linear",
        "lr_decay_starting_step": plan.decay_start if plan.decay != "none" else plan.total_steps,
        "lr_decay_steps": plan.decay_steps,
        "min_decay_lr": float(plan.min_lr),
    }


def _optimizer(config: MidtrainConfig, plan) -> dict:
    return {
        "optimizer_factory": {
            "name": "adamW",
            "adam_beta1": float(config.optim.beta1),
            "adam_beta2": float(config.optim.beta2),
            "adam_eps": float(config.optim.eps),
            "torch_adam_is_fused": True,
        },
        "zero_stage": config.nanotron.zero_stage,
        "weight_decay": float(config.optim.weight_decay),
        "clip_grad": float(config.optim.clip_grad) if config.optim.clip_grad else None,
        "accumulate_grad_in_fp32": True,
        "learning_rate_scheduler": _lr_scheduler(plan),
    }


def _parallelism(nt) -> dict:
    return {
        "dp": nt.dp,
        "tp": nt.tp,
        "pp": nt.pp,
        "pp_engine": "1f1b",
        "tp_mode": "REDUCE_SCATTER",
        "tp_linear_async_communication": True,
        "recompute_layer": nt.recompute_layer,
        "expert_parallel_size": 1,
        "context_parallel_size": 1,
    }


def _stage_doc(config: MidtrainConfig, plan, stage, run: dict, stages: list[dict]) -> dict:
    """One stage's nanotron config; ``run`` holds model, init, tokenizer, mbs, checkpoints and resume."""
    return {
        "general": {
            "project": "octo-midtrain",
            "run": config.name,
            "seed": config.seed,
            "ignore_sanity_checks": True,
        },
        "parallelism": _parallelism(config.nanotron),
        "model": {
            "model_config": run["model"],
            "init_method": run["init"],
            "dtype": "bfloat16",
            "make_vocab_size_divisible_by": 1,
            "ddp_bucket_cap_mb": 25,
        },
        "tokenizer": {
            "tokenizer_name_or_path": run["tokenizer"],
            "tokenizer_revision": None,
            "tokenizer_max_length": None,
        },
        "checkpoints": {
            "checkpoints_path": run["checkpoints_path"],
            "checkpoint_interval": run["interval"],
            "save_initial_state": False,
            "save_final_state": True,
            "resume_checkpoint_path": run["resume"],
            "load_lr_scheduler": True,
            "load_optimizer": True,
            "checkpoints_path_is_shared_file_system": False,
        },
        "logging": {
            "iteration_step_info_interval": config.train.log_every,
            "log_level": "info",
            "log_level_replica": "info",
        },
        "tokens": {
            "sequence_length": plan.sequence_length,
            "train_steps": stage.end_step,
            "micro_batch_size": run["mbs"],
            "batch_accumulation_per_replica": plan.batch_sequences // (run["mbs"] * config.nanotron.dp),
            "val_check_interval": -1,
            "limit_val_batches": 0,
            "limit_test_batches": 0,
        },
        "optimizer": _optimizer(config, plan),
        "data_stages": [dict(s) for s in stages],
        "profiler": None,
        "lighteval": None,
    }


def generate(config: MidtrainConfig, out_dir: str | Path | None = None, launch: bool = False) -> list[Path]:
    """Write the stage YAMLs (validated against the nanotron schema), ``plan.json`` and, with ``launch``, scripts."""
    nt = config.nanotron
    out = Path(out_dir or nt.out_dir or Path(config.output_dir) / "nanotron").resolve()
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, init = _model(config)
    plan, resume, init, previous, parent = _start(config, out, init)
    eos_id = config.data.eos_token_id if config.data.eos_token_id is not None else model["eos_token_id"]
    ckpt_path = str(out / "checkpoints")
    run = {
        "model": model,
        "init": init,
        "tokenizer": tokenizer,
        "mbs": _micro_batch(config, plan),
        "checkpoints_path": ckpt_path,
        "interval": nt.checkpoint_interval or config.train.checkpoint_every or 1000,
    }
    stages, files = list(previous), []
    for k, stage in enumerate(plan.stages, 1):
        folders, size = _stage_folders(stage, tokenizer, out / "data", eos_id)
        stages.append(
            _stage_entry(
                stage.name,
                stage.start_step + 1,
                folders,
                [float(w) for w in stage.weights.values()],
                tokenizer,
                size,
                model["vocab_size"],
                plan.sequence_length,
                config.seed,
            )
        )
        doc = _stage_doc(config, plan, stage, {**run, "resume": resume}, stages)
        try:
            validate(doc)
        except Exception as exc:  # a generator bug, not a user error: say which file
            raise RuntimeError(
                f"generated nanotron config for stage '{stage.name}' fails the schema: {exc}"
            ) from exc
        path = out / f"stage{k}_{stage.name}.yaml"
        header = (
            f"# nanotron config (GitHub main @ {NANOTRON_COMMIT[:12]}) for '{config.name}', stage {k}/"
            f"{len(plan.stages)}: steps {stage.start_step + 1}-{stage.end_step}\n"
            "# written by `octo midtrain nanotron-config`; run with nanotron's run_train.py\n"
        )
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
        files.append(path)
        resume = str(Path(ckpt_path) / str(stage.end_step))

    index = {
        "name": config.name,
        "stage_files": [str(f) for f in files],
        "checkpoints_path": ckpt_path,
        "checkpoint_interval": run["interval"],
        "start_step": plan.start_step,
        "total_steps": plan.total_steps,
        "batch_tokens": plan.batch_tokens,
        "data_stages": stages,
        "init_method": init,
        "tokenizer": tokenizer,
        "final_checkpoint": str(Path(ckpt_path) / str(plan.total_steps)),
        "hf_final": str(Path(config.output_dir).resolve() / "final"),
        "base": None if config.model.tiny is not None or parent is not None else tokenizer,
    }
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    files.append(out / INDEX)
    if launch:
        files += write_launch(config, index, out)
    return files


def write_launch(config: MidtrainConfig, index: dict, out: Path) -> list[Path]:
    """``launch.sh`` (torchrun on this node) and ``launch.sbatch`` (srun + torchrun on Slurm nodes)."""
    nt = config.nanotron
    q = shlex.quote
    convert_in = ""
    init = index["init_method"].get("path")
    if index["base"] and init:
        convert_in = (
            f'[ -f {q(init)}/model_config.json ] || "$OCTO_PYTHON" -m octo midtrain convert hf-to-nanotron '
            f"{q(index['base'])} {q(init)}{' --rope-interleaved' if nt.rope_interleaved else ''}\n"
        )
    convert_out = (
        f'"$OCTO_PYTHON" -m octo midtrain convert nanotron-to-hf {q(index["final_checkpoint"])} '
        f"{q(index['hf_final'])} --tokenizer {q(index['tokenizer'])}\n"
    )

    convert_in = convert_in or "# (a branch or a random init: nothing to convert)\n"

    activate = f"{nt.activate}\n" if nt.activate else ""

    def body(torchrun: str) -> str:
        stages = "".join(
            f'{torchrun} "$NANOTRON_DIR/run_train.py" --config-file {q(f)}\n' for f in index["stage_files"]
        )
        return (
            "set -euo pipefail\n"
            f'NANOTRON_DIR="${{NANOTRON_DIR:-{nt.repo_dir}}}"\n'
            f'OCTO_PYTHON="${{OCTO_PYTHON:-{nt.octo_python}}}"\n'
            '[ -f "$NANOTRON_DIR/run_train.py" ] || { echo "set NANOTRON_DIR to a nanotron checkout" >&2; exit 2; }\n'
            f"# 1. the base model in nanotron's layout (octo environment)\n{convert_in}"
            "# 2. training, one launch per data stage (nanotron environment)\n"
            f"(\n{activate}export CUDA_DEVICE_MAX_CONNECTIONS=1\n{stages})\n"
            f"# 3. back to an HF folder for RL and evaluation (octo environment)\n{convert_out}"
        )

    title = f"# {config.name}: nanotron mid-training ({len(index['stage_files'])} stage launch(es))\n"
    local = out / "launch.sh"
    local.write_text(
        "#!/usr/bin/env bash\n" + title + body(f"torchrun --nproc_per_node={nt.gpus_per_node} --nnodes=1")
    )
    sbatch = out / "launch.sbatch"
    options = [
        f"--job-name=midtrain-{config.name}",
        f"--nodes={nt.nodes}",
        "--ntasks-per-node=1",
        f"--gpus-per-node={nt.gpus_per_node}",
        f"--time={nt.time}",
        f"--output={out}/slurm-%j.out",
    ]
    if nt.partition:
        options.append(f"--partition={nt.partition}")
    options += nt.sbatch_extra
    sbatch.write_text(
        "#!/usr/bin/env bash\n"
        + "".join(f"#SBATCH {o}\n" for o in options)
        + title
        + 'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"\n'
        + body(
            f"srun torchrun --nnodes={nt.nodes} --nproc_per_node={nt.gpus_per_node} "
            '--rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:29500" --rdzv_id="$SLURM_JOB_ID"'
        )
    )
    for f in (local, sbatch):
        f.chmod(0o755)
    return [local, sbatch]
