"""No process outlives its run (issue 19): children of every kind die with a SIGKILLed main process, a run
refuses a folder while a process of an earlier run there is alive, and the torn-tail-tolerant JSONL reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from procs_helpers import kill_run

from octo.jsonl import append_jsonl, drop_torn_tail, read_jsonl
from octo.procs import LOCK_NAME, RunLockedError, project_processes, read_lock, run_lock

ROOT = Path(__file__).resolve().parent.parent


def _start(tmp_path: Path, body: str, *args: str, defs: str = "") -> subprocess.Popen:
    """A main process that takes the run lock of tmp_path/out, runs ``body``, then writes out/ready and sleeps
    (``defs``: module-level code, importable by spawned children)."""
    script = tmp_path / "main.py"
    head = "import os, subprocess, sys, threading, time\nfrom pathlib import Path\nfrom octo.procs import child_preexec, run_lock\n"
    main = "out = Path(sys.argv[1])\nwith run_lock(out):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    main += "\n    (out / 'ready').write_text('1')\n    time.sleep(600)\n"
    script.write_text(
        head + textwrap.dedent(defs) + '\nif __name__ == "__main__":\n' + textwrap.indent(main, "    ")
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "out"), *args], cwd=ROOT, env=env)


def _wait_ready(proc: subprocess.Popen, out: Path, children: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the main process ended early"
        if (out / "ready").exists() and len(psutil.Process(proc.pid).children(recursive=True)) >= children:
            return
        time.sleep(0.05)
    raise AssertionError("the main process did not start its children in time")


FORKS = """
for _ in range(2):
    if os.fork() == 0:  # a forked child that would sleep forever
        time.sleep(600); os._exit(0)
def fork_from_a_thread():
    if os.fork() == 0:
        time.sleep(600); os._exit(0)
t = threading.Thread(target=fork_from_a_thread); t.start(); t.join()
subprocess.Popen(["sleep", "600"], preexec_fn=child_preexec())
"""


def test_forked_threaded_and_exec_children_die_with_a_killed_main(tmp_path):
    proc = _start(tmp_path, FORKS)
    _wait_ready(proc, tmp_path / "out", children=4)
    kill_run(proc, tmp_path / "out")


SLEEPER = """
def sleeper(data, rank=0, world_size=1):
    time.sleep(600)
    yield from data
"""
POOL = """
from pipelines.executors import _local_executor_class
executor = _local_executor_class()([sleeper], tasks=2, workers=2, logging_dir=str(out / "logs"),
                                   start_method=sys.argv[2])
threading.Thread(target=executor.run, daemon=True).start()
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn", "fork"])
def test_datatrove_pool_and_manager_die_with_a_killed_build(tmp_path, method):
    """The survivor of issue 19 was datatrove's multiprocess Manager; its pool workers would hang as well."""
    proc = _start(tmp_path, POOL, method, defs=SLEEPER)
    _wait_ready(proc, tmp_path / "out", children=3)  # manager + 2 workers (+ fork server, resource tracker)
    deadline = time.time() + 60
    while len(list((tmp_path / "out" / "logs" / "logs").glob("task_*.log"))) < 2:
        assert time.time() < deadline, "the pool's tasks did not start"
        time.sleep(0.1)  # both tasks started in their workers
    kill_run(proc, tmp_path / "out")


def test_a_live_process_of_an_earlier_run_blocks_the_folder_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    # an earlier run whose child escaped (no preexec_fn): the child carries the run's token
    proc = _start(tmp_path, 'subprocess.Popen(["sleep", "600"], start_new_session=True)')
    _wait_ready(proc, out, children=1)
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
        with run_lock(out):
            pass
    escaped = psutil.Process(proc.pid).children()[0]
    proc.kill()
    proc.wait()
    try:
        with pytest.raises(RunLockedError, match=f"pid {escaped.pid} \\(sleep 600\\)"):
            with run_lock(out):
                pass
    finally:
        escaped.kill()
        escaped.wait(5)
    stale = read_lock(out)
    with run_lock(out) as path:  # nobody of that run is left: the lock is taken over
        assert read_lock(out)["pid"] == os.getpid() and read_lock(out)["token"] != stale["token"]
        assert read_lock(out)["token"] in os.environ["OCTO_RUN_TOKENS"]
        with run_lock(out):  # the same process may take it again inside
            pass
        assert path.exists()
    assert not (out / LOCK_NAME).exists() and "OCTO_RUN_TOKENS" not in os.environ


def test_leftover_listing_finds_a_checkout_process_and_not_itself(tmp_path):
    root = tmp_path / "checkout"
    root.mkdir()
    cmd = [sys.executable, "-m", "octo.procs", "leftovers", str(root), "--grace", "0.5"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run(cmd, env=env, capture_output=True, text=True).returncode == 0
    sleeper = subprocess.Popen(["sleep", "600"], cwd=root)
    try:
        assert [p.pid for p in project_processes(root)] == [sleeper.pid]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert result.returncode == 1 and f"pid {sleeper.pid} (sleep 600)" in result.stdout
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------------------------ JSONL
def test_torn_last_line_is_tolerated_only_where_asked_and_only_at_the_end(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in range(3):
        append_jsonl(path, {"step": step})
    full = path.read_bytes()
    path.write_bytes(full[:-5])  # a kill in the middle of the last write
    assert [r["step"] for r in read_jsonl(path, torn_tail=True)] == [0, 1]
    with pytest.raises(ValueError, match=r"metrics.jsonl:3: not valid JSON"):
        list(read_jsonl(path))
    append_jsonl(path, {"step": 2})  # the next append cuts the torn line first
    assert path.read_bytes() == full and [r["step"] for r in read_jsonl(path)] == [0, 1, 2]
    path.write_bytes(full.replace(b'{"step": 1}', b'{"step": 1'))  # a bad line inside: always an error
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not valid JSON"):
        list(read_jsonl(path, torn_tail=True))
    path.write_bytes(full[:-1])  # a complete last row that only lost its newline is kept, by both
    assert [r["step"] for r in read_jsonl(path, torn_tail=True)] == [0, 1, 2]
    assert not drop_torn_tail(path) and path.read_bytes() == full
    assert not drop_torn_tail(path) and not drop_torn_tail(tmp_path / "missing.jsonl")
    path.write_text(json.dumps({"a": "x" * 200_000})[:-3])  # one long torn line and nothing before it
    assert drop_torn_tail(path) and path.read_bytes() == b""


def test_a_killed_but_unreaped_lock_holder_does_not_block_the_folder(tmp_path):
    """An orphaned worker killed by SIGKILL stays a zombie where PID 1 does not reap (CI containers): its
    start time still reads, but it can write nothing, so it must not hold the folder."""
    out = tmp_path / "out"
    proc = _start(tmp_path, "")
    _wait_ready(proc, out, children=0)
    proc.kill()
    deadline = time.time() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.time() < deadline:
        time.sleep(0.02)
    assert psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE  # not reaped: we have not waited
    try:
        assert read_lock(out)["pid"] == proc.pid
        with run_lock(out):
            assert read_lock(out)["pid"] == os.getpid()
    finally:
        proc.wait()
