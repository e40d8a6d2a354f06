"""Evaluation suites on lighteval and the RL-readiness table."""
