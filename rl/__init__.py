"""R1-Zero-style GRPO on math prompts that records the RL dynamics.

The study calls ``run(load("configs/rl/demo.yaml", ["model=PATH", "output_dir=DIR"]))`` in-process; it
returns the ``final/`` model folder (immediately when that run is already complete). ``dry_run(config)``
describes the run without loading anything.
"""

from pathlib import Path

from .config import RLConfig
from .config import load as load_config
from .grpo import run as _run
from .rewards import check_names


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RLConfig:
    """Load ``configs/rl/<x>.yaml`` with dotted overrides; registry names (``reward.funcs``) are checked here,
    so a dry run catches a typo instead of the run failing later."""
    config = load_config(path, overrides)
    check_names(config.reward.funcs, where=str(path))
    return config


def dry_run(config: RLConfig) -> str:
    """The run as text (model, steps x prompts x rollouts, generated-token bound, prompts, reward, validation),
    from the validated config alone: no model, tokenizer or prompt is loaded."""
    t = config.trainer
    generated = sum(
        t.prompts_per_step * t.num_generations * t.max_completion_at(s) for s in range(1, t.steps + 1)
    )
    prompts = config.prompts
    where = prompts.path or prompts.dataset or ""
    sets = ", ".join(s.name for s in config.validation.sets)
    validation = (
        f"every {config.validation.every} steps on {sets}" if config.validation.every and sets else "off"
    )
    return "\n".join([
        f"GRPO from {config.model or '(no model: set model=PATH or --model)'} -> {config.output_dir}",
        f"  {t.steps} steps x {t.prompts_per_step} prompts x {t.num_generations} rollouts, "
        f"<= {generated / 1e6:,.2f}M generated tokens (rollouts: {t.rollout_engine})",
        f"  prompts: {prompts.source}{' ' + where if where else ''}; template: {config.template.name}; "
        f"reward: {', '.join(config.reward.funcs)}",
        f"  validation: {validation}; checkpoints: "
        + (f"every {config.checkpoint.every} steps" if config.checkpoint.every else "final/ only"),
    ])  # fmt: skip


def run(config: RLConfig, **kwargs):
    """Run (or resume, or return) the GRPO run described by ``config``; returns its ``final/`` folder."""
    return _run(config, **kwargs)


__all__ = ["RLConfig", "load", "dry_run", "run"]
