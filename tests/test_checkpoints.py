"""octo.checkpoints: one naming and one discovery of the latest complete checkpoint for midtrain and RL."""

from __future__ import annotations

from octo.checkpoints import MIDTRAIN, TRL, complete_checkpoints, latest_checkpoint


def _make(folder, name, marker=None):
    path = folder / name
    path.mkdir(parents=True)
    if marker:
        (path / marker).parent.mkdir(parents=True, exist_ok=True)
        (path / marker).write_text("{}")
    return path


def test_latest_complete_checkpoint_of_each_kind(tmp_path):
    for step in (2, 9, 10):
        _make(tmp_path, MIDTRAIN.name(step), MIDTRAIN.marker)
    _make(tmp_path, "step-11")  # cut short by a kill: no trainer state
    _make(tmp_path, "step-12.tmp", MIDTRAIN.marker)  # still being written
    _make(tmp_path, TRL.name(40), TRL.marker)  # another kind in the same folder is not midtrain's
    assert [p.name for p in complete_checkpoints(tmp_path, MIDTRAIN)] == ["step-2", "step-9", "step-10"]
    assert latest_checkpoint(tmp_path, MIDTRAIN).name == "step-10"  # by number, not by name
    assert latest_checkpoint(tmp_path, TRL).name == "checkpoint-40"
    assert latest_checkpoint(tmp_path / "absent", TRL) is None


def test_names_and_steps_round_trip():
    assert MIDTRAIN.name(7) == "step-7" and TRL.name(7) == "checkpoint-7"
    assert MIDTRAIN.step_of("runs/x/checkpoints/step-7") == 7 and TRL.step_of("checkpoint-7") == 7
    assert MIDTRAIN.step_of("checkpoint-7") is None and TRL.step_of("checkpoint-7.tmp") is None


def test_finished_final_needs_a_complete_manifest_for_the_same_config_and_a_model(tmp_path):
    from octo.checkpoints import FINAL, finished_final
    from octo.manifest import write_manifest

    run = tmp_path / "run"
    (run / FINAL).mkdir(parents=True)
    config = {"lr": 1e-3}
    write_manifest(run, stage="test", config=config, status="running")
    assert finished_final(run, config) is None  # still running
    write_manifest(run, stage="test", config=config)
    assert finished_final(run, config) is None  # complete, but final/ holds no model
    (run / FINAL / "config.json").write_text("{}")
    assert finished_final(run, config) == run / FINAL
    assert finished_final(run, {"lr": 2e-3}) is None  # another config: not this run's result
