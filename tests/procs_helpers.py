"""Killing a run for real (SIGKILL) and checking that no process of it is left behind (issue 19)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import psutil

from octo.procs import describe, read_lock, run_processes

GRACE_S = 5.0


def kill_run(proc: subprocess.Popen, out: str | Path | None = None, grace_s: float = GRACE_S) -> None:
    """SIGKILL ``proc`` (the run's main process) and assert that within ``grace_s`` none of its descendants,
    nor any process carrying the token of its lock in ``out``, is alive. Survivors are killed before the
    assertion fails, so that a failing test leaves nothing behind either."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)  # after the kill they are init's children
    except psutil.NoSuchProcess:
        tree = []
    lock = read_lock(out) if out is not None else None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + grace_s
    while True:
        left = [p for p in tree if _alive(p)]
        if lock is not None:
            left += [p for p in run_processes(lock) if p.pid not in {q.pid for q in left}]
        if not left or time.time() > deadline:
            break
        time.sleep(0.1)
    names = [describe(p) for p in left]
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    assert not names, f"processes of the killed run still alive after {grace_s}s: {names}"


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
