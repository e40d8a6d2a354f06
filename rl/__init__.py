"""R1-Zero-style GRPO on math prompts that records the RL dynamics.

The study calls ``run(load("configs/rl/demo.yaml", ["model=PATH", "output_dir=DIR"]))`` in-process; it
returns the ``final/`` model folder (immediately when that run is already complete).
"""

from .config import RLConfig, load


def run(config: RLConfig, **kwargs):
    """Run (or resume, or return) the GRPO run described by ``config``; returns its ``final/`` folder."""
    from .grpo import run as _run  # torch/TRL are imported only when a run starts

    return _run(config, **kwargs)


__all__ = ["RLConfig", "load", "run"]
