"""Build a corpus: recipe -> datatrove stages -> executor (local, Slurm, Ray) -> the corpus folder.

This module is the entry (``dry_run``, ``build``): the stages are planned in ``pipelines.plan`` (each a
datatrove executor; MinHash and decontamination need materialised intermediate output) and run by
``pipelines.executors``.

Every task writes a completion marker, so a killed build started again skips finished tasks and ends with the
same output. A fingerprint of the recipe (split into the documents part and the tokenization part) decides what
is still valid: re-running a documents-only build with a tokenizer set runs only the tokenization stages.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from octo.config import ConfigError
from octo.manifest import read_manifest, write_manifest
from octo.procs import LOCK_NAME, run_lock
from octo.sources import FILE_SOURCES
from pipelines import refine
from pipelines.classifier import format_metrics, load_classifier_config, train_classifier
from pipelines.executors import CorpusBuildError, log, quiet_datatrove_console, run_local, run_ray, run_slurm
from pipelines.layout import digest, file_digest, layout, special_tokens, tokenizer_file
from pipelines.plan import Stage, plan
from pipelines.readers import local_or_remote, make_reader
from pipelines.recipe import CorpusRecipe, check_exists, resolve_path
from pipelines.report import finalize

__all__ = ["build", "dry_run", "plan", "fingerprints", "make_reader", "CorpusBuildError", "Stage", "layout"]

EXECUTORS = ("local", "slurm", "ray")


# ------------------------------------------------------------------------------------------ fingerprints
def fingerprints(recipe: CorpusRecipe, tasks: int) -> dict[str, str]:
    """What the documents and the token shards depend on: the recipe (minus executor/tokenize), models, tasks."""
    docs_part = recipe.model_dump(mode="json", exclude={"executor", "tokenize", "output_dir", "description"})
    refined = docs_part.pop("refine", None)  # absent when unused: fingerprints of older corpora stay valid
    if refined is not None:
        docs_part["refine"] = refine.fingerprint_part(refined)
    f = recipe.filters
    models = {
        "math": file_digest(f.math.model) if f.math else None,
        "language": file_digest(f.language.model) if f.language and f.language.model else None,
    }
    docs = digest({"recipe": docs_part, "models": models, "tasks": tasks})
    tok = recipe.tokenize
    tokenizer = file_digest(str(tokenizer_file(tok.tokenizer))) if tok.tokenizer else None
    tokens = digest({"docs": docs, "tokenize": tok.model_dump(mode="json"), "tokenizer": tokenizer})
    return {"docs": docs, "tokens": tokens}


OUTPUTS = ("docs", "tokens", "dropped", "malformed", "work", "stats.json", "report.md", "manifest.json")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prepare_output(recipe: CorpusRecipe, out: Path, prints: dict[str, str]) -> str:
    """Keep what is still valid for this recipe, clear the rest. Returns 'new', 'resume' or 'tokens-only'."""
    state_file = out / "work" / "fingerprint.json"
    paths = layout(out)
    state = json.loads(state_file.read_text()) if state_file.is_file() else None
    status = "new"
    if out.exists() and any(out.iterdir()):
        if state is None and not (out / "manifest.json").is_file():
            foreign = sorted(p.name for p in out.iterdir() if p.name not in (*OUTPUTS, LOCK_NAME))
            if foreign:
                raise ConfigError(
                    f"output_dir {out} is not empty and is not a corpus folder (found {foreign[:5]})"
                )
        if state is None or state.get("docs") != prints["docs"]:
            if state is not None:
                log(recipe, "recipe changed: rebuilding from scratch")
            for name in OUTPUTS:
                _remove(out / name)
        elif state.get("tokens") != prints["tokens"]:
            log(recipe, "documents are up to date; (re)building the token shards only")
            for path in (paths["tokens"], paths["tokens_unmerged"], paths["tokenize_tmp"]):
                _remove(path)
            for name in ("tokenize", "merge"):
                _remove(paths["logs"] / name)
            status = "tokens-only"
        else:
            status = "resume"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(prints) + "\n")
    return status


def ensure_models(recipe: CorpusRecipe) -> None:
    """Train the classifier / language-ID models a recipe names but that do not exist yet (when it says how)."""
    for field_name, cfg in (
        ("filters.math", recipe.filters.math),
        ("filters.language", recipe.filters.language),
    ):
        if cfg is None or not cfg.model or resolve_path(cfg.model).exists():
            continue
        if not cfg.train_config:
            raise ConfigError(
                f"{field_name}.model: {cfg.model} does not exist; train it with `octo corpus train-classifier` "
                f"or set {field_name}.train_config"
            )
        config = load_classifier_config(check_exists(cfg.train_config, f"{field_name}.train_config"))
        log(recipe, f"training {field_name} model {cfg.model} from {cfg.train_config}")
        print(format_metrics(train_classifier(config, output=cfg.model)), flush=True)


def validate_sources(recipe: CorpusRecipe) -> None:
    """File sources must exist and match files (caught before any job starts)."""
    for i, s in enumerate(recipe.sources):
        if s.type not in ("jsonl", "parquet") or "://" in s.path:
            continue
        path = check_exists(s.path, f"sources.{i}.path")
        if path.is_dir():
            pattern = s.glob or "*"
            if not any(p.is_file() for p in path.rglob(pattern)):
                raise ConfigError(f"sources.{i}.path: no files matching {pattern!r} under {s.path}")


def dry_run(recipe: CorpusRecipe, executor: str = "local") -> list[Stage]:
    """Validate a recipe without reading data or training anything: returns its stages."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS} (got {executor!r})")
    tasks = getattr(recipe.executor, executor).tasks
    validate_sources(recipe)
    f = recipe.filters
    for name, cfg in (("math", f.math), ("language", f.language)):
        if cfg is not None and cfg.train_config:
            load_classifier_config(check_exists(cfg.train_config, f"filters.{name}.train_config"))
    # models that a real run trains first are stood in for by a placeholder path, only to build the step objects
    stand_in = recipe.model_copy(deep=True)
    for cfg in (stand_in.filters.math, stand_in.filters.language):
        if cfg is not None and cfg.model and not resolve_path(cfg.model).exists():
            if not cfg.train_config:
                raise ConfigError(
                    f"filters: model {cfg.model} does not exist and no train_config says how to train it"
                )
            cfg.model = __file__
    if stand_in.tokenize.tokenizer:
        tokenizer_file(stand_in.tokenize.tokenizer)
        special_tokens(stand_in)
    stages = plan(stand_in, tasks)
    if recipe.refine is not None:  # server check and token estimate
        for line in refine.dry_run_lines(recipe, make_reader):
            log(recipe, line)
    return stages


def build(recipe: CorpusRecipe, executor: str = "local", wait: bool = True) -> Path:
    """Build the corpus of ``recipe`` with the given executor; returns its folder (``recipe.output_dir``).

    local: runs in this process (``executor.local.workers`` > 1 forks a pool). slurm: submits the stages as
    dependent array jobs; with ``wait`` it polls until they finish and raises CorpusBuildError listing failed
    tasks, without it returns at once (build again later to finish the report). ray: runs stage by stage on a
    local or given Ray cluster and raises on failed tasks.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS} (got {executor!r})")
    started = time.time()
    out = Path(recipe.output_dir)
    validate_sources(recipe)
    with run_lock(out):  # one build at a time in a folder; its workers die with it
        return _build(recipe, executor, wait, out, started)


def _build(recipe: CorpusRecipe, executor: str, wait: bool, out: Path, started: float) -> Path:
    ensure_models(recipe)
    tasks = getattr(recipe.executor, executor).tasks
    prints = fingerprints(recipe, tasks)
    done = read_manifest(out)
    if done and done.get("status") == "complete" and done.get("fingerprints") == prints:
        log(
            recipe, f"already complete for this recipe -> {out}"
        )  # leave the folder and its manifest as they are
        return out
    status = prepare_output(recipe, out, prints)
    stages = plan(recipe, tasks)
    log(recipe, f"{status} build with the {executor} executor: {len(stages)} stages -> {out}")
    write_manifest(out, stage="corpus", config=recipe, started=started, status="running",
                   extra={"executor": executor, "fingerprints": prints})  # fmt: skip
    with quiet_datatrove_console():
        if executor == "local":
            seconds = run_local(recipe, out, stages)
        elif executor == "ray":
            seconds = run_ray(recipe, out, stages)
        else:
            seconds = run_slurm(recipe, out, stages, wait)
        if not wait:
            write_manifest(out, stage="corpus", config=recipe, started=started, status="submitted",
                           extra={"executor": executor, "fingerprints": prints})  # fmt: skip
            return out
    counts = finalize(
        recipe, out, stages, executor=executor, stage_seconds=seconds, wall_s=time.time() - started
    )
    inputs = {s.name: local_or_remote(s.path) for s in recipe.sources if s.type in FILE_SOURCES}
    if recipe.tokenize.tokenizer:
        inputs["tokenizer"] = str(tokenizer_file(recipe.tokenize.tokenizer))
    write_manifest(out, stage="corpus", config=recipe, inputs=inputs, counts=counts, started=started,
                   extra={"executor": executor, "fingerprints": prints})  # fmt: skip
    log(
        recipe,
        f"done in {time.time() - started:.1f}s: {counts['documents_kept']:,} documents, {counts['tokens']:,} tokens -> {out}",
    )
    return out
