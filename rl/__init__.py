"""R1-Zero-style GRPO on math prompts that records the RL dynamics.

The study calls ``run(load("configs/rl/demo.yaml", ["model=PATH", "output_dir=DIR"]))`` in-process; it
returns the ``final/`` model folder (immediately when that run is already complete).
"""

from pathlib import Path

from .config import RLConfig
from .config import load as load_config
from .rewards import check_names


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RLConfig:
    """Load ``configs/rl/<x>.yaml`` with dotted overrides; registry names (``reward.funcs``) are checked here,
    so a dry run catches a typo instead of the run failing later."""
    config = load_config(path, overrides)
    check_names(config.reward.funcs, where=str(path))
    return config


def run(config: RLConfig, **kwargs):
    """Run (or resume, or return) the GRPO run described by ``config``; returns its ``final/`` folder."""
    from .grpo import run as _run  # torch/TRL are imported only when a run starts

    return _run(config, **kwargs)


__all__ = ["RLConfig", "load", "run"]
