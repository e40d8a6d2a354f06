"""Corpus pipelines on datatrove: recipes -> datatrove steps -> executor (local, Slurm, Ray).

The stage's API (the same shape as every stage's)::

    from pipelines import load, dry_run, run
    recipe = load("configs/corpus/demo_qa.yaml", ["output_dir=runs/x"])
    print(dry_run(recipe))  # the stages, validated, nothing read
    folder = run(recipe)  # the corpus folder (a finished build returns at once, a killed one resumes)

Importing the package stays light: datatrove is imported when a recipe is planned or built.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.recipe import CorpusRecipe, load_recipe


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> CorpusRecipe:
    """Load ``configs/corpus/<x>.yaml`` with dotted ``key=value`` overrides."""
    return load_recipe(path, overrides)


def dry_run(recipe: CorpusRecipe, executor: str = "local") -> str:
    """The recipe's stages as text (one line each: tasks and steps), validated without reading data."""
    from pipelines.build import dry_run as plan_stages  # datatrove: only when a recipe is planned

    stages = plan_stages(recipe, executor)
    return "\n".join(
        f"  {stage.name:<20} {stage.tasks:>3} task(s): {' -> '.join(stage.labels)}" for stage in stages
    )


def run(recipe: CorpusRecipe, executor: str = "local", wait: bool = True) -> Path:
    """Build (or resume, or skip when complete) the corpus of ``recipe``; returns its folder."""
    from pipelines.build import build  # datatrove: only when a corpus is built

    return build(recipe, executor=executor, wait=wait)


__all__ = ["CorpusRecipe", "load", "dry_run", "run"]
