"""The RL reward registry on top of octo.scoring: values, variants, and untrusted model output."""

from __future__ import annotations

import time

import pytest

from octo.errors import ConfigError
from octo.manifest import PROJECT_ROOT
from rl import load
from rl.config import RewardConfig
from rl.rewards import REWARDS, judge, total_reward


def rewards(texts, gold, **cfg):
    config = RewardConfig(**cfg)
    return [total_reward(judge(text, gold, config.require_boxed), config) for text in texts]


def test_correctness_is_plus_one_or_minus_one():
    got = rewards(
        [
            r"3 + 4 = 7. The answer is \boxed{7}.",
            r"3 + 4 = 8. The answer is \boxed{8}.",
            "3 + 4 = 7. The answer is 7.",  # right number, no box: strict reward says no answer
            "",
            r"\boxed{\frac{14}{2}}",  # math-verify equivalence
        ],
        "7",
    )
    assert got == [1.0, -1.0, -1.0, -1.0, 1.0]


def test_strict_and_lenient_checkers():
    text = "3 + 4 = 7. The answer is 7."
    strict, lenient = judge(text, "7", require_boxed=True), judge(text, "7", require_boxed=False)
    assert not strict.correct and strict.no_answer and strict.lenient.correct
    assert lenient.correct and not lenient.no_answer
    assert rewards([text], "7", require_boxed=False) == [1.0]
    # the lenient checker still prefers the box when there is one
    assert not judge(r"7 or \boxed{8}", "7", require_boxed=False).correct


def test_reward_values_are_configurable():
    assert rewards([r"\boxed{7}", r"\boxed{9}", "no idea"], "7", correct=1, wrong=0, no_answer=-0.5) == [
        1,
        0,
        -0.5,
    ]


def test_repetition_and_multi_boxed_variants():
    repetitive = "so the answer is " * 6 + r"\boxed{7}"
    multi = r"\boxed{6} or maybe \boxed{7}"
    funcs = ["correctness", "repetition_penalty", "multi_boxed_penalty"]
    got = rewards([repetitive, multi, r"The sum is \boxed{7}."], "7", funcs=funcs, repetition_penalty=0.5)
    assert got == [0.5, 0.0, 1.0]  # correct but repetitive: 1 - 0.5; correct (last box) but two boxes: 1 - 1
    assert rewards([repetitive, multi], "7") == [1.0, 1.0]  # the default is correctness only


def test_unknown_reward_name_is_a_clear_error_at_load():
    recipe = PROJECT_ROOT / "configs/rl/demo.yaml"
    with pytest.raises(
        ConfigError, match=r"demo.yaml: reward.funcs: unknown reward.*typo.*known: correctness"
    ):
        load(recipe, ["reward.funcs=[correctness,typo]"])
    assert {"correctness", "repetition_penalty", "multi_boxed_penalty"} <= set(REWARDS)


ADVERSARIAL = {
    "huge string": "9" * 2_000_000,
    "huge text ending in a correct box": "blah " * 400_000 + r"\boxed{7}",
    "deeply nested unclosed braces": r"\boxed{" + "{" * 200_000 + "7",
    "deeply nested closed braces": r"\boxed{" + "{" * 5_000 + "7" + "}" * 5_000 + "}",
    "code in the box": r"\boxed{__import__('os').system('touch /tmp/octo-pwned')}",
    "eval bait": r"\boxed{eval('3+4')}",
    "pathological latex": r"\boxed{" + r"\frac{1}{" * 500 + "1" + "}" * 500 + "}",
    "power tower": r"\boxed{" + "9^" * 2_000 + "9}",
    "unicode": "∑∫≈≠ 数学 \U0001f600 \\boxed{٧} " * 200,
    "control characters": "\x00\x1b[31m\\boxed{7\x00}\u202e",
    "many boxes": r"\boxed{1}" * 50_000,
    "regex bomb for repetition": ("ab" * 4_000 + "c") * 20,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_outputs_get_a_bounded_sane_reward(name, tmp_path):
    text = ADVERSARIAL[name]
    cfg = RewardConfig(funcs=["correctness", "repetition_penalty", "multi_boxed_penalty"])
    start = time.time()
    j = judge(text, "7")
    value = total_reward(j, cfg)
    took = time.time() - start
    assert took < 6, f"{name}: {took:.1f} s"
    assert value in (1.0, 0.0, -1.0, -2.0, -3.0)  # one of the sums the three rewards can make
    if name == "huge text ending in a correct box":  # right, but "blah blah ..." is repetition: 1 - 1
        assert j.correct and j.strict.repetitive and value == 0.0
    elif name == "control characters":  # 7 with invisible noise around it is still the answer 7
        assert j.correct and value == 1.0
    elif name == "many boxes":
        assert j.strict.n_boxed > 1 and value <= -2.0
    else:
        assert not j.correct and value < 0
    assert not (tmp_path.parent / "octo-pwned").exists()
