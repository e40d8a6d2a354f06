"""RL presets map to the intended TRL arguments; config errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from octo.config import ConfigError
from rl import load
from rl.trainer import grpo_args, updates_per_step

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "rl"


def args_for(name, world_size=1, overrides=()):
    cfg = load(CONFIGS / f"{name}.yaml", ["model=some/model", *overrides])
    return cfg, grpo_args(cfg, "/tmp/octo-rl-test", world_size=world_size, use_cpu=True)


@pytest.mark.parametrize(
    "name,world_size,prompts,completions,updates,max_len",
    [
        ("octothinker", 1, 128, 2048, 2, 4096),
        ("octothinker", 8, 128, 2048, 2, 4096),
        ("octothinker_released", 1, 256, 4096, 4, 2048),
        ("octothinker_released", 8, 256, 4096, 4, 2048),
        ("demo", 1, 4, 32, 1, 48),
    ],
)
def test_presets_map_to_trainer_arguments(name, world_size, prompts, completions, updates, max_len):
    cfg, args = args_for(name, world_size)
    t = cfg.trainer
    assert t.prompts_per_step == prompts
    assert args.generation_batch_size == completions == prompts * args.num_generations
    # one optimizer update per PPO mini-batch: completions per update on all devices x updates = rollout batch
    per_update = args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size
    assert per_update * updates == completions
    assert updates_per_step(cfg) == updates and args.max_steps == t.steps * updates
    if world_size == 1:  # TRL derives its micro-steps per rollout batch from the same numbers
        assert args.steps_per_generation == args.gradient_accumulation_steps * updates
    assert args.max_completion_length == max_len
    assert args.temperature == 1.0 and args.top_p == 1.0 and args.beta == 0.0
    assert args.loss_type == "dapo" and args.scale_rewards == "group" and args.num_iterations == 1


def test_octothinker_analysis_setting():
    cfg, args = args_for("octothinker")
    assert args.num_generations == 16 and args.learning_rate == 1e-6 and args.lr_scheduler_type == "constant"
    assert args.epsilon == args.epsilon_high == 0.2
    assert cfg.template.name == "qa" and cfg.reward.funcs == ["correctness"]
    assert (cfg.reward.correct, cfg.reward.wrong, cfg.reward.no_answer) == (1.0, -1.0, -1.0)
    # on GPU, vLLM gets the same stop strings natively
    assert args.use_vllm and args.generation_kwargs["stop"] == ["Question:", "User:", "Assistant:", "Answer:"]
    assert args.generation_kwargs["include_stop_str_in_output"] is False


def test_released_stair_schedule():
    cfg, _ = args_for("octothinker_released")
    at = cfg.trainer.max_completion_at
    assert [at(1), at(99), at(100), at(159), at(160), at(400)] == [2048, 2048, 4096, 4096, 8192, 8192]


def test_demo_preset_follows_the_pilot():
    cfg, args = args_for("demo")
    assert args.num_generations == 8 and args.max_steps == 120 and args.learning_rate == 1e-4
    assert (args.epsilon, args.epsilon_high) == (0.2, 0.28) and args.top_k == 0
    assert (
        not args.use_vllm and args.generation_kwargs is None
    )  # CPU: the stopping criterion does the stop strings
    assert cfg.prompts.source == "reasoning_gym" and cfg.prompts.seed == 555
    assert cfg.validation.sets[0].seed == 999 and cfg.template.name == "qa" and cfg.reward.require_boxed


def test_batch_shape_errors_are_clear():
    with pytest.raises(
        ValueError, match="prompts_per_step .3. must be divisible by trainer.updates_per_step .2."
    ):
        args_for("demo", overrides=["trainer.prompts_per_step=3", "trainer.updates_per_step=2"])
    with pytest.raises(ValueError, match="micro_batch_size=5"):
        args_for("demo", overrides=["trainer.micro_batch_size=5"])


def test_bad_fields_name_the_field():
    with pytest.raises(ConfigError, match=r"trainer.lerning_rate.*unknown key"):
        load(CONFIGS / "demo.yaml", ["trainer.lerning_rate=1"])
    with pytest.raises(ConfigError, match=r"prompts.*source 'jsonl' needs 'path'"):
        load(CONFIGS / "demo.yaml", ["prompts.source=jsonl"])
    with pytest.raises(ConfigError, match=r"template.name"):
        load(CONFIGS / "demo.yaml", ["template.name=alpaca"])
    with pytest.raises(ConfigError, match=r"mask_truncated_completions.*stop string"):
        load(CONFIGS / "demo.yaml", ["trainer.mask_truncated_completions=true"])
    with pytest.raises(ConfigError, match=r"trainer.*stop_without_signal needs beta 0 and weight_decay 0"):
        load(CONFIGS / "demo.yaml", ["trainer.stop_without_signal=5", "trainer.beta=0.01"])


def test_run_without_a_model_is_a_clear_error(tmp_path):
    from rl import run

    cfg = load(CONFIGS / "demo.yaml", [f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="'model' is not set"):
        run(cfg)


def test_cli_reports_config_errors(capsys):
    from octo.cli import main

    assert main(["rl", "run", str(CONFIGS / "demo.yaml"), "trainer.stepz=3", "--model", "x"]) == 2
    assert "trainer.stepz" in capsys.readouterr().err


def test_vllm_rollout_engine_is_validated_on_load():
    import importlib.util

    if importlib.util.find_spec("vllm") is None:  # the main environment
        with pytest.raises(ConfigError, match=r"trainer.rollout_engine.*needs vLLM.*not importable"):
            load(CONFIGS / "demo.yaml", ["trainer.rollout_engine=vllm"])
    else:  # .venv-vllm
        assert load(CONFIGS / "demo.yaml", ["trainer.rollout_engine=vllm"]).trainer.rollout_engine == "vllm"
        with pytest.raises(ConfigError, match=r"rollout_engine=vllm and trainer.use_vllm"):
            load(CONFIGS / "demo.yaml", ["trainer.rollout_engine=vllm", "trainer.use_vllm=true"])
    with pytest.raises(ConfigError, match=r"trainer.rollout_engine"):
        load(CONFIGS / "demo.yaml", ["trainer.rollout_engine=sglang"])


def test_dry_run_describes_the_run_without_loading_it(capsys):
    from rl import dry_run
    from rl.cli import main

    text = dry_run(load(CONFIGS / "demo.yaml", ["model=some/model"]))
    assert text.splitlines()[0] == "GRPO from some/model -> runs/demo/rl/default"
    assert "120 steps x 4 prompts x 8 rollouts, <= 0.18M generated tokens" in text
    assert "template: qa; reward: correctness" in text
    assert main(["run", str(CONFIGS / "demo.yaml"), "--dry-run", "--model", "some/model"]) == 0
    assert capsys.readouterr().out == text + "\n"


def test_a_multi_process_run_refuses_the_vllm_rollout_engine(tmp_path, monkeypatch):
    """torchrun sets WORLD_SIZE: the run refuses rollout_engine=vllm (one engine per run) before writing anything."""
    from rl import run

    cfg = load(CONFIGS / "demo.yaml", [f"model={tmp_path}", f"output_dir={tmp_path / 'run'}"])
    # model_copy skips the field validator, so this runs where vLLM does not import too
    cfg.trainer = cfg.trainer.model_copy(update={"rollout_engine": "vllm"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    refused = r"trainer.rollout_engine=vllm .*\(2 processes here\).*rollout_engine=octo"
    with pytest.raises(ConfigError, match=refused):
        run(cfg)
    assert not (tmp_path / "run").exists()
    cfg = load(CONFIGS / "demo.yaml", [f"model={tmp_path}", f"output_dir={tmp_path / 'run'}",
                                       "trainer.stop_without_signal=20"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"trainer.stop_without_signal .* 2 processes here: set it to 0"):
        run(cfg)
    assert not (tmp_path / "run").exists()
