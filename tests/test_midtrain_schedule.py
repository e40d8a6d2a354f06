"""Tokens -> steps, and the learning rate at chosen steps (warmup, stable, linear / cosine / 1-sqrt decay, branches)."""

from __future__ import annotations

import math

import pytest

from midtrain.config import MidtrainConfig, parse_tokens
from midtrain.plan import make_plan
from midtrain.schedule import lr_at
from octo.config import ConfigError


def config(schedule: dict, tokens: int = 1000 * 64, batch_tokens: int = 64, **extra) -> MidtrainConfig:
    return MidtrainConfig.model_validate(
        {
            "name": "s",
            "output_dir": "unused",
            "model": {"base": "unused"},
            "data": {
                "sequence_length": 16,
                "stages": {"a": {"tokens": tokens, "mixture": {"x": {"path": "p", "weight": 1}}}},
            },
            "schedule": schedule,
            "train": {"global_batch_tokens": batch_tokens, "micro_batch_size": 1},
            **extra,
        }
    )


def test_token_counts_parse():
    assert parse_tokens("200B") == 200_000_000_000
    assert parse_tokens("1.5M") == 1_500_000
    assert parse_tokens("4Mi") == 4 * 2**20
    assert parse_tokens(1_000) == 1000 and parse_tokens(2.0e6) == 2_000_000
    for bad in ("lots", "1.5", 1.5, "3Xi"):
        with pytest.raises(ValueError):
            parse_tokens(bad)


def test_warmup_then_stable_then_linear_decay():
    # 1000 steps; warmup 100 steps, decay over the last 200 steps to 10 %
    plan = make_plan(
        config({"lr": 1e-3, "warmup_tokens": 100 * 64, "decay": "linear", "decay_tokens": 200 * 64})
    )
    assert (plan.total_steps, plan.warmup_steps, plan.decay_start, plan.decay_steps) == (1000, 100, 800, 200)
    expect = {
        0: 0.0,
        50: 5e-4,
        100: 1e-3,
        101: 1e-3,
        500: 1e-3,
        799: 1e-3,
        800: 1e-3,
        900: 5.5e-4,
        999: 1.045e-4,
    }
    for step, lr in expect.items():
        assert lr_at(plan, step) == pytest.approx(lr, rel=1e-9, abs=1e-15), step
    assert lr_at(plan, 1000) == pytest.approx(1e-4)  # past the end: the floor


def test_cosine_and_one_minus_sqrt_decay():
    cos = make_plan(config({"lr": 2e-3, "warmup_tokens": 0, "decay": "cosine", "min_lr_ratio": 0.1}))
    assert (cos.warmup_steps, cos.decay_start, cos.decay_steps) == (0, 0, 1000)
    assert lr_at(cos, 0) == pytest.approx(2e-3)  # no warmup: the first step is at the peak
    assert lr_at(cos, 500) == pytest.approx(2e-4 + 1.8e-3 * 0.5)
    assert lr_at(cos, 250) == pytest.approx(2e-4 + 1.8e-3 * (1 + math.cos(math.pi / 4)) / 2)
    sqrt = make_plan(config({"lr": 1e-3, "decay": "1-sqrt", "decay_tokens": 400 * 64, "min_lr_ratio": 0.0}))
    assert lr_at(sqrt, 599) == pytest.approx(1e-3)
    assert lr_at(sqrt, 700) == pytest.approx(1e-3 * (1 - math.sqrt(0.25)))
    assert lr_at(sqrt, 900) == pytest.approx(1e-3 * (1 - math.sqrt(0.75)))
    flat = make_plan(config({"lr": 1e-3, "warmup_tokens": 10 * 64, "decay": "none"}))
    assert [lr_at(flat, s) for s in (5, 10, 999)] == pytest.approx([5e-4, 1e-3, 1e-3])


def test_tokens_round_up_to_whole_steps():
    plan = make_plan(config({"lr": 1e-3, "warmup_tokens": 100}, tokens=1_000_000, batch_tokens=1024))
    assert plan.total_steps == 977 and plan.warmup_steps == 1  # ceil(1e6 / 1024), ceil(100 / 1024)


def test_branch_decays_over_its_own_steps_only():
    """A decay branch continues the lineage: it starts at the parent's step, at the peak, and ends at the floor."""
    sched = {
        "lr": 3e-5,
        "warmup_tokens": 64 * 10,
        "decay": "cosine",
        "decay_tokens": 64 * 100,
        "min_lr_ratio": 0.1,
    }
    branch = config(sched, tokens=64 * 100, branch={"from_run": "nowhere", "at_tokens": 64 * 500})
    plan = make_plan(branch)
    assert (plan.start_step, plan.total_steps, plan.decay_start) == (500, 600, 500)
    assert lr_at(plan, 500) == pytest.approx(3e-5)
    assert lr_at(plan, 550) == pytest.approx(3e-6 + 2.7e-5 * 0.5)
    assert lr_at(plan, 599) < 3.1e-6
    with pytest.raises(ConfigError, match="before this branch starts"):
        make_plan(
            config(
                {**sched, "decay_tokens": 64 * 200},
                tokens=64 * 100,
                branch={"from_run": "x", "at_tokens": 64 * 500},
            )
        )
    with pytest.raises(ConfigError, match="branch.at_tokens"):
        make_plan(config(sched, branch={"from_run": "nowhere"}))


def test_bad_schedules_and_batches_are_rejected():
    with pytest.raises(ConfigError, match="overlap"):
        make_plan(config({"lr": 1e-3, "warmup_tokens": 900 * 64, "decay_tokens": 200 * 64}))
    with pytest.raises(ValueError, match="multiple of data.sequence_length"):
        config({"lr": 1e-3}, batch_tokens=60)
