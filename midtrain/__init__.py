"""Continued pre-training of Llama checkpoints on weighted corpus mixes, with stable-then-decay schedules.

The study calls it in-process::

    from midtrain import load, run
    final = run(load("configs/midtrain/demo_mathqa.yaml", ["output_dir=runs/demo/midtrain/mathqa", ...]))

``run`` returns the ``final/`` HF folder; a finished run returns at once, an interrupted one resumes.
"""

from midtrain.config import MidtrainConfig, load
from midtrain.plan import make_plan
from midtrain.train import run as _run


def run(config: MidtrainConfig):
    """Train (or resume, or skip when complete) and return the ``final/`` HF folder (a ``Path``)."""
    return _run(config)


def dry_run(config: MidtrainConfig) -> str:
    """The plan (steps, tokens, stages, schedule) as text, without loading a model or data."""
    return make_plan(config).describe()


__all__ = ["MidtrainConfig", "load", "run", "dry_run", "make_plan"]
