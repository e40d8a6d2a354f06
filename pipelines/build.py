"""Build a corpus: recipe -> datatrove stages -> executor (local, Slurm, Ray) -> the corpus folder.

Stages (each a datatrove executor; MinHash and decontamination need materialised intermediate output):

  decont_index        evaluation sets -> <task>.index.hashes                        (1 task)
  filter              sources -> language / quality / math filters -> work/filtered   (or straight to docs/)
  minhash_signatures  \\
  minhash_buckets      | datatrove's four MinHash steps over the sources that are not exempt
  minhash_clusters     |
  dedup               /  ... -> MinHash filter -> n-gram decont filter -> docs/
  tokenize            docs/ -> tokens/*.ds (+ .index, .metadata), BOS/EOS explicit, tokens per source
  merge               optional DocumentTokenizerMerger

Every task writes a completion marker, so a killed build started again skips finished tasks and ends with the
same output. A fingerprint of the recipe (split into the documents part and the tokenization part) decides what
is still valid: re-running a documents-only build with a tokenizer set runs only the tokenization stages.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from octo.config import ConfigError
from octo.manifest import PROJECT_ROOT, read_manifest, write_manifest
from octo.procs import LOCK_NAME, child_preexec, pool_initializer, run_lock
from octo.sources import FILE_SOURCES
from pipelines.layout import (
    decont_index_folder,
    digest,
    file_digest,
    layout,
    special_tokens,
    stage_dir,
    tokenizer_file,
)
from pipelines.readers import local_or_remote, make_reader
from pipelines.recipe import CorpusRecipe, check_exists, resolve_path

__all__ = ["build", "dry_run", "plan", "make_reader", "CorpusBuildError", "Stage", "layout"]

EXECUTORS = ("local", "slurm", "ray")


class CorpusBuildError(RuntimeError):
    """A stage did not complete (failed tasks are listed with the tail of their logs)."""


@dataclass
class Stage:
    name: str
    pipeline: list
    tasks: int
    labels: list[str] = field(default_factory=list)  # one per pipeline step, for the report


def log(recipe: CorpusRecipe, message: str) -> None:
    print(f"[corpus {recipe.name}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------- plan
def word_tokenizer(recipe: CorpusRecipe):
    from pipelines.steps import RegexWordTokenizer

    return RegexWordTokenizer() if recipe.word_tokenizer == "regex" else "en"


def plan(recipe: CorpusRecipe, tasks: int = 1) -> list[Stage]:
    """The datatrove stages of a recipe (no side effects), in the order they run."""
    from pipelines import refine

    out = Path(recipe.output_dir)
    paths = {k: str(v) for k, v in layout(out).items()}
    words = word_tokenizer(recipe)
    decont_config, decont_stages = _decont_plan(recipe, words)
    stages = decont_stages
    readers, labels = _source_readers(recipe, paths)
    filter_steps, filter_labels = _filter_steps(recipe, words, paths)
    first = (readers + filter_steps, labels + filter_labels)

    def kept_tail() -> tuple[list, list[str]]:
        return _kept_tail(recipe, words, paths, decont_config)

    if recipe.refine is not None:  # the kept tail follows refinement (pipelines/refine.py)
        final_tail = ([refine.prerefine_writer(out)], ["write:prerefine"])
    else:
        final_tail = kept_tail()
    if recipe.minhash_sources:
        stages += _minhash_stages(recipe, words, paths, tasks, first, final_tail)
    else:
        stages.append(Stage("filter", first[0] + final_tail[0], tasks, labels=first[1] + final_tail[1]))
    if recipe.refine is not None:
        stages += refine.refine_stages(recipe, out, tasks, *kept_tail(), stage_cls=Stage)
    return stages + _tokenize_stages(recipe, paths, tasks)


def _decont_config(recipe: CorpusRecipe):
    from datatrove.pipeline.decont import NGramsDecontConfig
    from datatrove.utils.text import TextNormConfig

    d = recipe.decont
    return NGramsDecontConfig(
        n_grams=d.n_grams,
        find_query_ngrams=d.index_questions,
        find_overlap_ngrams=True,
        norm_config=TextNormConfig(norm_numbers=d.norm_numbers),
    )


def _decont_plan(recipe: CorpusRecipe, words) -> tuple[object | None, list[Stage]]:
    """The decontamination config, and the index stage unless a shared index built earlier is complete."""
    from pipelines import steps

    if recipe.decont is None:
        return None, []
    d = recipe.decont
    config = _decont_config(recipe)
    index_folder = decont_index_folder(recipe)
    if (index_folder / ".complete").is_file():  # a shared index built by an earlier corpus is reused
        return config, []
    root = str(resolve_path(d.benchmarks_dir)) if d.benchmarks_dir else None
    files = [{**f.model_dump(), "path": str(check_exists(f.path, f"decont.files.{f.name}"))} for f in d.files]
    reader = steps.BenchmarkReader(d.benchmarks, d.source, root, files)
    builder = steps.NGramIndexBuilder(str(index_folder), config, words)
    return config, [
        Stage("decont_index", [reader, builder], tasks=1, labels=["read:evaluation sets", "index"])
    ]


def _source_readers(recipe: CorpusRecipe, paths: dict[str, str]) -> tuple[list, list[str]]:
    """One reader per source; with MinHash each document is tagged with its dedup group."""
    minhash_sources = recipe.minhash_sources
    readers, labels = [], []
    for source in recipe.sources:
        group = (
            None if recipe.minhash is None else ("minhash" if source.name in minhash_sources else "exempt")
        )
        readers.append(make_reader(source, rejects_folder=paths["malformed"], dedup_group=group))
        labels.append(f"read:{source.name}")
    return readers, labels


def _filter_steps(recipe: CorpusRecipe, words, paths: dict[str, str]) -> tuple[list, list[str]]:
    """The recipe's filters in order, each scoped to its sources and writing what it drops."""
    from pipelines import steps

    planned = []
    for dotted, settings in recipe.filters.in_order():
        p = settings.step(dotted, words)
        p.step.apply_to = tuple(settings.apply_to) if settings.apply_to else None
        steps.with_dropped_writer(p.step, f"{paths['dropped']}/{p.dropped_folder}")
        planned.append(p)
    return [p.step for p in planned], [p.label for p in planned]


def _kept_tail(recipe: CorpusRecipe, words, paths: dict[str, str], decont_config) -> tuple[list, list[str]]:
    """The end of the documents pipeline: n-gram decontamination, the kept counter, the docs writer."""
    from datatrove.pipeline.decont import NGramsDecontFilter
    from datatrove.pipeline.writers import JsonlWriter

    from pipelines import steps

    tail, names = [], []
    if decont_config is not None:
        index_folder = str(decont_index_folder(recipe))
        decont = NGramsDecontFilter(index_folder, config=decont_config, language=words)
        tail.append(steps.with_dropped_writer(decont, f"{paths['dropped']}/decont"))
        names.append("filter:decont")
    tail += [
        steps.SourceCounter("kept"),
        JsonlWriter(paths["docs"], output_filename="${source}_${rank}.jsonl.gz"),
    ]
    return tail, names + ["count:kept", "write:docs"]


def _minhash_stages(recipe, words, paths, tasks, first, final_tail) -> list[Stage]:
    """filter -> datatrove's four MinHash steps -> dedup (+ the exempt sources) -> the final tail."""
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    from pipelines import steps

    m = recipe.minhash
    mh = MinhashConfig(
        n_grams=m.n_grams,
        num_buckets=m.num_buckets,
        hashes_per_bucket=m.hashes_per_bucket,
        seed=m.seed,
        hash_config=HashConfig(precision=64),
        norm_config=TextNormConfig(norm_numbers=m.norm_numbers),
    )
    grouped = JsonlWriter(paths["filtered"], output_filename="${dedup_group}/${rank}.jsonl.gz")
    sigs, buckets, remove = (f"{paths['minhash']}/{name}" for name in ("signatures", "buckets", "remove_ids"))
    to_dedup = f"{paths['filtered']}/minhash"
    signature = MinhashDedupSignature(sigs, config=mh, language=words)
    stages = [
        Stage("filter", [*first[0], grouped], tasks, labels=[*first[1], "write:filtered"]),
        Stage("minhash_signatures", [steps.InternalJsonlReader(to_dedup), signature], tasks,
              labels=["read:filtered", "minhash:signatures"]),
        Stage("minhash_buckets", [MinhashDedupBuckets(sigs, buckets, config=mh)], m.num_buckets,
              labels=["minhash:buckets"]),
        Stage("minhash_clusters", [MinhashDedupCluster(buckets, remove, config=mh)], 1, labels=["minhash:clusters"]),
    ]  # fmt: skip
    dedup = steps.with_dropped_writer(MinhashDedupFilter(remove), f"{paths['dropped']}/minhash")
    pipeline, names = [steps.InternalJsonlReader(to_dedup), dedup], ["read:filtered", "filter:minhash"]
    if any(s.name not in recipe.minhash_sources for s in recipe.sources):
        # read after the MinHash filter, so its document indices match the signature stage's
        pipeline.append(steps.InternalJsonlReader(f"{paths['filtered']}/exempt"))
        names.append("read:filtered (exempt)")
    stages.append(Stage("dedup", pipeline + final_tail[0], tasks, labels=names + final_tail[1]))
    return stages


def _tokenize_stages(recipe: CorpusRecipe, paths: dict[str, str], tasks: int) -> list[Stage]:
    """docs/ -> token shards (and the optional merge), when the recipe names a tokenizer."""
    from datatrove.pipeline.tokens import DocumentTokenizerMerger

    from pipelines import steps

    t = recipe.tokenize
    if not t.tokenizer:
        return []
    bos, eos = special_tokens(recipe)
    tokenizer = steps.SourceTokenizer(
        paths["tokens_unmerged"] if t.merge else paths["tokens"],
        tokenizer_name_or_path=str(tokenizer_file(t.tokenizer).resolve()),
        local_working_dir=paths["tokenize_tmp"],
        save_filename=recipe.name,
        bos_token=bos,
        eos_token=eos,
        shuffle_documents=t.shuffle,
        seed=t.seed,
        batch_size=t.batch_size,
        max_tokens_per_file=None if t.merge else t.max_tokens_per_file,
    )
    reader = steps.InternalJsonlReader(paths["docs"])
    stages = [Stage("tokenize", [reader, tokenizer], tasks, labels=["read:docs", "tokenize"])]
    if t.merge:
        merger = DocumentTokenizerMerger(
            paths["tokens_unmerged"], paths["tokens"], save_filename=recipe.name, shuffle=t.shuffle, seed=t.seed,
            max_tokens_per_file=t.max_tokens_per_file or int(100e9), progress=False,
        )  # fmt: skip
        stages.append(Stage("merge", [merger], 1, labels=["merge"]))
    return stages


# ------------------------------------------------------------------------------------------ fingerprints
def fingerprints(recipe: CorpusRecipe, tasks: int) -> dict[str, str]:
    """What the documents and the token shards depend on: the recipe (minus executor/tokenize), models, tasks."""
    from pipelines import refine

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


# -------------------------------------------------------------------------------------------- executors
def completed_ranks(logging_dir: Path) -> set[int]:
    folder = logging_dir / "completions"
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.is_dir() else set()


def _log_tail(logging_dir: Path, rank: int, lines: int = 12) -> str:
    """The last error line of a task's log (datatrove's, else Slurm's), then its last lines."""
    candidates = [
        logging_dir / "logs" / f"task_{rank:05d}.log",
        *sorted((logging_dir / "slurm_logs").glob(f"*_{rank}.out")),
    ]
    for path in candidates:
        if path.is_file():
            text = path.read_text(errors="replace").strip().splitlines()
            errors = [line.strip() for line in text if re.match(r"^\s*(\d+: )?\w*(Error|Exception)\b", line)]
            head = f"      error: {errors[-1]}\n" if errors else ""
            return head + "\n".join(f"      {line}" for line in text[-lines:])
    return "      (no log found)"


def check_stages(out: Path, stages: list[Stage]) -> None:
    """Raise CorpusBuildError naming every stage with incomplete tasks (with log tails)."""
    problems = []
    for stage in stages:
        logging_dir = stage_dir(out, stage)
        missing = sorted(set(range(stage.tasks)) - completed_ranks(logging_dir))
        if missing:
            shown = "\n".join(f"    task {r}:\n{_log_tail(logging_dir, r)}" for r in missing[:3])
            problems.append(
                f"  stage {stage.name}: {len(missing)}/{stage.tasks} tasks failed or never ran {missing[:10]}\n{shown}"
            )
    if problems:
        raise CorpusBuildError(
            "corpus build incomplete:\n" + "\n".join(problems) + f"\n  logs: {layout(out)['logs']}"
        )


@contextlib.contextmanager
def quiet_datatrove_console():
    """datatrove prints each task's pipeline and stats blocks to the console; keep warnings and errors there
    (the task logs keep everything) unless OCTO_CORPUS_VERBOSE=1."""
    if os.environ.get("OCTO_CORPUS_VERBOSE") == "1":
        yield
        return
    from datatrove.utils import logging as dt_logging
    from loguru import logger

    original = dt_logging.setup_default_logger

    def quiet():  # datatrove calls this after every task to restore its console sink
        logger.remove()
        logger.add(sys.stderr, level="WARNING", colorize=dt_logging.DATATROVE_COLORIZE_LOGS,
                   filter=lambda record: "points to a local filesystem" not in record["message"])  # fmt: skip

    dt_logging.setup_default_logger = quiet
    quiet()
    try:
        yield
    finally:
        dt_logging.setup_default_logger = original
        original()


@contextlib.contextmanager
def _pool_workers_die_with_parent():
    """datatrove's local executor starts its pool without an initializer: give it one that makes every worker
    die with this process, whatever the start method (forked children, its Manager included, are covered by
    ``octo.procs.install``)."""
    import functools

    from datatrove.executor import local

    real = local.multiprocess

    class Multiprocess:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_context(self, method=None):
            ctx = real.get_context(method)
            initializer, initargs = pool_initializer()
            pool = functools.partial(ctx.Pool, initializer=initializer, initargs=initargs)
            return type("DieWithParentContext", (), {"Pool": staticmethod(pool)})()

    local.multiprocess = Multiprocess()
    try:
        yield
    finally:
        local.multiprocess = real


def _local_executor_class():
    from datatrove.executor import LocalPipelineExecutor

    class QuietLocalExecutor(LocalPipelineExecutor):
        """Task logs go to their files; the console gets errors only (the build prints its own progress);
        pool workers die with the build."""

        def run(self):
            with _pool_workers_die_with_parent():
                return super().run()

        def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
            return super()._run_for_rank(
                rank,
                local_rank=1 if os.environ.get("OCTO_CORPUS_VERBOSE") != "1" else local_rank,
                node_rank=node_rank,
            )

    return QuietLocalExecutor


def _summary(stage: Stage, logging_dir: Path) -> str:
    from pipelines.report import merged_stage_stats, total

    try:
        steps = merged_stage_stats(logging_dir, stage)
    except (OSError, ValueError):
        return ""
    read = sum(total(s["stats"].get("documents", 0)) for s in steps if s["label"].startswith("read:"))
    kept = next((total(s["stats"].get("total", 0)) for s in steps if s["label"].startswith("write")), None)
    tokens = next((total(s["stats"].get("tokens", 0)) for s in steps if s["label"] == "tokenize"), None)
    parts = []
    if read:
        parts.append(f"{read:,} docs read")
    if kept is not None:
        parts.append(f"{kept:,} written")
    if tokens:
        parts.append(f"{tokens:,} tokens")
    return ", ".join(parts)


def run_local(recipe: CorpusRecipe, out: Path, stages: list[Stage]) -> dict[str, float]:
    cfg = recipe.executor.local
    Executor = _local_executor_class()
    seconds = {}
    for index, stage in enumerate(stages):
        logging_dir = stage_dir(out, stage)
        done = len(completed_ranks(logging_dir))
        start = time.time()
        executor = Executor(
            stage.pipeline, tasks=stage.tasks, workers=min(cfg.workers, stage.tasks), logging_dir=str(logging_dir),
            start_method=cfg.start_method,
        )  # fmt: skip
        executor.run()
        elapsed = round(time.time() - start, 2)
        if done < stage.tasks:  # stages finished by an earlier run keep their recorded time
            seconds[stage.name] = elapsed
        check_stages(out, [stage])
        skipped = f" ({done} already done)" if done else ""
        summary = _summary(stage, logging_dir)
        log(
            recipe,
            f"{index + 1}/{len(stages)} {stage.name}: {stage.tasks} tasks{skipped} in {elapsed:.1f}s  {summary}",
        )
    return seconds


@contextlib.contextmanager
def _job_environment():
    """Jobs must import this checkout's `pipelines` (sbatch/Ray pass the environment on)."""
    old = os.environ.get("PYTHONPATH")
    parts = [str(PROJECT_ROOT), *([old] if old else [])]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _squeue(job_ids: list[str]) -> list[tuple[str, str, str]]:
    if not job_ids:
        return []
    result = subprocess.run(
        ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T %r"],
        capture_output=True,
        text=True,
        preexec_fn=child_preexec(),
    )
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return []
        raise CorpusBuildError(f"squeue failed: {result.stderr.strip()}")
    return [
        tuple((line.split(None, 2) + ["", "", ""])[:3]) for line in result.stdout.splitlines() if line.strip()
    ]


def run_slurm(recipe: CorpusRecipe, out: Path, stages: list[Stage], wait: bool) -> dict[str, float]:
    from datatrove.executor import SlurmPipelineExecutor

    cfg = recipe.executor.slurm
    if shutil.which("sbatch") is None:
        raise CorpusBuildError("executor slurm: sbatch not found on PATH (is this a Slurm login node?)")
    venv = cfg.venv_path
    if venv is None and cfg.env_command is None:
        candidate = Path(sys.executable).parent / "activate"
        venv = str(candidate) if candidate.is_file() else None
    env_command = cfg.env_command or (None if venv else f"export PATH={Path(sys.executable).parent}:$PATH")
    jobs_file = layout(out)["work"] / "slurm_jobs.json"
    earlier = json.loads(jobs_file.read_text()) if jobs_file.is_file() else None
    start = time.time()
    if earlier and _squeue(earlier["job_ids"]):
        # submitting again would run the same unfinished tasks twice, side by side
        job_ids, names = earlier["job_ids"], earlier["names"]
        log(recipe, f"Slurm jobs {job_ids} of an earlier submission are still queued: waiting for them")
    else:
        executors, previous = [], None
        for stage in stages:
            executor = SlurmPipelineExecutor(
                stage.pipeline, tasks=stage.tasks, time=cfg.time, partition=cfg.partition,
                cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb, workers=cfg.workers,
                job_name=f"{cfg.job_name}-{recipe.name}-{stage.name}", qos=cfg.qos, venv_path=venv,
                env_command=env_command, sbatch_args=dict(cfg.sbatch_args),
                logging_dir=str(stage_dir(out, stage)), depends=previous, requeue_signals=None,
            )  # fmt: skip
            executors.append(executor)
            previous = executor
        with _job_environment():
            executors[-1].run()  # submits every stage, each depending on the one before (afterok)
        job_ids = [str(e.job_id) for e in executors if e.job_id not in (None, -1)]
        names = [e.job_name for e in executors]
        jobs_file.write_text(json.dumps({"job_ids": job_ids, "names": names}) + "\n")
        log(
            recipe,
            f"submitted {len(job_ids)} Slurm array jobs {job_ids} (datatrove returns right after sbatch)",
        )
    if not wait:
        return {}
    deadline = time.time() + cfg.wait_timeout_s
    last_report = time.time()
    while True:
        queue = _squeue(job_ids)
        if not queue:
            break
        if time.time() - last_report > 30:  # a line every 30 s: tasks done per stage
            done = ", ".join(
                f"{st.name} {len(completed_ranks(stage_dir(out, st)))}/{st.tasks}" for st in stages
            )
            log(recipe, f"waiting for Slurm ({len(queue)} queue entries): {done}")
            last_report = time.time()
        if any("DependencyNeverSatisfied" in reason for _, _, reason in queue):
            # an upstream stage failed; without kill_invalid_depend its dependents would pend forever
            subprocess.run(["scancel", *job_ids], capture_output=True, preexec_fn=child_preexec())
            break
        if time.time() > deadline:
            raise CorpusBuildError(
                f"Slurm jobs {job_ids} still queued after {cfg.wait_timeout_s:.0f}s ({len(queue)} entries); "
                f"build again later to keep waiting (finished tasks are kept), or cancel them with scancel"
            )
        time.sleep(cfg.poll_s)
    # datatrove's merge_stats jobs (same names) are not needed: the report merges the per-task stats itself
    subprocess.run(["scancel", "--name", ",".join(names)], capture_output=True, preexec_fn=child_preexec())
    check_stages(out, stages)
    return {"all_stages": round(time.time() - start, 2)}


def run_ray(recipe: CorpusRecipe, out: Path, stages: list[Stage]) -> dict[str, float]:
    import ray
    from datatrove.executor import RayPipelineExecutor

    cfg = recipe.executor.ray
    started_here = False
    with _job_environment():
        if not ray.is_initialized():
            kwargs = {
                "include_dashboard": False,
                "runtime_env": {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
            }
            if cfg.address is None and cfg.num_cpus:
                kwargs["num_cpus"] = cfg.num_cpus
            ray.init(address=cfg.address, **kwargs)
            started_here = True
        seconds = {}
        try:
            for index, stage in enumerate(stages):
                start = time.time()
                executor = RayPipelineExecutor(
                    stage.pipeline, tasks=stage.tasks, workers=cfg.workers, logging_dir=str(stage_dir(out, stage)),
                    cpus_per_task=cfg.cpus_per_task, mem_per_cpu_gb=cfg.mem_per_cpu_gb, time=cfg.task_timeout_s,
                )  # fmt: skip
                # run stage by stage: datatrove's Ray executor logs failures without raising, and a dependent
                # stage would then wait forever; checking completions after each stage turns that into an error
                executor.run()
                seconds[stage.name] = round(time.time() - start, 2)
                check_stages(out, [stage])
                log(
                    recipe,
                    f"{index + 1}/{len(stages)} {stage.name}: {stage.tasks} tasks on Ray in {seconds[stage.name]:.1f}s",
                )
        finally:
            if started_here:
                ray.shutdown()
    return seconds


# ----------------------------------------------------------------------------------------------- build
def ensure_models(recipe: CorpusRecipe) -> None:
    """Train the classifier / language-ID models a recipe names but that do not exist yet (when it says how)."""
    from pipelines.classifier import format_metrics, load_classifier_config, train_classifier

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
            from pipelines.classifier import load_classifier_config

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
        from pipelines import refine

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
    from pipelines.report import finalize

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
