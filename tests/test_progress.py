"""Progress you can trust: the study's overall line and ETA, and bars that do not flood a log file."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from midtrain_helpers import qa_texts, tiny_config, write_config, write_shards

from octo.manifest import PROJECT_ROOT
from octo.progress import bar, quiet_libraries
from study.progress import Progress, minutes


def test_eta_starts_from_the_estimate_and_follows_the_measured_speed():
    stages = ["corpus", "midtrain", "midtrain", "rl", "eval", "corpus"]
    p = Progress(stages, [0.0, 120.0, 120.0, 240.0, 60.0, 0.0], started=0)
    assert p.left() == 540.0  # nothing measured: the dry-run estimate (corpus steps have none)
    p.finished(0, 30.0, cached=False)  # a corpus step: no estimate, but now its stage has a measured time
    assert p.left() == 540.0 + 30.0
    p.finished(1, 240.0, cached=False)  # mid-training took twice its estimate
    # the next mid-training step at its own stage's ratio; rl and eval, not measured yet, at the overall one
    assert p.ratio("midtrain") == p.ratio() == 2.0 and p.left() == (120.0 + 240.0 + 60.0) * 2 + 30.0
    p.finished(2, 120.0, cached=True)  # a cached step says nothing about speed
    assert p.ratio("midtrain") == 2.0 and p.left() == (240.0 + 60.0) * 2 + 30.0
    p.finished(3, 60.0, cached=False)  # RL ran 4x faster than estimated: eval follows the overall ratio
    assert p.ratio("rl") == 0.25 and p.ratio("eval") == p.ratio() == 300.0 / 360.0
    assert p.left() == pytest.approx(60.0 * 300.0 / 360.0 + 30.0)


def test_the_line_reads_step_elapsed_left(monkeypatch):
    p = Progress(["midtrain"] * 27, [60.0] * 27)
    for i in range(7):
        p.finished(i, 30.0, cached=False)
    monkeypatch.setattr("study.progress.time.time", lambda: p.started + 4 * 60)
    assert p.line() == "step 7/27 · 4 min elapsed · ~10 min left"
    assert minutes(42) == "42 s" and minutes(7200) == "2.0 h"
    for i in range(7, 27):
        p.finished(i, 30.0, cached=False)
    assert p.line().endswith("elapsed")  # done: no time left to show


def test_bar_in_a_log_file_writes_lines_not_redraws():
    log = io.StringIO()  # not a terminal
    progress = bar(500, desc="train", stream=log)
    for _ in range(500):
        progress.update(1)
    progress.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) <= 3 and "500/500" in lines[-1] and "step/s" in lines[-1]  # the rate is there


def test_quiet_libraries_only_without_a_terminal(monkeypatch):
    for var in ("TQDM_DISABLE", "TQDM_MININTERVAL", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(var, raising=False)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    quiet_libraries(Terminal())
    assert "TQDM_DISABLE" not in os.environ
    quiet_libraries(io.StringIO())
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


@pytest.mark.slow
def test_a_run_logged_to_a_file_has_no_carriage_returns(tmp_path, tiny_model, tiny_tokenizer):
    """`octo midtrain run ... > log 2>&1`: the library bars are off, ours writes lines with its rate."""
    qa = write_shards(qa_texts(200), tiny_tokenizer, tmp_path / "qa")
    data = tiny_config(tmp_path / "run", tiny_model, {"qa": (qa, 1.0)}, name="logged")
    data["train"]["progress"] = True
    config = write_config(tmp_path / "c.yaml", data)
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.run([sys.executable, "-m", "octo", "midtrain", "run", str(config)], cwd=PROJECT_ROOT,
                              stdout=log, stderr=subprocess.STDOUT, env=env, timeout=300)  # fmt: skip
    text = (tmp_path / "log").read_bytes()
    assert proc.returncode == 0, text[-2000:]
    assert b"\r" not in text and b"Loading weights" not in text
    assert b"logged: 100%" in text and b"step/s" in text
