"""The embedded backend: continued pre-training with PyTorch + transformers (CPU, or GPUs through accelerate).

``run(config)`` reads top to bottom: skip a finished run; pick where to start (its own last checkpoint, a
parent run's checkpoint for a decay branch, or the base model); open the token sources; train step by step
(gradient accumulation to the global batch, clipping, the schedule's lr, bf16 autocast where the device has
it); log ``metrics.jsonl``; checkpoint; write ``final/`` (an HF folder with tokenizer), the plot and the
manifest.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from midtrain.checkpoint import (
    clean_partial,
    latest_checkpoint,
    load_trainer_state,
    read_state,
    rows_until,
    save_checkpoint,
    set_rng_state,
)
from midtrain.config import MidtrainConfig, identity
from midtrain.data import Mixture, find_shards, open_sources
from midtrain.plan import branch_start, make_plan
from midtrain.schedule import lr_at
from octo.config import ConfigError, dump_config, load_raw
from octo.jsonl import append_jsonl, read_jsonl, write_jsonl
from octo.manifest import is_complete, write_manifest
from octo.procs import run_lock
from octo.progress import bar as progress_bar
from octo.tracking import Tracker
from octo.tracking import start as start_tracking

METRICS = "metrics.jsonl"
PLOT = "metrics.png"


def log(message: str) -> None:
    print(f"[midtrain] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- setup helpers
def resolve_base(spec: str) -> str:
    """'smollm2' / 'smollm2:N' -> the offline SmolLM2 folder; a folder -> itself; anything else: a hub id."""
    from octo import assets

    if spec == "smollm2":
        return str(assets.smollm2_path())
    if spec.startswith("smollm2:"):
        return str(assets.smollm2_path(int(spec.split(":", 1)[1])))
    if Path(spec).is_dir():
        if not (Path(spec) / "config.json").is_file():
            raise ConfigError(f"model.base: {spec} has no config.json (not an HF model folder)")
        return spec
    if os.environ.get("HF_HUB_OFFLINE") == "1" or "/" not in spec:
        raise ConfigError(f"model.base: '{spec}' is not a folder (and not a hub id reachable offline)")
    return spec  # a hub id: from_pretrained downloads it


def cpu_threads(requested: int | None) -> int:
    if requested:
        return requested
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def make_accelerator(precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    bf16 = precision == "bf16" or (
        precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )
    mixed = "bf16" if bf16 else "no"
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed:
        AcceleratorState._reset_state()  # one process may run several stages with different precision
    # launched as several processes without GPUs (torchrun / accelerate launch on CPU): data parallel over gloo.
    # Without cpu=True accelerate would start each process as its own single-process run on the same folder.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(mixed_precision=mixed, cpu=world > 1 and not torch.cuda.is_available())
    if accelerator.num_processes != world:
        raise RuntimeError(f"launched as {world} processes but accelerate sees {accelerator.num_processes}")
    return accelerator


def release_accelerator() -> None:
    """Forget accelerate's process-wide state, so later stages in the same process (RL, eval) set their own."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def make_optimizer(model, config: MidtrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms and biases (1-d parameters)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    o = config.optim
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.schedule.lr,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
    )


def check_same_run(out: Path, config: MidtrainConfig) -> None:
    """A folder holds one run: refuse to continue it with a config that trains something else."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    old = identity(MidtrainConfig.model_validate(load_raw(saved)))
    new = identity(config)
    if old == new:
        return

    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    a, b = dict(flat(old)), dict(flat(new))
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    raise ConfigError(
        f"output_dir {out} holds a run with another config (changed: {', '.join(changed)}); "
        "use a new output_dir or remove the old run"
    )


# ----------------------------------------------------------------------------------------------- the run
def run(config: MidtrainConfig) -> Path:
    """Train as configured and return the ``final/`` HF folder; a finished run returns at once, a broken one resumes."""
    out = Path(config.output_dir)
    final_dir = out / "final"
    if is_complete(out, config) and (final_dir / "config.json").is_file():
        log(f"{config.name}: already complete -> {final_dir}")
        return final_dir
    check_same_run(out, config)
    started = time.time()
    with run_lock(out):  # one run at a time in a folder (rank 0 holds it for all ranks); children die with it
        accelerator = make_accelerator(config.train.precision)
        try:
            # under a multi-process launch, every process reads the folder first, then only the main one writes it
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                clean_partial(out)
                dump_config(config, out / "config.yaml")
            accelerator.wait_for_everyone()
            return _train(config, accelerator, out, started)
        finally:
            release_accelerator()


def _train(config: MidtrainConfig, accelerator, out: Path, started: float) -> Path:
    final_dir = out / "final"
    main = accelerator.is_main_process
    if accelerator.device.type == "cpu":  # processes on one machine share its cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(config.train.num_threads or max(1, cpu_threads(None) // local))

    for stage_name, stage in config.data.stages.items():  # fail on a missing folder before loading a model
        for name, src in stage.mixture.items():
            find_shards(src.path, f"data.stages.{stage_name}.mixture.{name}.path")

    # --- where to start: our own last checkpoint, a parent run's checkpoint (branch), or the base model
    resume = latest_checkpoint(out)
    optim_state = rng = None
    data_state: dict = {}
    if resume is not None:
        state, optim_state, rng = load_trainer_state(resume)
        plan = make_plan(config, start_step=state["run_start_step"])
        weights_from, step, data_state = resume, state["step"], state["data"]
        log(f"{config.name}: resuming from {resume} (step {step:,} of {plan.total_steps:,})")
    elif config.branch is not None:
        start_step, parent = branch_start(config)
        if parent is None:
            raise ConfigError(
                f"branch.from_run: {config.branch.from_run} has no checkpoint at step {start_step} yet (run it first)"
            )
        state, optim_state, rng = load_trainer_state(parent)
        plan = make_plan(config, start_step=start_step)
        weights_from, step = parent, start_step
        data_state = {"streams": state["data"]["streams"]}  # continue the parent's streams, not its stages
        log(f"{config.name}: branching from {parent} at step {step:,}")
    else:
        plan = make_plan(config, start_step=0)
        step = 0
        if config.model.tiny is not None:
            from octo.tiny import build_from_config

            weights_from = out / "init"
            if main and not (weights_from / "config.json").is_file():
                build_from_config(config.model.tiny, weights_from)
            accelerator.wait_for_everyone()
        else:
            weights_from = resolve_base(config.model.base)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights_from))
    dtype = torch.bfloat16 if config.model.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(weights_from), dtype=dtype)
    vocab = model.config.vocab_size
    eos_id = config.data.eos_token_id if config.data.eos_token_id is not None else tokenizer.eos_token_id
    if eos_id is None:
        raise ConfigError(f"data.eos_token_id: the tokenizer of {weights_from} has no EOS token; set it")

    sources = open_sources(
        plan,
        eos_token_id=eos_id,
        eos=config.data.eos,
        shuffle=config.data.shuffle,
        seed=config.seed,
        vocab_size=vocab,
    )
    mixture = Mixture(plan, sources, data_state)
    for name, src in sources.items():
        log(
            f"source '{name}': {src.documents:,} documents, {src.epoch_tokens:,} tokens per epoch "
            f"({src.token_size} bytes/token, EOS {'added' if src.insert_eos else 'already present'})"
        )

    world, rank = accelerator.num_processes, accelerator.process_index
    micro = config.train.micro_batch_size
    if plan.batch_sequences % (micro * world):
        raise ConfigError(
            f"train.micro_batch_size: {plan.batch_sequences} sequences per step do not split into "
            f"{world} devices x {micro} sequences"
        )
    accum = plan.batch_sequences // (micro * world)
    if world > 1:
        log(f"data parallel: {world} processes x {accum} micro-batches of {micro} sequences per step")
    optimizer = make_optimizer(model, config)
    if optim_state is not None:
        optimizer.load_state_dict(optim_state)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    if rng is not None:
        set_rng_state(rng)
    else:
        torch.manual_seed(config.seed)

    metrics_path = out / METRICS
    if main:
        # keep only what the checkpoint we start from had logged (a killed run may have logged further)
        write_jsonl(metrics_path, rows_until(metrics_path, step))
        write_manifest(
            out,
            stage="midtrain",
            config=config,
            inputs=_inputs(config, weights_from),
            started=started,
            status="running",
        )

    log(plan.describe())
    tracker = start_tracking(config.tracking, run_name=config.name, config=config, output_dir=out,
                             resume_step=step or None) if main else Tracker([])  # fmt: skip
    stage_ends = {s.end_step for s in plan.stages}
    every = config.train.checkpoint_every
    bt, seq = plan.batch_tokens, plan.sequence_length
    loss_sum = torch.zeros((), device=accelerator.device)
    grad_norm = None
    since, t_log, data_s, train_start = 0, time.perf_counter(), 0.0, time.perf_counter()
    bar = progress_bar(
        plan.run_steps,
        initial=step - plan.start_step,
        disable=not (main and config.train.progress),
        desc=config.name,
    )
    while step < plan.total_steps:
        lr = lr_at(plan, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        batch = torch.from_numpy(mixture.batch(step, rank, world)).to(accelerator.device, non_blocking=True)
        data_s += time.perf_counter() - t0
        for i in range(accum):
            part = batch[i * micro : (i + 1) * micro]
            sync = contextlib.nullcontext() if i == accum - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                logits = model(input_ids=part[:, :-1]).logits
                loss = (
                    F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), part[:, 1:].reshape(-1))
                    / accum
                )
            accelerator.backward(loss)
            loss_sum += loss.detach()
        if config.optim.clip_grad:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optim.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        since += 1
        bar.update(1)

        if step % config.train.log_every == 0 or step in stage_ends:
            loss_avg = accelerator.reduce(loss_sum, reduction="mean").item() / since
            now = time.perf_counter()
            row = {
                "step": step,
                "tokens": step * bt,
                "loss": round(loss_avg, 5),
                "lr": lr,
                "tokens_per_s": round(since * bt / (now - t_log), 1),
                "grad_norm": round(float(grad_norm), 4) if grad_norm is not None else None,
                "stage": plan.stages[plan.stage_at(step - 1)].name,
                "data_s": round(data_s, 4),
                "elapsed_s": round(now - train_start, 2),
                **{f"tokens/{n}": c * seq for n, c in mixture.run_counts.items()},
            }
            if main:
                append_jsonl(metrics_path, row)
                tracker.log(row)
            bar.set_postfix(
                loss=f"{loss_avg:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False
            )
            if not math.isfinite(loss_avg):
                raise FloatingPointError(
                    f"{config.name}: loss is {loss_avg} at step {step}; lower schedule.lr"
                )
            loss_sum.zero_()
            since, t_log, data_s = 0, now, 0.0
        if step in stage_ends:
            _log_stage(plan, mixture, step)
        if (every and step % every == 0) or step in stage_ends:
            if main:
                state = {
                    "name": config.name,
                    "step": step,
                    "tokens": step * bt,
                    "batch_tokens": bt,
                    "run_start_step": plan.start_step,
                    "data": mixture.state,
                }
                save_checkpoint(
                    out,
                    step,
                    model=accelerator.unwrap_model(model),
                    tokenizer=tokenizer,
                    optimizer=optimizer,
                    state=state,
                    keep=config.train.keep_checkpoints,
                )
            accelerator.wait_for_everyone()
    bar.close()
    tracker.finish()
    train_s = time.perf_counter() - train_start

    # --- final/: the HF folder the RL and eval stages load
    if main:
        tmp = out / "final.tmp"
        unwrapped = accelerator.unwrap_model(model)
        if config.model.save_dtype == "bfloat16":
            unwrapped = unwrapped.to(torch.bfloat16)
        unwrapped.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if final_dir.exists():
            import shutil

            shutil.rmtree(final_dir)
        tmp.rename(final_dir)
        from midtrain.plot import plot_metrics

        rows = list(read_jsonl(metrics_path, torn_tail=True))
        plot_metrics(rows, out / PLOT, title=config.name)
        write_manifest(
            out,
            stage="midtrain",
            config=config,
            inputs=_inputs(config, weights_from),
            counts=_counts(plan, mixture, sources, rows, train_s),
            started=started,
        )
        log(f"{config.name}: done in {time.time() - started:.0f} s -> {final_dir}")
    accelerator.wait_for_everyone()
    return final_dir


def _inputs(config: MidtrainConfig, weights_from) -> dict:
    """Input paths for the manifest: where the weights came from (base, init, parent or own checkpoint) and the data."""
    inputs = {"weights": str(weights_from)} if Path(str(weights_from)).exists() else {}
    if config.model.base and Path(config.model.base).is_dir() and str(weights_from) != config.model.base:
        inputs["base"] = config.model.base
    for stage in config.data.stages.values():
        for name, src in stage.mixture.items():
            inputs[f"data/{name}"] = src.path
    return inputs


def _log_stage(plan, mixture: Mixture, step: int) -> None:
    stage = plan.stages[plan.stage_at(step - 1)]
    counts = mixture.stages[stage.name]
    total = sum(counts.values()) or 1
    share = ", ".join(f"{n} {c / total:.4f} (target {stage.weights[n]:.4f})" for n, c in counts.items())
    log(f"stage '{stage.name}' done at step {step:,}: token share {share}")


def _counts(plan, mixture: Mixture, sources, rows, train_s: float) -> dict:
    seq = plan.sequence_length
    run_total = sum(mixture.run_counts.values()) or 1
    return {
        "steps": plan.run_steps,
        "start_step": plan.start_step,
        "total_steps": plan.total_steps,
        "tokens": plan.run_steps * plan.batch_tokens,
        "lineage_tokens": plan.total_steps * plan.batch_tokens,
        "tokens_by_source": {n: c * seq for n, c in mixture.run_counts.items()},
        "share_by_source": {n: round(c / run_total, 6) for n, c in mixture.run_counts.items()},
        "share_by_stage": {
            stage: {n: round(c / (sum(counts.values()) or 1), 6) for n, c in counts.items()}
            for stage, counts in mixture.stages.items()
        },
        "epochs_by_source": {
            n: round(mixture.streams[n] * sources[n].window / sources[n].epoch_tokens, 3) for n in sources
        },
        "final_loss": rows[-1]["loss"] if rows else None,
        "train_seconds": round(train_s, 2),
    }


def resume_state(run_dir: str | Path) -> dict | None:
    """The trainer state of a run's last checkpoint (for tools and tests)."""
    ckpt = latest_checkpoint(run_dir)
    return read_state(ckpt) if ckpt else None
