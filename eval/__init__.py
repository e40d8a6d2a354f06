"""Evaluation suites on lighteval and the RL-readiness table.

The orchestrator's API, importable from the package (lazily: lighteval loads only when a suite runs):
``load_suite(path, overrides)``, ``run(suite, model_path, out_dir, ...)``, ``build_readiness(study_dir, **options)``.
"""

_EXPORTS = {"load_suite": "eval.config", "run": "eval.runner", "build_readiness": "eval.readiness"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
