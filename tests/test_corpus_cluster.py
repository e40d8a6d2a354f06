"""The same recipe on a real single-node Slurm cluster and a local Ray instance, checked against the local build.

The Slurm cluster is installed (apt) and started by tests/cluster/start_slurm.sh, and stopped afterwards. Every
test has a timeout, so a hung cluster fails instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from corpus_helpers import EASY, docs_by_file, token_files, write_recipe

from pipelines.build import CorpusBuildError, build
from pipelines.recipe import load_recipe

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if shutil.which("sbatch") is None and (os.geteuid() != 0 or shutil.which("apt-get") is None):
        pytest.skip("no Slurm client tools, and cannot install them (needs root and apt-get)")
    env = {**os.environ, "SLURM_CI_ROOT": str(tmp_path_factory.mktemp("slurm")), "SLURM_CI_CPUS": "4"}
    started = subprocess.run(
        ["bash", str(HERE / "cluster" / "start_slurm.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert started.returncode == 0, f"start_slurm.sh failed:\n{started.stdout}\n{started.stderr}"
    yield
    subprocess.run(
        ["bash", str(HERE / "cluster" / "stop_slurm.sh"), "--purge"],
        env=env,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # workers import this checkout's `pipelines` (in CI it is also installed)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, benchmarks_root, tiny_tokenizer):
    tmp = tmp_path_factory.mktemp("cluster")
    data = {
        "name": "cluster",
        "output_dir": str(tmp / "local"),
        "sources": [
            {"name": "wiki", "type": "wiki", "exclude_topic": "Mathematics", "hash_range": [0.0, 0.03]},
            {"name": "arith", "type": "arithmetic", "format": "qa", "fields": {"answer": "solution"}, "size": 300,
             "seed": 41, "dedup": False, "mix": [{"weight": 1, "options": EASY}]},
        ],
        "minhash": {"num_buckets": 2, "hashes_per_bucket": 8},
        "decont": {"n_grams": 12, "benchmarks": ["gsm8k"], "benchmarks_dir": str(benchmarks_root)},
        "tokenize": {"tokenizer": str(tiny_tokenizer)},
        "executor": {
            "local": {"tasks": 2},
            "slurm": {"tasks": 2, "mem_per_cpu_gb": 1, "time": "00:10:00", "poll_s": 0.5, "wait_timeout_s": 400},
            "ray": {"tasks": 2, "mem_per_cpu_gb": 0.5},
        },
    }  # fmt: skip
    path = write_recipe(tmp / "recipe.yaml", data)
    reference = build(load_recipe(path))
    return {"path": path, "tmp": tmp, "reference": reference}


def _same_corpus(out: Path, reference: Path) -> None:
    assert docs_by_file(out / "docs") == docs_by_file(reference / "docs")
    assert token_files(out / "tokens") == token_files(reference / "tokens")
    a, b = json.loads((out / "stats.json").read_text()), json.loads((reference / "stats.json").read_text())
    assert a["sources"] == b["sources"] and a["totals"]["balanced"] is True


def _broken_model_recipe(tmp: Path, name: str) -> Path:
    (tmp / "broken.bin").write_bytes(b"this is not a fastText model")
    data = {"name": name, "output_dir": str(tmp / name),
            "sources": [{"name": "wiki", "type": "wiki", "topic": "Mathematics"}],
            "filters": {"math": {"model": str(tmp / "broken.bin")}},
            "executor": {"slurm": {"tasks": 2, "mem_per_cpu_gb": 1, "poll_s": 0.5, "wait_timeout_s": 300},
                         "ray": {"tasks": 2, "mem_per_cpu_gb": 0.5}}}  # fmt: skip
    return write_recipe(tmp / f"{name}.yaml", data)


@pytest.mark.timeout(600)
def test_slurm_build_matches_local(slurm_cluster, recipe_file):
    recipe = load_recipe(recipe_file["path"], [f"output_dir={recipe_file['tmp'] / 'slurm'}"])
    start = time.time()
    out = build(recipe, executor="slurm", wait=False)  # datatrove returns right after sbatch
    assert time.time() - start < 60
    assert json.loads((out / "manifest.json").read_text())["status"] == "submitted"
    jobs = json.loads((out / "work" / "slurm_jobs.json").read_text())["job_ids"]
    assert len(jobs) == 7
    out = build(recipe, executor="slurm", wait=True)  # waits for the same jobs, never submits them twice
    assert json.loads((out / "work" / "slurm_jobs.json").read_text())["job_ids"] == jobs
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    _same_corpus(out, recipe_file["reference"])
    assert (out / "work" / "logs" / "filter" / "slurm_logs").is_dir()


@pytest.mark.timeout(300)
def test_slurm_failed_tasks_are_reported(slurm_cluster, tmp_path):
    recipe = load_recipe(_broken_model_recipe(tmp_path, "broken_slurm"))
    with pytest.raises(CorpusBuildError) as failure:
        build(recipe, executor="slurm", wait=True)
    message = str(failure.value)
    assert "stage filter: 2/2 tasks failed" in message and "task 0:" in message
    assert "error: ValueError:" in message and "has wrong file format" in message  # the log says why


@pytest.mark.timeout(600)
def test_ray_build_matches_local(ray_instance, recipe_file):
    out = build(
        load_recipe(recipe_file["path"], [f"output_dir={recipe_file['tmp'] / 'ray'}"]), executor="ray"
    )
    _same_corpus(out, recipe_file["reference"])


@pytest.mark.timeout(300)
def test_ray_failed_tasks_are_reported(ray_instance, tmp_path):
    # datatrove's Ray executor only logs failed tasks; the build turns them into an error
    recipe = load_recipe(_broken_model_recipe(tmp_path, "broken_ray"))
    with pytest.raises(CorpusBuildError, match="stage filter: 2/2 tasks failed") as failure:
        build(recipe, executor="ray")
    assert "has wrong file format" in str(failure.value)
