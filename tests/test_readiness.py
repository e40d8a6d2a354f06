"""The readiness table: verdict rules on hand-made RL metric files, and the files/plots of a whole study folder."""

from __future__ import annotations

import base64
import csv
import json
import math
import re

import pytest

from eval.readiness import ReadinessOptions, build_readiness, rl_summary, verdict
from octo.jsonl import write_jsonl

STEPS = 100


def rl_rows(acc, length, *, clip=lambda i: 0.02, repetition=lambda i: 0.0, zero_std=lambda i: 0.4):
    """One RL metrics row per step, in the RL stage's schema, from per-step functions."""
    rows = []
    for i in range(STEPS):
        rows.append(
            {
                "step": i,
                "reward_mean": 2 * acc(i) - 1,
                "reward_std": 0.5,
                "accuracy": acc(i),
                "frac_zero_std_groups": zero_std(i),
                "response_len_mean": length(i),
                "correct_len_mean": 0.8 * length(i),
                "clip_ratio": clip(i),
                "repetition_ratio": repetition(i),
                "multi_boxed_ratio": 0.01,
                "boxed_first_ratio": 0.0,
                "no_answer_ratio": 0.1,
                "entropy": 1.0,
                "lr": 1e-6,
                "step_time": 0.4,
            }
        )
        if i % 20 == 0:  # validation steps carry extra keys
            rows[-1]["val/arith/acc"] = acc(i)
            rows[-1]["val/arith/correct_len"] = 0.8 * length(i)
    return rows


HEALTHY = rl_rows(lambda i: 0.15 + 0.12 * i / STEPS, lambda i: 20.0)
COLLAPSE = rl_rows(
    lambda i: 0.1 + 0.4 * math.sin(math.pi * i / STEPS) ** 2 * (i < 60) + 0.02 * (i >= 60), lambda i: 30.0
)
RUNAWAY = rl_rows(lambda i: 0.05 + 0.1 * i / STEPS, lambda i: 40 + 1.5 * i, clip=lambda i: min(0.9, i / 100))
NO_GAIN = rl_rows(lambda i: 0.02 + 0.01 * (i % 2), lambda i: 44.0, clip=lambda i: 0.8, zero_std=lambda i: 0.9)
NO_SIGNAL = rl_rows(lambda i: 0.0, lambda i: 45.0, clip=lambda i: 0.8, zero_std=lambda i: 1.0)
REPETITIVE = rl_rows(lambda i: 0.1 + 0.2 * i / STEPS, lambda i: 30.0, repetition=lambda i: 0.6)


@pytest.mark.parametrize(
    "rows, expected, words",
    [
        (HEALTHY, "ready", ["0.16 -> 0.26", "+0.10"]),
        (COLLAPSE, "unstable", ["collapse", "peaked"]),
        (RUNAWAY, "unstable", ["runaway length", "at the limit"]),
        (NO_GAIN, "not ready", ["no gain"]),
        (NO_SIGNAL, "not ready", ["no learning signal", "100% of groups"]),
        (REPETITIVE, "not ready", ["repetitive"]),
        ([], "n/a", ["no RL run"]),
    ],
)
def test_verdict_rules(rows, expected, words):
    options = ReadinessOptions()
    summary = rl_summary(rows, options) if rows else {}
    got, reason = verdict(summary, options)
    assert got == expected, reason
    for word in words:
        assert word in reason


def test_sampling_noise_is_not_a_collapse_or_a_gain():
    """A flat run whose per-step accuracy is a binomial sample of 32 completions: peaks and dips are noise."""
    import random

    rng = random.Random(0)
    noisy = rl_rows(lambda i: sum(rng.random() < 0.2 for _ in range(32)) / 32, lambda i: 20.0)
    for row in noisy:
        row["completions"] = 32
    options = ReadinessOptions()
    summary = rl_summary(noisy, options)
    got, reason = verdict(summary, options)
    assert got == "not ready" and "no gain" in reason, reason
    assert summary["rl_acc_se"]["start"] == pytest.approx(math.sqrt(0.2 * 0.8 / (20 * 32)), abs=0.01)
    # a real rise well above the noise is still read as a gain
    rising = rl_rows(lambda i: 0.1 + 0.3 * i / STEPS, lambda i: 20.0)
    for row in rising:
        row["completions"] = 32
    assert verdict(rl_summary(rising, options), options)[0] == "ready"
    plain = [{k: v for k, v in row.items() if k != "completions"} for row in noisy]
    assert "rl_acc_se" not in rl_summary(plain, options)  # no completion counts: no noise estimate


def test_rl_summary_windows_and_peak():
    summary = rl_summary(COLLAPSE, ReadinessOptions(window=10))
    assert summary["rl_steps"] == STEPS
    assert summary["rl_acc_start"] == pytest.approx(sum(r["accuracy"] for r in COLLAPSE[:10]) / 10)
    assert summary["rl_acc_final"] == pytest.approx(0.12, abs=1e-9)
    assert 0.4 < summary["rl_acc_peak"] <= 0.5 and 45 <= summary["rl_peak_step"] <= 55
    assert summary["val_acc_start/arith"] == COLLAPSE[0]["accuracy"]
    runaway = rl_summary(RUNAWAY, ReadinessOptions())
    assert runaway["len_trend"] > 1.5 and runaway["clip_final"] > 0.8
    # a stricter gain threshold turns the healthy run into "not ready"
    assert verdict(rl_summary(HEALTHY, ReadinessOptions()), ReadinessOptions(min_gain=0.2))[0] == "not ready"


def eval_results(tasks: dict, *, n: int = 1, fewshot: int = 0) -> dict:
    """A results.json in eval.runner's format (only the fields readiness reads are filled)."""
    entries = {}
    for name, score in tasks.items():
        if n == 1:
            scores = {"acc": {"value": score, "stderr": 0.02}}
        else:  # score: pass@1; pass@k grows towards 1
            scores = {f"pass@{k}": {"value": 1 - (1 - score) ** k, "stderr": 0.02} for k in (1, 2, 4, 8)}
            scores["mean@8"] = {"value": score, "stderr": 0.02}
        entries[name] = {"score": score, "stderr": 0.02, "fewshot": fewshot, "n": 100, "scores": scores}
    return {"suite": "x", "complete": True, "settings": {"generation": {"n": n}}, "tasks": entries}


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path / "demo")


def make_study(root):
    """A study folder with four RL runs of known shape, eval results before/after RL, and gaps."""
    arms = {"base": NO_GAIN, "control": RUNAWAY, "mathweb": COLLAPSE, "mathqa": HEALTHY}
    for i, (arm, rows) in enumerate(arms.items()):
        write_jsonl(root / "rl" / arm / "metrics.jsonl", rows)
        write_jsonl(
            root / "midtrain" / arm / "metrics.jsonl",
            [
                {
                    "step": s,
                    "tokens": s * 4096,
                    "loss": 8.0 / (1 + s / 20) + 0.1 * i,
                    "lr": 3e-3 * (1 - s / 200),
                    "tokens_per_s": 9e3,
                }
                for s in range(200)
            ],
        )
        pre = 0.05 + 0.1 * i
        for model, shift in ((arm, 0.0), (arm + "-rl", 0.08)):
            if model == "control-rl":
                continue  # a suite not run: the table leaves the cells empty and says so
            for suite, results in (
                ("demo_zeroshot", eval_results({"arith": pre + shift})),
                ("demo_sampled", eval_results({"arith": pre + shift}, n=8)),
            ):
                (root / "eval" / model / suite).mkdir(parents=True)
                (root / "eval" / model / suite / "results.json").write_text(json.dumps(results))
        (root / "eval" / arm / "demo_fewshot").mkdir(parents=True)
        (root / "eval" / arm / "demo_fewshot" / "results.json").write_text(
            json.dumps(eval_results({"arith": pre + 0.02}, fewshot=3))
        )
    # an arm that was mid-trained but never went through RL
    write_jsonl(
        root / "midtrain" / "mathqa_instr" / "metrics.jsonl",
        [{"step": 0, "tokens": 0, "loss": 8.0, "lr": 0.0}],
    )
    return root


def test_build_readiness_writes_every_format(study):
    md = build_readiness(study, arms=["base", "control", "mathweb", "mathqa", "mathqa_instr"])
    assert md == study / "readiness.md"
    data = json.loads((study / "readiness.json").read_text())
    rows = {row["arm"]: row for row in data["rows"]}
    assert list(rows) == ["base", "control", "mathweb", "mathqa", "mathqa_instr"]
    assert data["suites"] == {"demo_fewshot": "fewshot", "demo_sampled": "passk", "demo_zeroshot": "zeroshot"}
    assert rows["mathqa"]["verdict"] == "ready"
    assert rows["mathweb"]["verdict"] == "unstable" and "collapse" in rows["mathweb"]["reason"]
    assert rows["control"]["verdict"] == "unstable" and "runaway" in rows["control"]["reason"]
    assert rows["base"]["verdict"] == "not ready"
    assert rows["mathqa_instr"]["verdict"] == "n/a"
    assert "rl/mathqa_instr/metrics.jsonl missing" in rows["mathqa_instr"]["notes"]
    # few-shot base score, zero-shot before/after, pass@k before/after, all from the eval results
    assert rows["mathqa"]["fewshot/demo_fewshot/arith"] == pytest.approx(0.37)
    assert rows["mathqa"]["zeroshot_pre/demo_zeroshot/arith"] == pytest.approx(0.35)
    assert rows["mathqa"]["zeroshot_post/demo_zeroshot/arith"] == pytest.approx(0.43)
    assert rows["mathqa"]["passk_post/demo_sampled/arith/pass@8"] == pytest.approx(1 - 0.57**8)
    # a suite not run after RL: empty cells and a note
    assert rows["control"]["zeroshot_post/demo_zeroshot/arith"] is None
    assert "eval/control-rl/demo_zeroshot missing" in rows["control"]["notes"]

    with (study / "readiness.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["arm"] for r in table] == list(rows)
    assert table[3]["verdict"] == "ready" and float(table[3]["rl_gain"]) == pytest.approx(
        rows["mathqa"]["rl_gain"]
    )

    text = md.read_text()
    for title in ("Before RL", "RL dynamics", "After RL and verdict", "Missing pieces"):
        assert f"## {title}" in text
    assert "| mathqa |" in text and "**ready**" in text

    plots = sorted(p.name for p in (study / "plots").glob("*.png"))
    assert plots == [
        "midtrain_loss.png",
        "passk_demo_sampled_arith.png",
        "rl_accuracy.png",
        "rl_correct_length.png",
        "rl_length.png",
    ]
    page = (study / "readiness.html").read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == len(plots)  # every plot embedded, nothing linked
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert not re.search(r"(src|href)=['\"](?!data:)", page)


def test_readiness_default_order_and_cli(study, capsys):
    from eval.readiness import main

    assert main([str(study), "min_gain=0.2"]) == 0
    rows = json.loads((study / "readiness.json").read_text())["rows"]
    assert rows[0]["arm"] == "base"  # baseline first, then sorted
    assert [r["arm"] for r in rows[1:]] == sorted(r["arm"] for r in rows[1:])
    assert {r["arm"]: r["verdict"] for r in rows}["mathqa"] == "not ready"  # gain 0.12 < 0.2
    assert "RL readiness" in capsys.readouterr().out


def test_readiness_keeps_the_study_arm_order(study):
    from eval.readiness import main

    # the study runner's manifest lists the arms in the order the study config gives them
    (study / "study").mkdir()
    config = {"arms": {"mathqa_instr": {}, "mathweb": {}, "control": {}, "mathqa": {}, "gone": {}}}
    (study / "study" / "manifest.json").write_text(json.dumps({"config": config}))
    assert main([str(study)]) == 0
    rows = json.loads((study / "readiness.json").read_text())["rows"]
    assert [r["arm"] for r in rows] == ["base", "mathqa_instr", "mathweb", "control", "mathqa"]


def test_readiness_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_readiness(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no arms found"):
        build_readiness(tmp_path / "empty")
    bad = tmp_path / "bad"
    (bad / "rl" / "a").mkdir(parents=True)
    (bad / "rl" / "a" / "metrics.jsonl").write_text('{"step": 0, "accuracy": 0.1}\n{not json\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        build_readiness(bad)
    from octo.config import ConfigError

    with pytest.raises(ConfigError, match="min_gian"):
        build_readiness(bad, min_gian=0.1)


def test_rolling_mean_is_centred():
    from eval.curves import rolling_mean_steps

    def rolling_mean(values, window):  # over steps 0, 1, 2, ... (evenly spaced)
        return rolling_mean_steps([float(i) for i in range(len(values))], values, window)

    assert rolling_mean([0, 0, 9, 0, 0], 3) == [0, 3, 3, 3, 0]
    assert rolling_mean([1.0, 2.0, 3.0], 1) == [1.0, 2.0, 3.0]


def test_arm_notes_say_what_each_model_is(study):
    note = "SmolLM2-135M-Instruct dequantized from a 4-bit (Q4_1) GGUF, not the pre-trained SmolLM2-135M base model"
    md = build_readiness(study, arms=["base", "control"], arm_notes={"base": note})
    assert f"- **base**: {note}" in md.read_text()
    assert note in (study / "readiness.html").read_text()
    assert json.loads((study / "readiness.json").read_text())["options"]["arm_notes"] == {"base": note}


def test_the_smollm2_study_names_its_checkpoint_honestly():
    from study.config import load

    study = load("configs/studies/smollm2.yaml")
    assert "SmolLM2-135M-Instruct" in study.description and "Q4_1" in study.description
    assert "not the pre-trained" in study.readiness["arm_notes"]["base"]


def test_every_arm_of_a_large_sweep_gets_its_own_colour():
    from matplotlib.colors import to_hex

    from eval.readiness import arm_colors

    few = arm_colors([f"a{i}" for i in range(5)], "a0")
    assert few["a0"] == "#000000" and few["a1"] == to_hex("C1")  # the default cycle, as before
    many = arm_colors([f"a{i}" for i in range(12)], None)
    assert len(set(many.values())) == 12  # tab10 would repeat two of them
