"""The study runner: every shipped study validates and plans (dry run), the stages are wired through the study
folder, a killed study resumes without redoing finished steps, and a reduced SmolLM2 study runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs_helpers import kill_run

from octo.config import ConfigError
from octo.manifest import PROJECT_ROOT, read_manifest
from study.config import load
from study.overview import describe
from study.runner import plan
from study.scheduler import Step, check_needs
from study.stages import midtrain_config

STUDIES = sorted((PROJECT_ROOT / "configs" / "studies").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _project_root(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # study configs name recipes relative to the project root


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_validates_and_plans(path, benchmarks_root):
    study = load(path, [f"out_dir=/tmp/octo-dry-run/{path.stem}"])
    text = describe(study)  # loads and validates every corpus, midtrain, RL and eval config it names
    steps = plan(study)
    assert steps
    for step in steps:
        assert step.name in text
    assert "compute:" in text and "FLOPs" in text
    assert sum(s.stage == "rl" for s in steps) == len(study.rl_arms())
    check_needs(steps)  # plan order is a valid order for the parallel scheduler
    by_name = {s.name: s for s in steps}
    for step in steps:
        if step.stage in ("rl", "probe", "eval") and not step.name.startswith("eval base"):
            model = step.name.split()[1].removesuffix("-rl")
            if model in study.arms:
                assert f"midtrain {model}" in step.needs or f"rl {model}" in step.needs, step.name
    assert set(by_name["readiness table"].needs) == set(by_name) - {"readiness table"}


def test_octothinker_plan_matches_the_recipe(benchmarks_root):
    study = load(PROJECT_ROOT / "configs/studies/octothinker_3b.yaml", ["out_dir=/tmp/o3b"])
    assert study.engine == "nanotron" and study.rl_arms() == [
        "base",
        "decay_short",
        "decay_long",
        "decay_hybrid",
    ]
    stable = midtrain_config(study, "stable", study.arms["stable"], "meta-llama/Llama-3.2-3B")
    assert stable.data.stages["stable"].tokens == 200_000_000_000
    assert (
        stable.data.stages["stable"].mixture["qa"].path == "/tmp/o3b/corpus/qa/tokens"
    )  # the study's corpus
    long = midtrain_config(study, "decay_long", study.arms["decay_long"], None)
    assert long.branch.from_run == "/tmp/o3b/midtrain/stable"  # the decay branch continues the stable run
    assert (
        long.model.base == "meta-llama/Llama-3.2-3B" and long.data.stages["decay_long"].tokens == 20 * 10**9
    )
    text = describe(study)
    assert "84.5 h" in text  # 6 x 3.21e9 x 200B FLOPs at 40% of 32 H100s


def test_demo_wiring(tmp_path):
    study = load(PROJECT_ROOT / "configs/studies/demo.yaml", [f"out_dir={tmp_path}"])
    base = midtrain_config(study, "base", study.base.pretrain, None)
    assert base.model.tiny.tokenizer == str(tmp_path / "tokenizer")  # the study's own BPE
    assert base.output_dir == str(tmp_path / "midtrain" / "base")
    arm = midtrain_config(
        study, "mathqa_instr", study.arms["mathqa_instr"], str(tmp_path / "midtrain/base/final")
    )
    mixture = arm.data.stages["mathqa_instr"].mixture
    assert {k: v.weight for k, v in mixture.items()} == {"mathweb": 89, "qa": 10, "instruct": 1}
    assert mixture["qa"].path == str(tmp_path / "corpus" / "qa" / "tokens")
    assert arm.model.base == str(tmp_path / "midtrain/base/final")
    names = [s.name for s in plan(study)]
    assert (
        names.index("tokenizer: train BPE")
        < names.index("corpus qa: tokens")
        < names.index("midtrain base (pre-training)")
    )
    assert (
        names.index("rl mathqa") < names.index("eval mathqa-rl / demo_zeroshot")
        and names[-1] == "readiness table"
    )


def test_bad_references_name_the_field(tmp_path):
    text = (
        (PROJECT_ROOT / "configs/studies/demo.yaml")
        .read_text()
        .replace("mixture: {mathweb: 1}", "mixture: {mathwbe: 1}")
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="arms.mathweb.mixture: no corpus named 'mathwbe'"):
        load(path)
    with pytest.raises(ConfigError, match="start_from"):
        load(PROJECT_ROOT / "configs/studies/demo.yaml", ["arms.mathqa.start_from=nowhere"])


TINY_STUDY = """
name: tiny
out_dir: {out}
corpora:
  pretrain: {{recipe: {root}/configs/corpus/demo_pretrain.yaml}}
  qa: {{recipe: {root}/configs/corpus/demo_qa.yaml, overrides: [sources.0.size=1500]}}
tokenizer: {{vocab_size: 400, train_docs: {{pretrain: 400, qa: 200}}}}
base:
  pretrain:
    recipe: {root}/configs/midtrain/demo_pretrain.yaml
    mixture: {{pretrain: 1}}
    tokens: 61440
    overrides: [model.tiny.model.hidden_size=32, model.tiny.model.intermediate_size=64, train.checkpoint_every=5, train.log_every=5]
arms:
  qa: {{recipe: {root}/configs/midtrain/demo_mathqa.yaml, mixture: {{qa: 1}}, tokens: 10240}}
rl:
  config: {root}/configs/rl/demo.yaml
  overrides: [trainer.steps=3, prompts.size=50, validation.every=0, validation.sets.0.size=10]
eval:
  before_rl: [{root}/configs/eval/demo_zeroshot.yaml]
  after_rl: [{root}/configs/eval/demo_zeroshot.yaml]
  overrides: [max_items=8]
"""


def _run_study(config: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "octo", "study", "run", str(config), *args], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_killed_study_resumes_without_redoing_finished_steps(tmp_path, workers):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_STUDY.format(out=tmp_path / "study", root=PROJECT_ROOT) + f"workers: {workers}\n")
    study = load(config)
    names = [s.name for s in plan(study)]
    kill_after = names.index("midtrain base (pre-training)") + 1  # steps done before the kill

    proc = _run_study(config)
    manifest = tmp_path / "study" / "study"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        done = (read_manifest(manifest) or {}).get("counts", {}).get("done", 0)
        if done >= kill_after:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()
    kill_run(proc, manifest)  # and no process of the killed study is left
    first = read_manifest(manifest)
    finished = {t["step"] for t in first["timings"]}
    assert set(names[:kill_after]) <= finished and first["status"] == "running"
    stamps = {
        n: read_manifest(s.out)["created"]
        for n, s in zip(names, plan(study))
        if n in finished and s.stage != "tokenizer"
    }

    proc = _run_study(config)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    second = read_manifest(manifest)
    assert second["status"] == "complete" and sorted(t["step"] for t in second["timings"]) == sorted(names)
    for timing in second["timings"]:
        if timing["step"] in finished:  # finished before the kill: not redone
            assert timing["cached"], timing
    for step in plan(study):
        if step.name in stamps:
            assert read_manifest(step.out)["created"] == stamps[step.name], step.name
    assert not any(t["cached"] for t in second["timings"] if t["step"] not in finished)
    rows = json.loads((tmp_path / "study" / "readiness.json").read_text())["rows"]
    assert [r["arm"] for r in rows] == ["base", "qa"] and (tmp_path / "study" / "readiness.html").is_file()


@pytest.mark.slow
def test_reduced_smollm2_study_runs(tmp_path, benchmarks_root):
    """CI's reduced SmolLM2 study: the real checkpoint through every stage, with tiny budgets."""
    overrides = [
        f"out_dir={tmp_path / 'smollm2'}",
        "corpora.mathweb.overrides=[sources.1.size=300]",
        "corpora.qa.overrides=[sources.0.size=300]",
        "corpora.instruct.overrides=[sources.0.size=100]",
        "arms.mathqa_instr.tokens=4096",
        "rl.overrides=[trainer.steps=2,trainer.num_generations=2,trainer.max_completion_length=16,prompts.size=40,validation.every=0,validation.sets.0.size=4,checkpoint.every=0]",
        "eval.overrides=[generation.max_new_tokens=16,tasks.gsm8k.max_items=2,tasks.math500.max_items=2,"
        "tasks.math500.max_new_tokens=16,tasks.arith.size=4,tasks.arith.max_new_tokens=16]",
    ]
    proc = _run_study(PROJECT_ROOT / "configs/studies/smollm2.yaml", *overrides)
    out, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, out[-4000:]
    root = tmp_path / "smollm2"
    assert (root / "midtrain/mathqa_instr/final/model.safetensors").is_file()
    for arm in ("base", "mathqa_instr"):
        rows = [json.loads(line) for line in (root / "rl" / arm / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if r["reward_mean"] is not None] == [1, 2]
        results = json.loads((root / "eval" / f"{arm}-rl" / "smollm2_zeroshot" / "results.json").read_text())
        assert set(results["tasks"]) == {"gsm8k", "math500", "arith"}
    table = (root / "readiness.md").read_text()
    assert "mathqa_instr" in table and "base" in table


def test_study_seed_shifts_training_seeds_not_evaluation(tmp_path):
    study = load(PROJECT_ROOT / "configs/studies/demo.yaml", [f"out_dir={tmp_path}", "seed=3"])
    base = midtrain_config(study, "base", study.base.pretrain, None)
    assert base.seed == 3 and base.model.tiny.seed == 3  # init and data order
    from study.stages import rl_config

    assert rl_config(study, "mathqa").seed == 3
    assert rl_config(load(PROJECT_ROOT / "configs/studies/demo.yaml"), "mathqa").seed == 0


def test_seeds_table_is_mean_and_sd(tmp_path, capsys):
    from study.seeds import main as seeds

    for i, acc in enumerate((0.2, 0.4)):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        row = {"arm": "qa", "verdict": "ready", "rl_acc_start": acc, "rl_acc_final": acc + 0.1,
               "passk_pre/demo_sampled/arith/pass@1": acc, "passk_pre/demo_sampled/arith/pass@4": 0.9,
               "passk_post/demo_sampled/arith/pass@1": acc + 0.1 * (i + 1)}  # fmt: skip
        (folder / "readiness.json").write_text(json.dumps({"columns": list(row), "rows": [row]}))
    assert seeds([str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    # pass@1, not pass@4; the paired RL effect (0.1, 0.2) has its own spread
    assert "| qa | 0.30 ± 0.14 | 0.30 ± 0.14 | 0.40 ± 0.14 | 0.45 ± 0.21 | 0.15 ± 0.07 | ready x2 |" in out
    assert (tmp_path / "t.md").read_text().strip() == out.strip()
    with pytest.raises(SystemExit):
        seeds([str(tmp_path)])  # no readiness.json there


def test_estimate_times_decoding_at_its_own_utilisation():
    from study.config import ComputeEntry
    from study.estimate import Estimate

    rl_step = Estimate(tokens=1e6, flops=8e12, generation_flops=2e12)  # 6e12 training + 2e12 decoding
    assert rl_step.seconds(ComputeEntry(peak_flops=1e12, utilisation=0.5)) == pytest.approx(16.0)
    slow_decoding = ComputeEntry(peak_flops=1e12, utilisation=0.5, generation_utilisation=0.05)
    assert rl_step.seconds(slow_decoding) == pytest.approx(12.0 + 40.0)


@pytest.mark.slow
def test_steps_in_two_workers_write_what_one_process_writes(tmp_path):
    """The parallel scheduler changes when steps run, not what they compute: same weights, same table."""
    outs = {}
    for workers in (1, 2):
        config = tmp_path / f"tiny{workers}.yaml"
        config.write_text(
            TINY_STUDY.format(out=tmp_path / f"w{workers}", root=PROJECT_ROOT) + f"workers: {workers}\n"
        )
        proc = _run_study(config)
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-3000:]
        outs[workers] = tmp_path / f"w{workers}"
    assert "2 steps at a time, 1 torch thread(s) each" in out or os.cpu_count() != 2
    for model in ("midtrain/base/final", "midtrain/qa/final", "rl/base/final", "rl/qa/final"):
        one, two = (outs[w] / model / "model.safetensors" for w in (1, 2))
        assert one.read_bytes() == two.read_bytes(), model
    rows = [json.loads((outs[w] / "readiness.json").read_text())["rows"] for w in (1, 2)]
    assert rows[0] == rows[1]


def test_a_step_may_need_only_steps_planned_before_it():
    check_needs([Step("a", Path("a"), lambda: None), Step("b", Path("b"), lambda: None, needs=("a",))])
    with pytest.raises(ConfigError, match="step 'a' needs \\['b'\\]"):
        check_needs([Step("a", Path("a"), lambda: None, needs=("b",)), Step("b", Path("b"), lambda: None)])
