"""Evaluation suites on lighteval and the RL-readiness table.

The stage's API (the same shape as every stage's): ``load(path, overrides)`` (also ``load_suite``),
``dry_run(suite)`` (the resolved suite, validated, nothing loaded), ``run(suite, model_path, out_dir, ...)``
(scores a checkpoint; returns the results dict, written to ``out_dir``/results.json), and
``build_readiness(study_dir, **options)``. Importing the package stays light: lighteval, transformers and
torch load only when a suite runs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from eval.config import SuiteConfig, load_suite
from eval.readiness import build_readiness
from eval.runner import run


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SuiteConfig:
    """Load ``configs/eval/<suite>.yaml`` with dotted ``key=value`` overrides."""
    return load_suite(path, overrides)


def dry_run(suite: SuiteConfig) -> str:
    """The resolved suite as YAML (every task and setting after overrides), validated without loading a model."""
    return yaml.safe_dump(suite.model_dump(mode="json"), sort_keys=False)


__all__ = ["SuiteConfig", "load", "load_suite", "dry_run", "run", "build_readiness"]
