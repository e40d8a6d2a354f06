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
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from midtrain.checkpoint import (
    clean_partial,
    latest_checkpoint,
    load_trainer_state,
    rows_until,
    save_checkpoint,
    set_rng_state,
)
from midtrain.config import MidtrainConfig, identity
from midtrain.data import Mixture, find_shards, open_sources
from midtrain.plan import Plan, branch_start, make_plan
from midtrain.plot import plot_metrics
from midtrain.schedule import lr_at
from octo import assets
from octo.checkpoints import FINAL, finished_final
from octo.config import ConfigError, dump_config, load_raw
from octo.errors import StageError
from octo.jsonl import append_jsonl, read_jsonl, write_jsonl
from octo.manifest import write_manifest
from octo.procs import run_lock, usable_cores
from octo.progress import bar as progress_bar
from octo.tiny import build_from_config
from octo.tracking import Tracker
from octo.tracking import start as start_tracking

METRICS = "metrics.jsonl"
PLOT = "metrics.png"


def log(message: str) -> None:
    print(f"[midtrain] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- setup helpers
def resolve_base(spec: str) -> str:
    """'smollm2' / 'smollm2:N' -> the offline SmolLM2 folder; a folder -> itself; anything else: a hub id."""
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
    return requested or usable_cores()


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
        raise StageError(f"launched as {world} processes but accelerate sees {accelerator.num_processes}")
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
    if (final_dir := finished_final(out, config)) is not None:
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


@dataclass
class Start:
    """Where a run starts: its plan, lineage step, the weights to load and the states to restore."""

    plan: Plan
    step: int
    weights_from: Path | str
    optim_state: dict | None = None
    rng: dict | None = None
    data_state: dict = field(default_factory=dict)


def _start(config: MidtrainConfig, out: Path, accelerator) -> Start:
    """Our own last checkpoint, a parent run's checkpoint (a decay branch), or the base model."""
    resume = latest_checkpoint(out)
    if resume is not None:
        state, optim_state, rng = load_trainer_state(resume)
        plan = make_plan(config, start_step=state["run_start_step"])
        log(f"{config.name}: resuming from {resume} (step {state['step']:,} of {plan.total_steps:,})")
        return Start(plan, state["step"], resume, optim_state, rng, state["data"])
    if config.branch is not None:
        start_step, parent = branch_start(config)
        if parent is None:
            raise ConfigError(
                f"branch.from_run: {config.branch.from_run} has no checkpoint at step {start_step} yet (run it first)"
            )
        state, optim_state, rng = load_trainer_state(parent)
        log(f"{config.name}: branching from {parent} at step {start_step:,}")
        # continue the parent's streams, not its stages
        return Start(make_plan(config, start_step=start_step), start_step, parent, optim_state, rng,
                     {"streams": state["data"]["streams"]})  # fmt: skip
    plan = make_plan(config, start_step=0)
    if config.model.tiny is None:
        return Start(plan, 0, resolve_base(config.model.base))
    weights_from = out / "init"
    if accelerator.is_main_process and not (weights_from / "config.json").is_file():
        build_from_config(config.model.tiny, weights_from)
    accelerator.wait_for_everyone()
    return Start(plan, 0, weights_from)


def _load_model(config: MidtrainConfig, weights_from):
    """(tokenizer, model, EOS id) from the starting weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(weights_from))
    dtype = torch.bfloat16 if config.model.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(weights_from), dtype=dtype)
    eos_id = config.data.eos_token_id if config.data.eos_token_id is not None else tokenizer.eos_token_id
    if eos_id is None:
        raise ConfigError(f"data.eos_token_id: the tokenizer of {weights_from} has no EOS token; set it")
    return tokenizer, model, eos_id


def _open_mixture(config: MidtrainConfig, start: Start, eos_id: int, vocab: int):
    sources = open_sources(start.plan, eos_token_id=eos_id, eos=config.data.eos, shuffle=config.data.shuffle,
                           seed=config.seed, vocab_size=vocab)  # fmt: skip
    for name, src in sources.items():
        log(
            f"source '{name}': {src.documents:,} documents, {src.epoch_tokens:,} tokens per epoch "
            f"({src.token_size} bytes/token, EOS {'added' if src.insert_eos else 'already present'})"
        )
    return sources, Mixture(start.plan, sources, start.data_state)


def _accumulation(config: MidtrainConfig, plan: Plan, world: int) -> int:
    micro = config.train.micro_batch_size
    if plan.batch_sequences % (micro * world):
        raise ConfigError(
            f"train.micro_batch_size: {plan.batch_sequences} sequences per step do not split into "
            f"{world} devices x {micro} sequences"
        )
    accum = plan.batch_sequences // (micro * world)
    if world > 1:
        log(f"data parallel: {world} processes x {accum} micro-batches of {micro} sequences per step")
    return accum


def _train(config: MidtrainConfig, accelerator, out: Path, started: float) -> Path:
    main = accelerator.is_main_process
    if accelerator.device.type == "cpu":  # processes on one machine share its cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(config.train.num_threads or max(1, cpu_threads(None) // local))
    for stage_name, stage in config.data.stages.items():  # fail on a missing folder before loading a model
        for name, src in stage.mixture.items():
            find_shards(src.path, f"data.stages.{stage_name}.mixture.{name}.path")

    start = _start(config, out, accelerator)
    plan = start.plan
    tokenizer, model, eos_id = _load_model(config, start.weights_from)
    sources, mixture = _open_mixture(config, start, eos_id, model.config.vocab_size)
    accum = _accumulation(config, plan, accelerator.num_processes)
    optimizer = make_optimizer(model, config)
    if start.optim_state is not None:
        optimizer.load_state_dict(start.optim_state)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    if start.rng is not None:
        set_rng_state(start.rng)
    else:
        torch.manual_seed(config.seed)

    metrics_path = out / METRICS
    if main:
        # keep only what the checkpoint we start from had logged (a killed run may have logged further)
        write_jsonl(metrics_path, rows_until(metrics_path, start.step))
        write_manifest(out, stage="midtrain", config=config, inputs=_inputs(config, start.weights_from),
                       started=started, status="running")  # fmt: skip
    log(plan.describe())
    tracker = start_tracking(config.tracking, run_name=config.name, config=config, output_dir=out,
                             resume_step=start.step or None) if main else Tracker([])  # fmt: skip
    loop = Loop(config, accelerator, out, plan, model, optimizer, tokenizer, mixture, accum, tracker)
    train_s = loop.run(start.step)
    tracker.finish()
    if main:
        _write_final(config, out, accelerator.unwrap_model(model), tokenizer)
        rows = list(read_jsonl(metrics_path, torn_tail=True))
        plot_metrics(rows, out / PLOT, title=config.name)
        write_manifest(out, stage="midtrain", config=config, inputs=_inputs(config, start.weights_from),
                       counts=_counts(plan, mixture, sources, rows, train_s), started=started)  # fmt: skip
        log(f"{config.name}: done in {time.time() - started:.0f} s -> {out / 'final'}")
    accelerator.wait_for_everyone()
    return out / FINAL


@dataclass
class Loop:
    """The optimizer steps from a start step to the plan's end: gradient accumulation, logging, checkpoints."""

    config: MidtrainConfig
    accelerator: Any
    out: Path
    plan: Plan
    model: Any
    optimizer: torch.optim.Optimizer
    tokenizer: Any
    mixture: Mixture
    accum: int
    tracker: Tracker

    def run(self, step: int) -> float:
        """Train to the end of the plan; returns the seconds spent."""
        plan, config = self.plan, self.config
        stage_ends = {s.end_step for s in plan.stages}
        every = config.train.checkpoint_every
        self.loss_sum = torch.zeros((), device=self.accelerator.device)
        self.since, self.t_log, self.data_s = 0, time.perf_counter(), 0.0
        self.train_start = time.perf_counter()
        self.bar = progress_bar(plan.run_steps, initial=step - plan.start_step, desc=config.name,
                                disable=not (self.accelerator.is_main_process and config.train.progress))  # fmt: skip
        while step < plan.total_steps:
            lr = lr_at(plan, step)
            grad_norm = self.step(step, lr)
            step += 1
            self.since += 1
            self.bar.update(1)
            if step % config.train.log_every == 0 or step in stage_ends:
                self.log_row(step, lr, grad_norm)
            if step in stage_ends:
                _log_stage(plan, self.mixture, step)
            if (every and step % every == 0) or step in stage_ends:
                self.checkpoint(step)
        self.bar.close()
        return time.perf_counter() - self.train_start

    def step(self, step: int, lr: float):
        """One optimizer step over the global batch; returns the gradient norm (None without clipping)."""
        acc, micro = self.accelerator, self.config.train.micro_batch_size
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        batch = self.mixture.batch(step, acc.process_index, acc.num_processes)
        batch = torch.from_numpy(batch).to(acc.device, non_blocking=True)
        self.data_s += time.perf_counter() - t0
        for i in range(self.accum):
            part = batch[i * micro : (i + 1) * micro]
            sync = contextlib.nullcontext() if i == self.accum - 1 else acc.no_sync(self.model)
            with sync, acc.autocast():
                logits = self.model(input_ids=part[:, :-1]).logits
                flat = logits.float().reshape(-1, logits.shape[-1])
                loss = F.cross_entropy(flat, part[:, 1:].reshape(-1)) / self.accum
            acc.backward(loss)
            self.loss_sum += loss.detach()
        grad_norm = None
        if self.config.optim.clip_grad:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), self.config.optim.clip_grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def log_row(self, step: int, lr: float, grad_norm) -> None:
        plan, seq, bt = self.plan, self.plan.sequence_length, self.plan.batch_tokens
        loss_avg = self.accelerator.reduce(self.loss_sum, reduction="mean").item() / self.since
        now = time.perf_counter()
        row = {
            "step": step,
            "tokens": step * bt,
            "loss": round(loss_avg, 5),
            "lr": lr,
            "tokens_per_s": round(self.since * bt / (now - self.t_log), 1),
            "grad_norm": round(float(grad_norm), 4) if grad_norm is not None else None,
            "stage": plan.stages[plan.stage_at(step - 1)].name,
            "data_s": round(self.data_s, 4),
            "elapsed_s": round(now - self.train_start, 2),
            **{f"tokens/{n}": c * seq for n, c in self.mixture.run_counts.items()},
        }
        if self.accelerator.is_main_process:
            append_jsonl(self.out / METRICS, row)
            self.tracker.log(row)
        self.bar.set_postfix(
            loss=f"{loss_avg:.3f}", lr=f"{lr:.2e}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False
        )
        if not math.isfinite(loss_avg):
            raise FloatingPointError(
                f"{self.config.name}: loss is {loss_avg} at step {step}; lower schedule.lr"
            )
        self.loss_sum.zero_()
        self.since, self.t_log, self.data_s = 0, now, 0.0

    def checkpoint(self, step: int) -> None:
        if self.accelerator.is_main_process:
            bt = self.plan.batch_tokens
            state = {"name": self.config.name, "step": step, "tokens": step * bt, "batch_tokens": bt,
                     "run_start_step": self.plan.start_step, "data": self.mixture.state}  # fmt: skip
            save_checkpoint(self.out, step, model=self.accelerator.unwrap_model(self.model),
                            tokenizer=self.tokenizer, optimizer=self.optimizer, state=state,
                            keep=self.config.train.keep_checkpoints)  # fmt: skip
        self.accelerator.wait_for_everyone()


def _write_final(config: MidtrainConfig, out: Path, model, tokenizer) -> None:
    """final/: the HF folder the RL and eval stages load, written beside and renamed into place."""
    tmp, final_dir = out / f"{FINAL}.tmp", out / FINAL
    if config.model.save_dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    tmp.rename(final_dir)


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
