"""`octo runs import`: each external format becomes an ordinary run folder that `octo readiness` reads."""

from __future__ import annotations

import json
import math
import tracemalloc

import pytest
from import_helpers import (
    wandb_curve,
    write_lighteval,
    write_trainer_state,
    write_verl_console,
    write_verl_jsonl,
    write_wandb_csv,
)
from test_readiness import HEALTHY, eval_results

from eval.importer.mapping import ImportMapping, load_mapping, safe_arm
from eval.importer.readers import split_column
from eval.importer.run import import_runs
from eval.readiness import ReadinessOptions, build_readiness, rl_summary, verdict
from octo.config import ConfigError
from octo.jsonl import read_jsonl, write_jsonl
from octo.manifest import read_manifest

RUNS = ["qwen-base", "octothinker - stable", "mathweb-decay"]  # one name holds ' - '
VAL_STEPS = [list(range(0, 501, 25)), list(range(0, 501, 25)), list(range(0, 401, 25))]  # ragged: run 3 stops


def rows_of(study, arm):
    return list(read_jsonl(study / "rl" / arm / "metrics.jsonl"))


def wandb_export(tmp_path):
    """Three runs in two files: validation accuracy every 25 steps, and response length every 5 steps."""
    acc = write_wandb_csv(
        tmp_path / "val_acc.csv", RUNS, "val-core/math500/acc/mean@1", lambda i: VAL_STEPS[i], wandb_curve
    )
    length = write_wandb_csv(
        tmp_path / "length.csv",
        RUNS,
        "response_length/mean",
        lambda i: list(range(0, VAL_STEPS[i][-1] + 1, 5)),
        lambda i, s: 300.0 + (4.0 * s if i == 2 else 0.2 * s),
        companions=True,
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "preset: verl\n"
        "runs:\n"
        "  - {match: '^qwen-base$', arm: base}\n"
        "  - {match: '^octothinker - (?P<branch>\\w+)$', arm: 'octo_\\g<branch>'}\n"
        "curve: val/math500\n"
        "validation_size: {math500: 500}\n"
    )
    return [acc, length], mapping


def test_wandb_csv_three_runs(tmp_path):
    sources, mapping_file = wandb_export(tmp_path)
    study = tmp_path / "study"
    report = import_runs(study, sources, load_mapping(mapping_file))
    assert set(report["arms"]) == {"base", "octo_stable", "mathweb-decay"}
    rows = rows_of(study, "octo_stable")
    val = [r for r in rows if "val/math500/acc" in r]
    assert [r["step"] for r in val] == VAL_STEPS[1]
    assert all(r["val/math500/n"] == 500 for r in val)
    assert rows[1]["response_len_mean"] == pytest.approx(301.0)
    # __MIN/__MAX companions kept beside the mapped key
    assert rows[1]["response_len_mean__min"] == pytest.approx(300.99)
    # the ragged run stops at 400; its empty cells after that are counted, not lost
    assert rows_of(study, "mathweb-decay")[-1]["step"] == 400
    skipped = report["arms"]["mathweb-decay"]["skipped"]
    assert skipped["empty"] == 4 + 3 * 20  # 4 val points + 20 length steps x (value, min, max)
    manifest = read_manifest(study / "rl" / "base")
    assert manifest["stage"] == "import" and manifest["readiness"]["curve"] == "val/math500"
    assert {i["path"] for i in manifest["inputs"].values()} == {str(p) for p in sources}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"].values())
    assert any(p["match"].startswith("val-core/") for p in manifest["config"]["patterns"])  # the mapping used
    assert (study / "import" / "val_acc.md").read_text().count("| base |") == 1


def test_split_column_keeps_dashes_in_run_names():
    assert split_column("octothinker - stable - val/acc") == ("octothinker - stable", "val/acc", "")
    assert split_column("r - a/b__MAX") == ("r", "a/b", "__MAX")
    assert split_column("Step") is None


def test_bad_cells_are_counted(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        '"Step","r1 - critic/score/mean","r1 - my/custom"\n'
        "0,0.1,5\n1,NaN,6\n2,abc,\n,0.4,1\n3,0.5,7,99\n4,0.6\n"
    )
    report = import_runs(tmp_path / "s", [path], load_mapping(preset="verl"))
    arm = report["arms"]["r1"]
    assert arm["skipped"] == {"NaN or infinite": 1, "not a number": 1, "empty": 1, "missing (short row)": 1}
    assert report["skipped_by_reason"]["row without a step (empty): its cells"] == 2
    assert report["skipped_by_reason"]["extra cells beyond the header"] == 1
    assert arm["unmapped"] == ["my/custom"]  # kept under its own name, and listed
    rows = rows_of(tmp_path / "s", "r1")
    assert [r["step"] for r in rows] == [0, 1, 3, 4] and rows[0]["my/custom"] == 5  # step 2: no valid cell
    assert rows[0]["reward_mean"] == 0.1 and rows[0]["accuracy"] == 0.1  # reward_range [0, 1]


def test_verl_file_logger_and_console(tmp_path):
    mapping = load_mapping(preset="verl")
    jsonl = write_verl_jsonl(tmp_path / "exp1.jsonl", range(1, 31))
    console = write_verl_console(tmp_path / "exp2.log", range(1, 31))
    report = import_runs(tmp_path / "s", [jsonl, console], mapping)
    a, b = rows_of(tmp_path / "s", "exp1"), rows_of(tmp_path / "s", "exp2")
    assert len(a) == len(b) == 30
    for key in (
        "reward_mean",
        "response_len_mean",
        "clip_ratio",
        "entropy",
        "val/math500/acc",
        "val/gsm8k/acc",
    ):
        assert [r.get(key) for r in a] == pytest.approx([r.get(key) for r in b], nan_ok=True), key
    assert report["arms"]["exp1"]["mapped"]["val/test_score/gsm8k"] == "val/gsm8k/acc"
    assert "critic/rewards/mean" in report["arms"]["exp2"]["unmapped"]
    assert report["skipped_cells_total"] == 0


def test_resumed_and_non_monotonic_steps(tmp_path):
    steps = [1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 8, 9]  # resumed from step 3's checkpoint; step 8 logged twice
    path = write_verl_jsonl(tmp_path / "resumed.jsonl", steps)
    lines = path.read_text().splitlines()
    lines[6] = json.dumps({"step": 4, "data": {"critic/score/mean": 0.99}})  # the resumed segment differs
    path.write_text("\n".join(lines) + "\n")
    report = import_runs(tmp_path / "s", [path], load_mapping(preset="verl"))
    rows = rows_of(tmp_path / "s", "resumed")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert rows[3]["reward_mean"] == 0.99  # the resumed segment replaced the rewound steps
    events = report["arms"]["resumed"]["events"]
    assert events["step rewinds"] == 1 and events["rows superseded by a resumed segment"] == 3
    dropped = import_runs(
        tmp_path / "d", [path], load_mapping(preset="verl", overrides=["on_step_rewind=drop"])
    )
    assert [r["step"] for r in rows_of(tmp_path / "d", "resumed")] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert rows_of(tmp_path / "d", "resumed")[3]["reward_mean"] != 0.99
    assert dropped["arms"]["resumed"]["events"]["rows dropped (step not above the last)"] == 2  # 6 merges
    offset = import_runs(
        tmp_path / "o", [path], load_mapping(preset="verl", overrides=["on_step_rewind=offset"])
    )
    assert rows_of(tmp_path / "o", "resumed")[-1]["step"] == 12
    assert offset["arms"]["resumed"]["events"]["step rewinds"] == 1
    with pytest.raises(ValueError, match=r"resumed.jsonl:7: step 4 after step 6"):
        import_runs(tmp_path / "e", [path], load_mapping(preset="verl", overrides=["on_step_rewind=error"]))


def test_trl_trainer_state(tmp_path):
    state = write_trainer_state(tmp_path / "grpo-qwen" / "checkpoint-60" / "trainer_state.json")
    report = import_runs(tmp_path / "s", [state], load_mapping(preset="trl"))
    rows = rows_of(tmp_path / "s", "grpo-qwen")
    assert len(rows) == 60 and rows[0]["accuracy"] == pytest.approx(0.1 + 0.4 / 60)
    assert rows[19]["val/eval/acc"] == pytest.approx(rows[19]["accuracy"])
    assert rows[0]["frac_zero_std_groups"] == 0.3 and rows[0]["response_len_mean"] == 201.0
    assert "train_runtime" in rows[-1]  # the summary entry is kept, under its own name
    assert "num_tokens" in report["arms"]["grpo-qwen"]["unmapped"]
    summary = rl_summary(rows, ReadinessOptions())
    assert summary["rl_curve"] == "accuracy" and verdict(summary, ReadinessOptions())[0] == "ready"


def test_wandb_history_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "run-abc.jsonl"
    with jsonl.open("w") as fh:
        for step in range(0, 50):
            row = {"_step": 3 * step, "train/global_step": step, "train/reward": 0.1 + step / 100}
            if step == 7:
                row["train/reward"] = float("nan")
            fh.write(json.dumps(row) + "\n")
    csv_path = tmp_path / "run-abc.csv"
    csv_path.write_text("_step,train/reward,train/completions/mean_length\n0,0.1,100\n1,,101\n2,0.3,nan\n")
    report = import_runs(
        tmp_path / "s", [jsonl], load_mapping(preset="trl", overrides=["format=wandb_history"])
    )
    rows = rows_of(tmp_path / "s", "run-abc")
    assert len(rows) == 50 and "reward_mean" not in rows[7] and rows[8]["reward_mean"] == pytest.approx(0.18)
    assert rows[8]["step"] == 8 and rows[8]["_step"] == 24  # the trainer's step; W&B's counter kept as is
    assert report["arms"]["run-abc"]["skipped"] == {"NaN or infinite": 1}
    report = import_runs(
        tmp_path / "c", [csv_path], load_mapping(preset="trl"), fmt="wandb_history", run="csv run"
    )
    assert report["arms"]["csv_run"]["skipped"] == {"empty": 1, "NaN or infinite": 1}
    assert rows_of(tmp_path / "c", "csv_run")[0]["response_len_mean"] == 100


def test_unicode_and_long_run_names_import(tmp_path):
    long = "grpo-" + "très-long-" * 40
    runs = ["数学 RL ⚗", long]
    path = write_wandb_csv(
        tmp_path / "u.csv", runs, "critic/score/mean", lambda i: [0, 1, 2], lambda i, s: 0.1 * s
    )
    report = import_runs(tmp_path / "s", [path], load_mapping(preset="verl"))
    assert {a["run"] for a in report["arms"].values()} == set(runs)
    assert "数学_RL" in report["arms"] and all(len(arm) <= 64 for arm in report["arms"])
    assert all((tmp_path / "s" / "rl" / arm / "metrics.jsonl").is_file() for arm in report["arms"])
    assert "数学 RL ⚗" in (tmp_path / "s" / "import" / "u.md").read_text(encoding="utf-8")


def test_unicode_and_long_run_names():
    assert safe_arm("数学-RL run 1") == "数学-RL_run_1"
    long = safe_arm("x" * 300)
    assert len(long) <= 64 and long != safe_arm("x" * 299)
    assert safe_arm("arm-rl") == "arm_rl"  # eval/<arm>-rl means "after RL"


def test_mapping_is_validated(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("preset: verl\nmetrics:\n  critic/score/mean: reward_maen\n")
    with pytest.raises(ConfigError, match=r"metrics.*unknown project field 'reward_maen'"):
        load_mapping(bad)
    bad.write_text("patterns:\n  - {match: '(unclosed', to: accuracy}\n")
    with pytest.raises(ConfigError, match=r"patterns.0.match.*line 2"):
        load_mapping(bad)
    bad.write_text("preset: nope\n")
    with pytest.raises(ConfigError, match="presets: trl, verl"):
        load_mapping(bad)
    with pytest.raises(ValueError):
        ImportMapping(runs=[{"match": "x", "arm": "a-rl"}])


def test_native_arm_is_not_overwritten(tmp_path):
    write_jsonl(tmp_path / "s" / "rl" / "base" / "metrics.jsonl", HEALTHY)
    path = write_verl_jsonl(tmp_path / "base.jsonl", range(1, 5))
    with pytest.raises(ValueError, match="holds a native run"):
        import_runs(tmp_path / "s", [path], load_mapping(preset="verl"))
    assert list(read_jsonl(tmp_path / "s" / "rl" / "base" / "metrics.jsonl")) == HEALTHY


def test_sparse_validation_verdicts():
    """A validation curve every 50 steps: windows in steps, noise from the validation set size."""
    options = ReadinessOptions()

    def rows(values, n):
        return [{"step": 50 * i, "val/math500/acc": v, "val/math500/n": n} for i, v in enumerate(values)]

    rising = rows([0.20, 0.24, 0.28, 0.31, 0.35, 0.38, 0.40], 500)
    summary = rl_summary(rising, options)
    assert summary["rl_curve"] == "val/math500/acc" and summary["rl_curve_points"] == 7
    assert summary["rl_acc_start"] == 0.20 and summary["rl_acc_final"] == 0.40  # 20-step windows: one point
    assert summary["rl_acc_se"]["start"] == pytest.approx(math.sqrt(0.2 * 0.8 / 500))
    assert verdict(summary, options)[0] == "ready"
    # the same +0.06 on a 30-item validation set is within noise: not ready
    small = rows([0.20, 0.22, 0.24, 0.25, 0.26], 30)
    got, reason = verdict(rl_summary(small, options), options)
    assert got == "not ready" and "no gain" in reason, reason
    big = rows([0.20, 0.22, 0.24, 0.25, 0.26], 5000)
    assert verdict(rl_summary(big, options), options)[0] == "ready"
    # a peak and collapse on a sparse curve
    collapse = rows([0.2, 0.3, 0.45, 0.5, 0.3, 0.22, 0.21], 500)
    assert verdict(rl_summary(collapse, options), options)[0] == "unstable"
    # validation lengths feed the runaway rule when no training length is logged
    for i, row in enumerate(collapse):
        row["val/math500/response_len"] = 300 * (1 + i)
        row["clip_ratio"] = 0.6
    summary = rl_summary(rows([0.2, 0.25, 0.3, 0.35, 0.4], 500), options)
    assert "len_start" not in summary
    runaway = rows([0.2, 0.25, 0.3, 0.35, 0.4], 500)
    for i, row in enumerate(runaway):
        row["val/math500/response_len"], row["clip_ratio"] = 300.0 * (1 + i), 0.5
    got, reason = verdict(rl_summary(runaway, options), options)
    assert got == "unstable" and "runaway length" in reason


def write_big_export(path, megabytes: float = 0, steps: int = 0):
    """A wide W&B export (20 runs x 3 metrics) of at least ``megabytes`` MB or ``steps`` steps."""
    runs = [f"run{i}" for i in range(20)]
    metrics = ["critic/score/mean", "response_length/mean", "actor/entropy"]
    cells = ",".join(["0.123456", "345.25", "1.0625"] * len(runs))
    with path.open("w") as fh:
        fh.write(",".join(["Step"] + [f"{r} - {m}" for r in runs for m in metrics]) + "\n")
        step = 0
        while fh.tell() < megabytes * 1024**2 or step < steps:
            fh.write("\n".join(f"{s},{cells}" for s in range(step, step + 100)) + "\n")
            step += 100
    return step


def test_import_memory_does_not_grow_with_the_export(tmp_path):
    """tracemalloc peak of importing a 4x longer export stays the same: rows stream to disk."""
    peaks = []
    for steps in (100, 400):
        path = tmp_path / f"export{steps}.csv"
        write_big_export(path, steps=steps)
        tracemalloc.start()
        report = import_runs(tmp_path / f"s{steps}", [path], load_mapping(preset="verl"))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report["arms"]["run0"]["rows"] == steps
    assert peaks[1] < 1.2 * peaks[0] + 256 * 1024, peaks


@pytest.mark.slow
def test_a_50mb_export_streams_in_bounded_memory(tmp_path):
    """A 50 MB W&B export imports in a subprocess whose peak RSS stays far below what holding its rows takes."""
    import subprocess
    import sys

    path = tmp_path / "big.csv"
    steps = write_big_export(path, megabytes=50)
    assert path.stat().st_size >= 50 * 1024**2
    # VmHWM is this process's own peak: getrusage's ru_maxrss would carry over the peak of the (large) pytest
    # process the subprocess was forked from, since Linux keeps it across exec.
    code = (
        "import sys, re; from pathlib import Path; from eval.importer.mapping import load_mapping; "
        "from eval.importer.run import import_runs; "
        "r = import_runs(sys.argv[1], [sys.argv[2]], load_mapping(preset='verl')); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1); "
        "print(r['arms']['run0']['rows'], hwm)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s"), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows, maxrss_kb = map(int, out.stdout.split())
    assert rows == steps
    # the imported rows as Python dicts would take well over 1 GB; the importer stays near its imports' size
    assert maxrss_kb < 200 * 1024, f"peak RSS {maxrss_kb / 1024:.0f} MB"


def test_sparse_curves_are_drawn_as_markers_with_a_line():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.readiness.curve_plots import draw_arm

    rows = [{"step": 50 * i, "val/math500/acc": 0.2 + 0.01 * i} for i in range(11)]
    fig, ax = plt.subplots()
    assert draw_arm(ax, rows, "accuracy", color="C0", arm="ext", window=20, with_validation=True)
    (line,) = ax.get_lines()
    assert line.get_marker() == "o" and line.get_linestyle() == "-" and line.get_label() == "ext"
    assert list(line.get_xdata()) == [50.0 * i for i in range(11)]
    dense = [{"step": i, "accuracy": 0.5} for i in range(200)]
    ax.clear()
    assert draw_arm(ax, dense, "accuracy", color="C1", arm="native", window=20, with_validation=True)
    assert ax.get_lines()[0].get_marker() in ("None", None, "")  # a dense curve: a rolling-mean line
    plt.close(fig)


def test_import_cli(tmp_path, capsys):
    from octo.cli import main

    state = write_trainer_state(tmp_path / "trl-run" / "trainer_state.json")
    before = write_lighteval(tmp_path / "pre.json", {"gsm8k": 0.3}, fewshot=0)
    study = tmp_path / "s"
    assert (
        main(["runs", "import", str(study), str(state), "--preset", "trl", "--before", f"trl-run={before}"])
        == 0
    )
    assert "Skipped cells in all: 0" in capsys.readouterr().out
    results = json.loads((study / "eval" / "trl-run" / "lighteval_zeroshot" / "results.json").read_text())
    assert results["tasks"]["gsm8k"]["score"] == 0.3 and results["tasks"]["gsm8k"]["n"] == 200
    assert main(["runs", "import", str(study), str(tmp_path / "missing.csv"), "--preset", "trl"]) == 2
    assert "source not found" in capsys.readouterr().err
    assert main(["runs", "import", str(study), str(state), "--preset", "trl", "bogus_key=1"]) == 2


def test_mixed_study_end_to_end(tmp_path):
    """A three-run W&B export + a TRL trainer_state.json + a native arm in one study: table and plots."""
    sources, mapping_file = wandb_export(tmp_path)
    study = tmp_path / "study"
    import_runs(study, sources, load_mapping(mapping_file))
    state = write_trainer_state(tmp_path / "trl" / "grpo-smol" / "trainer_state.json")
    pre = write_lighteval(tmp_path / "lighteval" / "pre.json", {"math_500": 0.25}, fewshot=0)
    post = write_lighteval(tmp_path / "lighteval" / "post.json", {"math_500": 0.41}, fewshot=0)
    import_runs(
        study, [state], load_mapping(preset="trl"), before={"grpo-smol": pre}, after={"grpo-smol": post}
    )
    fewshot = write_lighteval(
        tmp_path / "lighteval" / "base.json", {"gsm8k": 0.33}, fewshot=8, suite_prefix=False
    )
    import_runs(study, [], load_mapping(preset="verl"), before={"base": fewshot}, name="base-fewshot")
    # the native arm, written as the RL stage writes it
    write_jsonl(study / "rl" / "native" / "metrics.jsonl", HEALTHY)
    (study / "eval" / "native" / "lighteval_zeroshot").mkdir(parents=True)
    (study / "eval" / "native" / "lighteval_zeroshot" / "results.json").write_text(
        json.dumps(eval_results({"math_500": 0.2}))
    )
    md = build_readiness(study)
    data = json.loads((study / "readiness.json").read_text())
    rows = {r["arm"]: r for r in data["rows"]}
    assert list(rows)[0] == "base"
    assert rows["base"]["verdict"] == "ready" and rows["base"]["rl_curve"] == "val/math500/acc"
    assert rows["octo_stable"]["verdict"] == "not ready"  # flat within the noise of 500 items
    assert rows["mathweb-decay"]["verdict"] == "unstable"
    assert rows["grpo-smol"]["rl_curve"] == "accuracy" and rows["grpo-smol"]["verdict"] == "ready"
    assert rows["native"]["verdict"] == "ready"
    assert rows["grpo-smol"]["zeroshot_post/lighteval_zeroshot/math_500"] == 0.41
    assert rows["base"]["fewshot/lighteval_fewshot/gsm8k"] == 0.33 and "gsm8k 8-shot" in md.read_text()
    text = md.read_text()
    assert "validation math500, n=500 (21 pts)" in text and "training accuracy (60 pts)" in text
    plots = {p.split("/")[-1] for p in data["plots"]}
    assert {"rl_accuracy.png", "rl_length.png"} <= plots
    assert all((study / p).stat().st_size > 10_000 for p in data["plots"])
