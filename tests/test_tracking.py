"""Experiment tracking: what each backend wrote is read back (trackio's SQLite, TensorBoard's event files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from midtrain_helpers import qa_texts, tiny_config, write_config, write_shards

from octo.manifest import PROJECT_ROOT, config_hash
from octo.tracking import Tracker, TrackingConfig, numeric, start

pytest.importorskip("trackio")
pytest.importorskip("tensorboard")


@pytest.fixture
def tb_dir(tmp_path):
    """TensorBoard's folder (trackio writes to $TRACKIO_DIR, a temporary folder set by conftest)."""
    return tmp_path / "tb"


def tb_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tb_config(log_dir: Path) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors("config/text_summary")
    return event.tensor_proto.string_val[0].decode()


def trackio_logs(project: str, run: str) -> list[dict]:
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_logs(project, run)


def trackio_config(project: str, run: str) -> dict:
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_run_config(project, run)


def test_off_unless_configured_and_never_part_of_a_run_identity(tmp_path):
    import rl
    from midtrain.config import MidtrainConfig

    assert (
        not TrackingConfig().enabled and start(None, run_name="x", config={}, output_dir=tmp_path).sinks == []
    )
    assert start(TrackingConfig(), run_name="x", config={}, output_dir=tmp_path).sinks == []
    cfg = rl.load(PROJECT_ROOT / "configs/rl/demo.yaml", ["model=/m"])
    tracked = rl.load(PROJECT_ROOT / "configs/rl/demo.yaml", ["model=/m", "tracking.enabled=true"])
    assert tracked.tracking.enabled and tracked.tracking.backends == ["trackio"]
    assert config_hash(cfg) == config_hash(tracked) and "tracking" not in tracked.model_dump()
    data = tiny_config(tmp_path, tmp_path, {"a": (tmp_path, 1.0)})
    mid = MidtrainConfig.model_validate({**data, "tracking": {"enabled": True, "backends": ["tensorboard"]}})
    assert config_hash(mid) == config_hash(MidtrainConfig.model_validate(data))
    with pytest.raises(ValueError, match="backends"):
        TrackingConfig(enabled=True, backends=["mlflow"])


def test_trl_loggers_are_set_explicitly_off(tmp_path):
    """Our rows carry TRL's update statistics under metrics.jsonl names; TRL's own loggers would log them twice."""
    import rl
    from rl.trainer import grpo_args

    cfg = rl.load(PROJECT_ROOT / "configs/rl/demo.yaml", ["model=/m", "tracking.enabled=true"])
    assert grpo_args(cfg, tmp_path, use_cpu=True).report_to in ("none", [], ["none"])


def test_rows_read_back_from_trackio_and_tensorboard(tmp_path, tb_dir):
    cfg = TrackingConfig(enabled=True, backends=["trackio", "tensorboard"], dir=str(tb_dir), project="unit")
    rows = [
        {"step": 1, "loss": 2.5, "lr": 1e-3, "stage": "stable", "grad_norm": None, "tokens/web": 128},
        {"step": 2, "loss": 2.25, "lr": 2e-3, "stage": "stable", "grad_norm": 0.5, "tokens/web": 256},
        {"step": 3, "loss": float("nan"), "lr": 3e-3, "stage": "decay", "grad_norm": 0.25, "tokens/web": 384},
    ]
    assert numeric(rows[0]) == {"loss": 2.5, "lr": 1e-3, "tokens/web": 128}
    with start(cfg, run_name="r1", config={"lr": 3e-3, "data": {"seq": 32}}, output_dir=tmp_path) as tracker:
        for row in rows:
            tracker.log(row)
    assert (Path(os.environ["TRACKIO_DIR"]) / "unit.db").is_file()
    logs = trackio_logs("unit", "r1")
    assert [r["step"] for r in logs] == [1, 2, 3]
    assert [r["loss"] for r in logs[:2]] == [2.5, 2.25] and "loss" not in logs[2]  # NaN left out
    assert [r.get("grad_norm") for r in logs] == [None, 0.5, 0.25] and logs[2]["tokens/web"] == 384
    assert not any("stage" in r for r in logs)
    config = trackio_config("unit", "r1")
    assert config["lr"] == 3e-3 and config["data"] == {"seq": 32}
    tb = Path(cfg.dir) / "unit" / "r1"
    scalars = tb_scalars(tb)
    assert scalars["loss"] == [(1, 2.5), (2, 2.25)]
    assert [s for s, _ in scalars["lr"]] == [1, 2, 3] and scalars["lr"][2][1] == pytest.approx(3e-3)
    assert scalars["tokens/web"] == [(1, 128.0), (2, 256.0), (3, 384.0)]
    assert "lr: 0.003" in tb_config(tb)


def test_midtrain_run_logs_its_metrics_rows(tmp_path, tiny_model, tiny_tokenizer, tb_dir):
    import midtrain

    qa = write_shards(qa_texts(200), tiny_tokenizer, tmp_path / "qa")
    data = tiny_config(tmp_path / "run", tiny_model, {"qa": (qa, 1.0)}, name="mt")
    data["tracking"] = {"enabled": True, "backends": ["trackio", "tensorboard"], "dir": str(tb_dir),
                        "project": "midtrain-test"}  # fmt: skip
    midtrain.run(midtrain.load(write_config(tmp_path / "mt.yaml", data)))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logs = trackio_logs("midtrain-test", "mt")
    assert [r["step"] for r in logs] == [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
    for row, logged in zip(rows, logs):
        assert {k: logged[k] for k in numeric(row)} == numeric(row)
    assert trackio_config("midtrain-test", "mt")["schedule"]["lr"] == 3e-3
    tb = tb_scalars(tb_dir / "midtrain-test" / "mt")
    assert [v for _, v in tb["loss"]] == pytest.approx([r["loss"] for r in rows])
    assert set(tb) == set().union(*(numeric(r) for r in rows))


def test_rl_run_logs_its_metrics_rows(tmp_path, tiny_model, tb_dir):
    import rl

    overrides = [
        f"model={tiny_model}", f"output_dir={tmp_path / 'rl'}", "trainer.steps=2", "trainer.prompts_per_step=2",
        "trainer.num_generations=2", "trainer.max_completion_length=8", "prompts.size=20", "validation.every=1",
        "validation.max_new_tokens=8", "validation.sets.0.size=4", "write_samples=false",
        "tracking.enabled=true", "tracking.backends=[trackio]", f"tracking.dir={tb_dir}",
        "tracking.project=rl-test",
    ]  # fmt: skip
    rl.run(rl.load(PROJECT_ROOT / "configs/rl/demo.yaml", overrides))
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    logs = trackio_logs("rl-test", "rl/rl")
    assert [r["step"] for r in logs] == [r["step"] for r in rows] == [0, 1, 2]
    for row, logged in zip(rows, logs):
        assert {k: logged[k] for k in numeric(row)} == numeric(row)
    assert "reward_mean" in logs[1] and "val/arith/acc" in logs[0]
    assert trackio_config("rl-test", "rl/rl")["trainer"]["steps"] == 2


def test_study_hands_its_tracking_to_the_stages_and_logs_eval_scores(tmp_path):
    from study.config import load
    from study.progress import Progress
    from study.runner import Step, plan
    from study.stages import midtrain_config, rl_config
    from study.tracking import study_row

    study = load(PROJECT_ROOT / "configs/studies/demo.yaml",
                 [f"out_dir={tmp_path}", "tracking.enabled=true", "tracking.backends=[tensorboard]"])  # fmt: skip
    mid = midtrain_config(study, "mathqa", study.arms["mathqa"], "/base").tracking
    assert mid.enabled and mid.project == "demo" and mid.run_name == "mathqa/midtrain"
    assert mid.backends == ["tensorboard"] and rl_config(study, "base").tracking.run_name == "base/rl"
    off = load(PROJECT_ROOT / "configs/studies/demo.yaml", [f"out_dir={tmp_path}"])
    assert not rl_config(off, "base").tracking.enabled
    progress = Progress.of(plan(study), study.compute)
    progress.finished(0, 2.0, cached=False)
    step = Step(
        "eval base / demo_zeroshot", study.eval_dir("base", "demo_zeroshot"), lambda: None, stage="eval"
    )
    results = {"tasks": {"arith": {"main": "acc", "score": 0.25, "n": 100}}}
    row = study_row(step, results, progress)
    assert row["eval/base/demo_zeroshot/arith/acc"] == 0.25 and row["study/steps_done"] == 1
    tracker = start(study.tracking.model_copy(update={"dir": str(tmp_path / "tb")}), run_name="study",
                    config=study, output_dir=tmp_path)  # fmt: skip
    with tracker:
        tracker.log(row, step=5)
    assert tb_scalars(tmp_path / "tb" / "octo-lab" / "study")["eval/base/demo_zeroshot/arith/acc"] == [
        (5, 0.25)
    ]


def test_an_empty_tracker_logs_nothing():
    tracker = Tracker([])
    tracker.log({"step": 1, "loss": 1.0})
    tracker.finish()


def test_wandb_is_offline_unless_asked(tmp_path, monkeypatch):
    """W&B is optional (not installed by setup): without it the error says how to get it; with it, the run is
    an offline run folder under tracking.dir."""
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert TrackingConfig().wandb_mode == "offline"
    cfg = TrackingConfig(enabled=True, backends=["wandb"], dir=str(tmp_path), project="p")
    try:
        import wandb  # noqa: F401
    except ImportError:
        from octo.config import ConfigError

        with pytest.raises(ConfigError, match="pip install"):
            start(cfg, run_name="r", config={}, output_dir=tmp_path)
        return
    with start(cfg, run_name="r", config={"lr": 1.0}, output_dir=tmp_path) as tracker:
        tracker.log({"step": 1, "loss": 2.0})
    assert list((tmp_path / "wandb").glob("offline-run-*"))
