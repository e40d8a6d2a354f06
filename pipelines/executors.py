"""Running planned stages on an executor (datatrove's local, Slurm or Ray executor), and checking that every
task completed: every task writes a completion marker, so a killed build started again skips finished tasks."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from octo.manifest import PROJECT_ROOT
from octo.procs import child_preexec, pool_initializer
from pipelines.errors import CorpusBuildError
from pipelines.layout import layout, stage_dir
from pipelines.plan import Stage
from pipelines.recipe import CorpusRecipe
from pipelines.report import merged_stage_stats, total


def log(recipe: CorpusRecipe, message: str) -> None:
    print(f"[corpus {recipe.name}] {message}", flush=True)


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
