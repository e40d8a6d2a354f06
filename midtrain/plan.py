"""The plan of a mid-training run: steps, stages, batch shape and the learning-rate schedule's boundaries.

Every number the training loop, the nanotron config and the dry run need, derived from a validated
``MidtrainConfig`` (``midtrain.config`` holds only the schema).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from midtrain.checkpoint import find_branch_checkpoint, list_checkpoints
from midtrain.config import MidtrainConfig
from midtrain.schedule import lr_at
from octo.checkpoints import MIDTRAIN
from octo.config import ConfigError


@dataclass(frozen=True)
class StagePlan:
    name: str
    start_step: int  # lineage step of the stage's first optimizer step (0-based)
    steps: int
    weights: dict[str, float]  # source name -> normalised weight
    paths: dict[str, str]

    @property
    def end_step(self) -> int:
        return self.start_step + self.steps


@dataclass(frozen=True)
class Plan:
    """Every number the loop needs: steps are optimizer steps counted over the whole lineage (0-based)."""

    sequence_length: int
    batch_tokens: int
    batch_sequences: int
    start_step: int  # > 0 for a branch that continues another run
    total_steps: int
    stages: tuple[StagePlan, ...]
    warmup_steps: int
    decay_start: int
    decay_steps: int
    decay: str
    peak_lr: float
    min_lr: float

    @property
    def run_steps(self) -> int:
        return self.total_steps - self.start_step

    def stage_at(self, step: int) -> int:
        for i, stage in enumerate(self.stages):
            if step < stage.end_step:
                return i
        return len(self.stages) - 1

    def describe(self) -> str:
        def tok(n: float) -> str:
            for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
                if n >= scale:
                    return f"{n / scale:.4g}{unit}"
            return str(int(n))

        bt = self.batch_tokens
        lines = [
            f"batch: {self.batch_sequences} sequences x {self.sequence_length} tokens = {bt:,} tokens per step",
            f"steps: {self.start_step:,} -> {self.total_steps:,} ({self.run_steps:,} in this run, "
            f"{tok(self.run_steps * bt)} tokens)",
        ]
        for s in self.stages:
            mix = ", ".join(f"{n} {w:.3g}" for n, w in s.weights.items())
            lines.append(
                f"  stage '{s.name}': steps {s.start_step:,}-{s.end_step - 1:,} ({s.steps:,} steps, "
                f"{tok(s.steps * bt)} tokens): {mix}"
            )
        stable_end = self.decay_start
        lines.append(
            f"schedule: peak lr {self.peak_lr:g}; warmup steps 0-{self.warmup_steps} ({tok(self.warmup_steps * bt)} "
            f"tokens); stable to step {stable_end:,} ({tok(stable_end * bt)} tokens); "
            + (
                f"{self.decay} decay over {self.decay_steps:,} steps ({tok(self.decay_steps * bt)} tokens) "
                f"to {self.min_lr:g}"
                if self.decay != "none" and self.decay_steps
                else "no decay"
            )
        )
        probes = sorted(
            {
                self.start_step,
                self.warmup_steps,
                self.decay_start,
                self.total_steps - 1,
                (self.decay_start + self.total_steps) // 2,
            }
        )
        lines.append(
            "lr at steps: "
            + ", ".join(
                f"{p:,}: {lr_at(self, p):.3g}" for p in probes if self.start_step <= p < self.total_steps
            )
        )
        return "\n".join(lines)


def branch_start(config: MidtrainConfig) -> tuple[int, Path | None]:
    """Where a branch starts: (lineage step, checkpoint folder or None when the parent has not got there yet).

    ``branch.at_tokens`` names the step whose batch holds that token (``ceil(at_tokens / batch tokens)``, the same
    rounding as a stage's length); without it the branch starts from the parent's last checkpoint.
    """
    if config.branch is None:
        return 0, None
    bt = config.train.global_batch_tokens
    at = config.branch.at_tokens
    step = None if at is None else math.ceil(at / bt)
    ckpt = find_branch_checkpoint(Path(config.branch.from_run), step)
    if ckpt is not None:
        state = json.loads((ckpt / "trainer_state" / "state.json").read_text())
        if state["batch_tokens"] != bt:
            raise ConfigError(
                f"branch.from_run: {ckpt} was trained with {state['batch_tokens']} tokens per step, this config "
                f"has train.global_batch_tokens={bt}; a branch keeps the batch size"
            )
        return int(state["step"]), ckpt
    if step is None:
        raise ConfigError(
            f"branch.from_run: no checkpoint in {config.branch.from_run}/checkpoints yet; set branch.at_tokens "
            "to plan the branch before its parent has run"
        )
    kept = [p.name for p in list_checkpoints(config.branch.from_run)]
    if kept and MIDTRAIN.step_of(kept[-1]) >= step:
        raise ConfigError(
            f"branch.at_tokens: {config.branch.from_run} has no checkpoint at step {step} (kept: {', '.join(kept)}); "
            "keep it with the parent's train.checkpoint_every / keep_checkpoints"
        )
    return step, None


def make_plan(config: MidtrainConfig, start_step: int | None = None) -> Plan:
    if start_step is None:
        start_step = branch_start(config)[0]
    seq, bt = config.data.sequence_length, config.train.global_batch_tokens
    stages, step = [], start_step
    for name, stage in config.data.stages.items():
        steps = math.ceil(stage.tokens / bt)
        total_weight = sum(s.weight for s in stage.mixture.values())
        stages.append(
            StagePlan(
                name=name,
                start_step=step,
                steps=steps,
                weights={n: s.weight / total_weight for n, s in stage.mixture.items()},
                paths={n: s.path for n, s in stage.mixture.items()},
            )
        )
        step += steps
    total = step
    sched = config.schedule
    warmup = math.ceil(sched.warmup_tokens / bt)
    if sched.decay == "none":
        decay_steps = 0
    elif sched.decay_tokens is None:
        decay_steps = total - warmup
    else:
        decay_steps = math.ceil(sched.decay_tokens / bt)
    decay_start = total - decay_steps
    if decay_start < warmup:
        raise ConfigError(
            f"schedule: warmup ({warmup} steps) and decay ({decay_steps} steps) overlap in a run of {total} steps; "
            "shorten schedule.warmup_tokens or schedule.decay_tokens"
        )
    if decay_start < start_step and decay_steps:
        raise ConfigError(
            f"schedule.decay_tokens: the decay would start at step {decay_start}, before this branch starts "
            f"({start_step}); a branch can only decay over its own steps"
        )
    return Plan(
        sequence_length=seq,
        batch_tokens=bt,
        batch_sequences=bt // seq,
        start_step=start_step,
        total_steps=total,
        stages=tuple(stages),
        warmup_steps=warmup,
        decay_start=decay_start,
        decay_steps=decay_steps,
        decay=sched.decay,
        peak_lr=sched.lr,
        min_lr=sched.lr * sched.min_lr_ratio if sched.decay != "none" else sched.lr,
    )
