"""``run(config) -> final/``: one GRPO run from a base or mid-trained checkpoint, recording its dynamics.

Reads top to bottom: problems -> prompts -> decontamination -> model -> TRL GRPOTrainer -> step-0
validation -> train (resuming from the last checkpoint) -> ``final/`` + manifest. A finished run returns at
once; an interrupted one resumes from its last checkpoint (rows logged after that checkpoint are dropped and
written again).

Output folder (``output_dir``)::

    manifest.json          resolved config, versions, inputs, counts, wall time (status running/complete)
    config.yaml            the resolved config
    prompts.jsonl          the RL prompts after decontamination {id, question, answer, prompt}
    decontamination.json   what the prompts were checked against and what was dropped
    metrics.jsonl          one row per RL step (docs/rl.md)
    samples.jsonl          one row per completion
    checkpoints/checkpoint-N/   (N counts optimizer updates), the newest ``checkpoint.keep``
    final/                 the trained model + tokenizer (HF format)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

from octo.checkpoints import CHECKPOINTS, FINAL, TRL, finished_final, latest_checkpoint
from octo.config import ConfigError, dump_config
from octo.jsonl import append_jsonl, read_jsonl, write_jsonl
from octo.manifest import config_hash, read_manifest, write_manifest
from octo.procs import run_lock
from octo.tracking import Tracker
from octo.tracking import start as start_tracking

from .config import RLConfig
from .dynamics import metrics_row
from .prompts import decontaminate, load_items
from .rewards import check_names
from .templates import render


def _truncate_logs(out: Path, last_step: int) -> None:
    """Drop metrics/samples rows after ``last_step`` (they are produced again on resume)."""
    for name in ("metrics.jsonl", "samples.jsonl"):
        path = out / name
        if path.is_file():
            write_jsonl(path, (r for r in read_jsonl(path, torn_tail=True) if r["step"] <= last_step))


def _check_output_dir(cfg: RLConfig, out: Path) -> None:
    manifest = read_manifest(out)
    if manifest and manifest.get("config_hash") != config_hash(cfg):
        raise ConfigError(
            f"output_dir {out} holds a run with a different config (hash {manifest.get('config_hash')}); "
            "use another output_dir or delete that folder"
        )


def _check_processes(cfg: RLConfig) -> None:
    """Refuse, before anything is written, what a multi-process (torchrun, DDP) run cannot do."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and cfg.trainer.rollout_engine == "vllm":
        raise ConfigError(
            f"trainer.rollout_engine=vllm runs one engine per run, not one per process ({world_size} processes "
            "here): use trainer.rollout_engine=octo (or trainer.use_vllm with vllm_mode=server on GPUs)"
        )
    if world_size > 1 and cfg.trainer.stop_without_signal:
        raise ConfigError(
            f"trainer.stop_without_signal is decided from the first process's rollouts and would stop only that "
            f"one of the {world_size} processes here: set it to 0 in a multi-process run"
        )


def run(cfg: RLConfig, callbacks=()) -> Path:
    """Run GRPO as configured; returns the ``final/`` model folder."""
    if not cfg.model:
        raise ConfigError("RL config: 'model' is not set (give --model PATH or model=PATH)")
    if not Path(cfg.model).is_dir() and (
        os.environ.get("HF_HUB_OFFLINE") == "1" or cfg.model.startswith(("/", "."))
    ):
        raise ConfigError(
            f"RL config: model {cfg.model} is not a checkpoint folder (a hub id needs hub access)"
        )
    check_names(cfg.reward.funcs)
    _check_processes(cfg)
    out = Path(cfg.output_dir)
    if (final := finished_final(out, cfg)) is not None:
        print(f"[rl] {out} is complete; nothing to do")
        return final
    _check_output_dir(cfg, out)
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:
        dump_config(cfg, out / "config.yaml")

    import torch

    t = cfg.trainer
    threads = torch.get_num_threads()
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)
    try:
        with run_lock(out):  # one run at a time in a folder; its children die with it
            return _train(cfg, out, started, callbacks)
    finally:
        torch.set_num_threads(threads)  # the study runs every stage in one process: leave its setting alone


def _prompts(cfg: RLConfig, out: Path, tokenizer, main: bool):
    """RL items (decontaminated, rendered with the run's template), the validation items and the renderer.

    The run seed shifts generated problems; validation sets stay fixed across seeds.
    """

    def fmt(question: str) -> str:
        return render(cfg.template.name, question, tokenizer, cfg.template.system_prompt)

    validation_items = {v.name: load_items(v) for v in cfg.validation.sets}
    items = load_items(cfg.prompts, seed_offset=cfg.seed if cfg.prompts.source == "reasoning_gym" else 0)
    items, report = decontaminate(items, cfg.prompts.decontaminate, validation_items)
    if main:
        (out / "decontamination.json").write_text(json.dumps(report, indent=2) + "\n")
    if report["contaminated"] and main:
        print(f"[rl] decontamination: {report['contaminated']} of {report['prompts']} prompts appear in evaluation "
              f"sets ({cfg.prompts.decontaminate.action}); see {out / 'decontamination.json'}")  # fmt: skip
    if len(items) < cfg.trainer.prompts_per_step:
        raise ConfigError(
            f"only {len(items)} RL prompts left after decontamination; need >= {cfg.trainer.prompts_per_step}"
        )
    for item in items:
        item["prompt"] = fmt(item["question"])
    if main:
        write_jsonl(out / "prompts.jsonl", items)
    return items, report, validation_items, fmt


def _resume_point(out: Path, per_step: int, main: bool) -> tuple[Path | None, int]:
    """The newest complete checkpoint and the RL steps it holds; rows logged after it are produced again."""
    resume = latest_checkpoint(out / CHECKPOINTS, TRL)  # TRL names them; a cut one has no trainer state
    done = int(resume.name.split("-")[1]) // per_step if resume is not None else 0
    if resume is not None and main:
        print(f"[rl] resuming from {resume} (RL step {done})")
        _truncate_logs(out, done)
    elif main:
        for name in ("metrics.jsonl", "samples.jsonl"):
            (out / name).unlink(missing_ok=True)
    return resume, done


def _validator(cfg: RLConfig, validation_items: dict, fmt, tokenizer):
    from .validation import Validator  # torch/transformers: only when validation is on

    if not (cfg.validation.sets and (cfg.validation.every or cfg.validation.at_start)):
        return None
    return Validator(
        validation_items,
        {name: [fmt(x["question"]) for x in v] for name, v in validation_items.items()},
        tokenizer,
        stop_strings=cfg.template.stop_strings,
        max_new_tokens=cfg.validation.max_new_tokens,
        batch_size=cfg.validation.batch_size,
        require_boxed=cfg.reward.require_boxed,
    )


def _train(cfg: RLConfig, out: Path, started: float, callbacks) -> Path:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from transformers.trainer_utils import set_seed

    # rl.trainer imports TRL at module level: only when a run starts
    from .trainer import DynamicsCallback, OctoGRPOTrainer, Recorder, grpo_args, updates_per_step

    t = cfg.trainer
    main = int(os.environ.get("RANK", "0")) == 0  # with several processes, only the first writes files
    set_seed(cfg.seed)
    random.seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    items, report, validation_items, fmt = _prompts(cfg, out, tokenizer, main)
    dataset = Dataset.from_list(
        [{"prompt": x["prompt"], "answer": x["answer"], "prompt_id": x["id"]} for x in items]
    )
    # Model. TRL loads a path itself, but loading here keeps dtype and the pad token under our control.
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.bfloat16 if t.bf16 else torch.float32)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id

    per_step = updates_per_step(cfg)
    resume, done = _resume_point(out, per_step, main)
    if main:
        write_manifest(
            out, stage="rl", config=cfg, inputs={"model": cfg.model}, started=started, status="running"
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    args = grpo_args(cfg, out / "checkpoints", world_size=world_size, use_cpu=not torch.cuda.is_available())
    recorder = Recorder(cfg, out / "samples.jsonl" if cfg.write_samples else None)
    validator = _validator(cfg, validation_items, fmt, tokenizer)
    tracker = start_tracking(cfg.tracking, run_name=f"rl/{out.name}", config=cfg, output_dir=out,
                             resume_step=done or None) if main else Tracker([])  # fmt: skip
    dynamics = DynamicsCallback(cfg, recorder, out / "metrics.jsonl", validator, started, tracker)
    trainer = OctoGRPOTrainer(
        model=model,
        reward_funcs=[recorder.as_reward_function()],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[dynamics, *callbacks],
        stop_strings=cfg.template.stop_strings,
        length_schedule=t.max_completion_at,
        steps_per_rl_step=per_step,
        rollout_engine=t.rollout_engine,
        vllm_max_model_len=t.vllm_max_model_length,
    )
    trainer.remove_callback(PrinterCallback)  # our progress lines replace the per-update log dicts
    recorder.trainer = trainer

    if resume is None and validator is not None and cfg.validation.at_start and main:
        append_jsonl(out / "metrics.jsonl", row := metrics_row(0, extra=validator(model)))
        tracker.log(row)
    print(
        f"[rl] {cfg.model} -> {out}: {t.steps} steps x {t.prompts_per_step} prompts x {t.num_generations} "
        f"rollouts, {t.updates_per_step} update(s)/step, {len(items)} prompts, template {cfg.template.name}",
        flush=True,
    )
    with tracker:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return _finish(cfg, out, trainer, tokenizer, {"prompts": len(items), "prompts_contaminated":
                   report["contaminated"]}, started, main)  # fmt: skip


def _finish(cfg: RLConfig, out: Path, trainer, tokenizer, counts: dict, started: float, main: bool) -> Path:
    """final/: the model and tokenizer in HF format, written atomically; then the manifest with the summary."""
    from .trainer import updates_per_step

    final, checkpoints, tmp = out / FINAL, out / "checkpoints", out / (FINAL + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # collective under DeepSpeed/FSDP; writes on the main process only
    if not main:
        return final
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()  # TRL creates its output folder even when no checkpoint is saved

    rows = list(read_jsonl(out / "metrics.jsonl", torn_tail=True))
    counts = {
        "steps": trainer.state.global_step // updates_per_step(cfg),  # fewer when stopped without signal
        "steps_planned": cfg.trainer.steps,
        "optimizer_updates": trainer.state.global_step,
        **counts,
        "completions": sum(r.get("completions") or 0 for r in rows),
    }
    summary = _summary(rows)
    write_manifest(out, stage="rl", config=cfg, inputs={"model": cfg.model}, counts=counts, started=started,
                   extra={"summary": summary}, status="complete")  # fmt: skip
    print(f"[rl] done in {time.time() - started:.1f} s: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    return final


def _summary(rows: list[dict]) -> dict:
    """First-10 vs last-10 step means of reward and accuracy, and the last validation."""
    train = [r for r in rows if r.get("reward_mean") is not None]

    def mean(rs, key):
        vals = [r[key] for r in rs if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    out = {
        "reward_first10": mean(train[:10], "reward_mean"),
        "reward_last10": mean(train[-10:], "reward_mean"),
        "accuracy_first10": mean(train[:10], "accuracy"),
        "accuracy_last10": mean(train[-10:], "accuracy"),
    }
    val_rows = [r for r in rows if any(k.startswith("val/") for k in r)]
    if val_rows:
        out.update({k: v for k, v in val_rows[-1].items() if k.endswith("/acc")})
    return out
