"""Running a study's steps: in this process one after another, or in worker processes as their inputs get done.

With ``workers: 1`` every step runs here, in plan order. With more, each step starts in one of ``workers``
spawned processes as soon as the steps it ``needs`` have finished, so independent arms train, probe, roll out
and evaluate side by side. Each worker gets ``cores // workers`` torch threads: on 2 cores two one-thread
processes do more work than one two-thread process, because a tiny model's kernels are too short to split,
and they do not stall each other's OpenMP barriers when the machine is busy (docs/study.md#parallel-steps).
A step computes the same numbers either way: the tiny model trains bit-identically on 1 and 2 threads
(`benchmarks/study_parallel.py` checks it), and every step has its own seed.

A worker rebuilds the plan from the study config and runs the step of the same name; the step's stage skips
it when its outputs are complete, exactly as in this process. Workers die with this process (a watchdog from
``octo.procs.pool_initializer``), so a killed study leaves no step running.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octo.errors import ConfigError
from octo.manifest import read_manifest
from octo.procs import pool_initializer
from study.estimate import Estimate


@dataclass
class Step:
    """One unit of work: a stage call that leaves a folder with a manifest, once the steps it needs are done."""

    name: str
    out: Path
    run: Callable[[], Any]
    estimate: Estimate = field(default_factory=Estimate)
    stage: str = ""
    needs: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What running a step gave: the stage's return value, its wall time, and whether it was already complete."""

    result: Any
    seconds: float
    cached: bool


def _stamp(out: Path) -> str | None:
    manifest = read_manifest(out)
    return json.dumps([manifest.get("status"), manifest.get("created")]) if manifest else None


def execute(step: Step) -> Outcome:
    """Run one step; it was cached when its manifest said complete before and is unchanged after."""
    before = _stamp(step.out) if step.stage != "readiness" else None
    t0 = time.time()
    result = step.run()
    seconds = time.time() - t0
    cached = before is not None and before == _stamp(step.out) and json.loads(before)[0] == "complete"
    return Outcome(result, seconds, cached)


def check_needs(steps: list[Step]) -> None:
    """Every step needs only steps planned before it (so plan order is always a valid order)."""
    seen: set[str] = set()
    for step in steps:
        missing = [n for n in step.needs if n not in seen]
        if missing:
            raise ConfigError(f"study plan: step '{step.name}' needs {missing}, not planned before it")
        seen.add(step.name)


def run_steps(study, steps: list[Step], plan: Callable, on_start, on_done) -> None:
    """Run every step, calling ``on_start(i)`` and ``on_done(i, outcome)``; the first failure is raised once the
    steps already running have finished (their outputs are kept)."""
    check_needs(steps)
    workers = study.workers
    if workers <= 1:
        for i, step in enumerate(steps):
            on_start(i)
            on_done(i, execute(step))
        return
    init, init_args = pool_initializer()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited torch/OpenMP state
    threads = study.threads_per_worker()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(threads, init, init_args)) as pool:  # fmt: skip
        _schedule(pool, study, steps, workers, plan, on_start, on_done)


def _schedule(pool, study, steps, workers, plan, on_start, on_done) -> None:
    waiting, running, done = list(range(len(steps))), {}, set()
    while waiting or running:
        for i in [i for i in waiting if all(n in done for n in steps[i].needs)]:
            if len(running) >= workers:
                break
            waiting.remove(i)
            on_start(i)
            running[pool.submit(_run_in_worker, plan, study, steps[i].name)] = i
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        failed = None
        for future in finished:
            i = running.pop(future)
            if future.exception() is not None:
                failed = failed or future.exception()
                continue
            done.add(steps[i].name)
            on_done(i, future.result())
        if failed is not None:
            waiting.clear()  # start nothing new; let the running steps finish, then fail
            wait(running)
            raise failed


_PLANS: dict[str, dict[str, Step]] = {}


def _start_worker(threads: int, init, init_args) -> None:
    init(*init_args)
    os.environ["TQDM_DISABLE"] = "1"  # two bars on one terminal garble; the study prints each step's progress
    import torch

    torch.set_num_threads(threads)


def _run_in_worker(plan: Callable, study, name: str) -> Outcome:
    key = study.model_dump_json()
    if key not in _PLANS:  # planning reads every stage config (about 1-4 s): once per worker
        _PLANS[key] = {s.name: s for s in plan(study)}
    return execute(_PLANS[key][name])
