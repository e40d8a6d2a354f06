"""Studies end to end: the orchestrator above the four stages (it may import them; they never import it).

The same shape as every stage's: ``load(path, overrides)``, ``dry_run(study)`` (the plan with its status and
compute estimate, every stage config validated), ``run(study)`` (runs or resumes; returns the study folder).
Importing the package stays light: each stage (and its torch, datatrove or lighteval) is imported when its
step runs.
"""

from __future__ import annotations

from study.config import StudyConfig, load
from study.overview import describe
from study.runner import run


def dry_run(study: StudyConfig) -> str:
    """The study's plan as text: steps with status and estimate, the arms, the compute total."""
    return describe(study)


__all__ = ["StudyConfig", "load", "dry_run", "run"]
