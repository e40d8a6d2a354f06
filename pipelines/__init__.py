"""Corpus pipelines on datatrove: recipes -> datatrove steps -> executor (local, Slurm, Ray)."""
