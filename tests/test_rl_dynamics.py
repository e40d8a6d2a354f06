"""RL dynamics on whole completions: a pathological batch through the code that writes rl metrics.jsonl."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from rl.config import load
from rl.trainer import DynamicsCallback, Recorder

LIMIT = 8192  # tokens: the presets' longest response length
GOLD = "42"
# (text, token length, how generation ended) and what the scorer must see in it
BATCH = [
    # OctoThinker's Llama pathology: the answer boxed first, then repetition up to the length limit (~30k chars)
    ("\\boxed{42} " + "so so so so so " * 2000, LIMIT, "length"),
    (
        "We add forty and two; a first guess is \\boxed{41}, but in fact it is \\boxed{42}.",
        30,
        "stop",
    ),  # multi
    ("Let us compute carefully: 40 + 2 = 4", LIMIT, "length"),  # truncated before any answer
    ("40 + 2 = 42, so the answer is \\boxed{42}.", 20, "stop"),  # a normal correct answer
    ("\\boxed{7}", 5, "stop"),  # boxed first, wrong
    ("I am not sure how to solve this problem.", 10, "stop"),  # no answer
    ("the same line again and again\n" * 1000 + "So the sum is \\boxed{42}.", 7000, "stop"),  # late box
    ("Halving eighty-four we get \\boxed{\\frac{84}{2}}.", 15, "stop"),  # right via math-verify
]


@pytest.fixture
def recorder(tmp_path):
    cfg = load("configs/rl/demo.yaml", ["trainer.num_generations=4"])
    rec = Recorder(cfg, tmp_path / "samples.jsonl")
    rec.trainer = SimpleNamespace(
        rl_step=1, last_finish=[f for _, _, f in BATCH], accelerator=SimpleNamespace(num_processes=1)
    )
    return rec


def test_a_pathological_batch_gives_every_ratio_right(recorder, tmp_path):
    texts = [t for t, _, _ in BATCH]
    rewards = recorder(
        completions=texts, completion_ids=[[0] * n for _, n, _ in BATCH], answer=[GOLD] * len(BATCH),
        prompt_id=[f"p{i // 4}" for i in range(len(BATCH))],
    )  # fmt: skip
    assert rewards == [1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    callback = DynamicsCallback(recorder.cfg, recorder, tmp_path / "metrics.jsonl")
    state = SimpleNamespace(is_world_process_zero=True, global_step=callback.per_step)
    callback.on_log(None, state, None, logs={"loss": 0.1, "learning_rate": 1e-6, "entropy": 0.5})
    (row,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    n = len(BATCH)
    assert row["step"] == 1 and row["completions"] == n
    assert row["clip_ratio"] == 2 / n  # the repetition to the limit and the truncated one
    assert row["repetition_ratio"] == 2 / n  # both repetitions, wherever they are in the text
    assert row["multi_boxed_ratio"] == 1 / n
    assert row["boxed_first_ratio"] == 2 / n  # \boxed{42} + repetition, \boxed{7}
    assert row["no_answer_ratio"] == 2 / n
    assert row["accuracy"] == 5 / n and row["stop_ratio"] == 6 / n
    assert row["correct_len_mean"] == pytest.approx((LIMIT + 30 + 20 + 7000 + 15) / 5)
    assert row["response_len_mean"] == pytest.approx(sum(k for _, k, _ in BATCH) / n)
    assert row["frac_zero_std_groups"] == 0.0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    first = samples[0]
    assert first["answer"] == GOLD and first["correct"] and first["boxed_first"] and first["repetitive"]
    assert first["n_boxed"] == 1 and first["finish"] == "length" and len(first["text"]) > 16_000
    assert [s["n_boxed"] for s in samples] == [1, 2, 0, 1, 1, 0, 1, 1]
