"""Processes of a run: every process a run starts dies with it, and one run at a time works in an output folder.

Dying with the parent must not depend on the main process running any cleanup (SIGKILL, the OOM killer and a
Slurm preemption give it none), so it is arranged in each child when the child starts:

* ``install()`` (called by ``run_lock``, so by every stage entry) registers an at-fork hook: every child that
  this process forks (datatrove's ``multiprocess`` Manager and fork pools, torch DataLoader workers, ...) asks
  the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``). The kernel ties that signal to
  the forking *thread*, so a child forked from another thread gets a parent-pid watchdog thread instead.
  The hook is inherited, so grandchildren die with their parent in turn.
* Pools started by spawn or forkserver run a fresh interpreter without the hook: give them
  ``initializer, initargs = pool_initializer()``: a watchdog thread on a pidfd of this process. (A forkserver
  worker's parent is the fork server, which stays alive as long as any worker holds its pipe.)
* ``subprocess`` children: ``preexec_fn=child_preexec()`` sets the same signal between fork and exec; it
  survives exec. The kernel clears it for set-user-id programs only.

``run_lock(folder)`` writes ``.octo-run.lock`` (pid, start time, a token) into an output folder and refuses to
start while the pid of an earlier run, or any process carrying its token, is alive; a stale lock is taken
over. The token goes into the environment (``OCTO_RUN_TOKENS``) so that children of every kind carry it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import select
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from octo.config import ConfigError

LOCK_NAME = ".octo-run.lock"
TOKENS_ENV = "OCTO_RUN_TOKENS"
PR_SET_PDEATHSIG = 1
WATCHDOG_PERIOD_S = 0.2

# loaded once here: a child between fork and exec must not import or load anything
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_forking: dict[str, int | bool] = {"pid": 0, "main_thread": True}
_installed = False
_held: dict[str, int] = {}  # lock path -> nesting depth, for a process that takes the same lock again


class RunLockedError(ConfigError):
    """An output folder is in use by a live process of another run."""


# ------------------------------------------------------------------------------------- dying with the parent
def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (Slurm and taskset narrow it), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Get SIGKILL when the parent (thread) dies; exit at once if ``parent_pid`` is given and already gone."""
    if _LIBC is None:
        return
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and not _alive(parent_pid):
        os._exit(1)  # the parent died before the signal was armed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with(pid: int, take_along: tuple[int, ...] = ()) -> None:
    """Get SIGKILL when process ``pid`` (any process, not only the parent) dies: a daemon thread waits on a
    pidfd of it (polls where pidfds are missing). Exits at once if ``pid`` is already gone. ``take_along``:
    processes (still alive then, e.g. this one's parent) that get SIGKILL first."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        fd = None

    def watch():
        if fd is not None:
            select.select([fd], [], [])  # readable once the process has exited
        else:
            while _alive(pid):
                time.sleep(WATCHDOG_PERIOD_S)
        for other in take_along:
            try:
                os.kill(other, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="octo-watchdog", daemon=True).start()


def _before_fork() -> None:
    _forking["pid"] = os.getpid()
    _forking["main_thread"] = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    parent = int(_forking["pid"])
    if _forking["main_thread"]:
        die_with_parent()
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
    else:
        die_with(parent)


def install() -> None:
    """Make every child this process forks from now on (and their children) die with its parent."""
    global _installed
    if _installed or _LIBC is None:
        return
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    _installed = True


def child_preexec():
    """``preexec_fn`` for ``subprocess``: the child gets SIGKILL when this process dies. The kernel ties the
    signal to the calling thread: start the child from the main thread or from one that waits for it."""
    return functools.partial(die_with_parent, os.getpid())


def pool_initializer() -> tuple:
    """(initializer, initargs) for a process pool: each worker dies with this process, whatever the start
    method. A watchdog, not the parent-death signal: a forkserver worker's parent is the fork server, which
    itself lives until its last worker has gone; and a pool may be started from a thread that ends first."""
    return die_with, (os.getpid(),)


# ------------------------------------------------------------------------------------- one run per folder
def _start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def read_lock(folder: str | Path) -> dict | None:
    path = Path(folder) / LOCK_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_processes(lock: dict) -> list:
    """Live processes of the run that wrote ``lock``: its main process and every process carrying its token."""
    import psutil

    found = {}
    pid, start = lock.get("pid"), lock.get("started")
    if isinstance(pid, int) and start is not None and _start_time(pid) == start and pid != os.getpid():
        try:  # a zombie (killed, not yet reaped: e.g. an orphan where PID 1 does not reap) writes nothing
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found[pid] = psutil.Process(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    token = lock.get("token")
    if token:
        for proc in psutil.process_iter():
            if proc.pid in found or proc.pid == os.getpid():
                continue
            try:
                if (
                    token in proc.environ().get(TOKENS_ENV, "").split(os.pathsep)
                    and proc.status() != psutil.STATUS_ZOMBIE
                ):
                    found[proc.pid] = proc
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
    return sorted(found.values(), key=lambda p: p.pid)


def describe(proc) -> str:
    import psutil

    try:
        return f"pid {proc.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"pid {proc.pid}"


def _check_free(folder: Path) -> None:
    lock = read_lock(folder)
    if lock is None:
        return
    alive = run_processes(lock)
    if alive:
        raise RunLockedError(
            f"{folder} is in use by an earlier run that is still alive: "
            + ", ".join(describe(p) for p in alive[:5])
            + f"; wait for it to finish or kill it, then run again (lock: {folder / LOCK_NAME})"
        )


@contextlib.contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder``'s run lock for the block (see the module doc); also ``install()``s the fork hook."""
    install()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if (
        os.environ.get("RANK", "0") != "0"
    ):  # a torchrun/accelerate worker: rank 0 holds the lock for the group
        yield path
        return
    key = str(path.resolve())
    if key in _held:  # this process holds it already (a stage called again inside the same run)
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    _check_free(folder)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    lock = {"pid": os.getpid(), "started": _start_time(os.getpid()), "token": token, "argv": sys.argv}
    tmp = path.with_name(f"{LOCK_NAME}.{token}")
    tmp.write_text(json.dumps(lock) + "\n")
    os.replace(tmp, path)
    if (read_lock(folder) or {}).get("token") != token:  # another run took it at the same moment
        _check_free(folder)
    previous = os.environ.get(TOKENS_ENV)
    os.environ[TOKENS_ENV] = os.pathsep.join([*([previous] if previous else []), token])
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        if previous is None:
            os.environ.pop(TOKENS_ENV, None)
        else:
            os.environ[TOKENS_ENV] = previous
        if (read_lock(folder) or {}).get("token") == token:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------- leftovers (for CI)
def project_processes(root: str | Path) -> list:
    """Live processes of this checkout (``root`` in the command line or as working folder), except this
    process, its ancestors and zombies."""
    import psutil

    root = str(Path(root).resolve())
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cwd = proc.cwd()
            mentions = any(root in arg for arg in proc.cmdline())
            if mentions or cwd == root or cwd.startswith(root + os.sep):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m octo.procs leftovers ROOT [--grace S]``: list processes of the checkout still alive; exit 1
    if there is one after the grace period."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m octo.procs")
    parser.add_argument("command", choices=["leftovers"])
    parser.add_argument("root")
    parser.add_argument("--grace", type=float, default=5.0)
    args = parser.parse_args(argv)
    deadline = time.time() + args.grace
    left = project_processes(args.root)
    while left and time.time() < deadline:
        time.sleep(0.25)
        left = project_processes(args.root)
    for proc in left:
        print(f"still alive: {describe(proc)}")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
