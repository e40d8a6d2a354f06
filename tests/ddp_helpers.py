"""Launch the project's CLI as several CPU processes (torchrun, gloo) and make sure none outlives a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def torchrun(procs: int, *args: str) -> list[str]:
    """``torchrun --standalone --nproc_per_node N -m octo ARGS`` (standalone: a free local rendezvous port)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
            "-m", "octo", *args]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run to the end (then kill anything it left); on failure the error names the command and its stderr tail."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_tree(proc.pid)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (not zombie) process, read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int) -> set[int]:
    """Live processes below ``pid``. torchrun starts each worker in a session of its own, so a process
    group kill of the launcher does not reach them: they have to be found by parentage."""
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pids) -> set[int]:
    live = _parents()
    return {p for p in pids if p in live}


def kill_tree(pid: int, also=(), wait: float = 10.0) -> set[int]:
    """SIGKILL ``pid``, everything below it and ``also``; wait until none is alive; returns what was killed."""
    targets = {pid, *descendants(pid), *also}
    for p in targets:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + wait
    while alive(targets) and time.time() < deadline:
        time.sleep(0.05)
    return targets


def crash_launcher_when(proc: subprocess.Popen, ready, timeout: float, poll: float = 0.02) -> set[int]:
    """Wait until ``ready()`` (or the run ends, or ``timeout``), SIGKILL the launcher only, as a crash would,
    and return its workers after killing them too. torchrun's workers run in sessions of their own and outlive
    a SIGKILLed launcher; they are killed at once (before they train to the end), as a scheduler (Slurm: the
    job's cgroup) would, before anything resumes."""
    import signal
    import time

    workers: set[int] = set()
    try:
        deadline = time.time() + timeout
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(poll)
        workers = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"workers alive after the launcher was killed: {len(alive(workers))} of {len(workers)}")
    finally:
        kill_tree(proc.pid, also=workers)
    return workers
