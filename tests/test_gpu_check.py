"""The one-command GPU check in its CPU smoke mode (tiny sizes): every part runs and the table reports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_smoke_prints_one_table():
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--smoke", "--timeout", "300"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.index("GPU check (smoke, CPU)") :].splitlines()
    rows = {
        line.split("|")[1].strip(): line.split("|")
        for line in table
        if line.startswith("| ") and "part" not in line
    }
    assert list(rows) == ["midtrain", "grpo", "eval", "vllm"]
    for part in ("midtrain", "grpo", "eval"):
        assert rows[part][2].strip() == "ok", rows[part]
    assert (
        "tokens/s" in rows["midtrain"][4]
        and "2 steps" in rows["grpo"][4]
        and "2 arith items" in rows["eval"][4]
    )
    import importlib.util

    vllm_here = importlib.util.find_spec("vllm") is not None
    assert rows["vllm"][2].strip() == ("ok" if vllm_here else "skipped")
