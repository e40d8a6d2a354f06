"""Named reward functions (open-r1 style registry) on top of the one shared scorer, ``octo.scoring.score``.

Each completion is scored once into a ``Judgement`` (the strict and lenient verdicts plus flags); every
registered reward reads that judgement and returns a float, and the rewards named in the config are summed.

| name                  | value                                                                 |
| --------------------- | --------------------------------------------------------------------- |
| correctness           | ``correct`` (+1) if right, ``wrong`` (-1) if wrong, ``no_answer`` (-1) |
| repetition_penalty    | ``-repetition_penalty`` if a 5+ character chunk repeats 5+ times       |
| multi_boxed_penalty   | ``-multi_boxed_penalty`` if the completion has two or more ``\\boxed{}`` |

Model output is untrusted: ``octo.scoring`` never evaluates it and bounds input length and time per check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from octo.errors import ConfigError
from octo.registry import registrar
from octo.scoring import Verdict, score

from .config import RewardConfig


@dataclass(frozen=True)
class Judgement:
    strict: Verdict  # last \boxed{} only
    lenient: Verdict  # falls back to the last number when there is no box
    require_boxed: bool  # which of the two the reward uses

    @property
    def verdict(self) -> Verdict:
        return self.strict if self.require_boxed else self.lenient

    @property
    def correct(self) -> bool:
        return self.verdict.correct

    @property
    def no_answer(self) -> bool:
        return self.verdict.answer is None


def judge(text: str, gold: str, require_boxed: bool = True) -> Judgement:
    strict = score(text, gold, require_boxed=True)
    lenient = strict if strict.answer is not None else score(text, gold, require_boxed=False)
    return Judgement(strict=strict, lenient=lenient, require_boxed=require_boxed)


RewardFn = Callable[[Judgement, RewardConfig], float]
REWARDS: dict[str, RewardFn] = {}
register = registrar(REWARDS)  # @register("name") adds a reward under the name reward.funcs uses


@register("correctness")
def correctness(j: Judgement, cfg: RewardConfig) -> float:
    if j.correct:
        return cfg.correct
    return cfg.no_answer if j.no_answer else cfg.wrong


@register("repetition_penalty")
def repetition_penalty(j: Judgement, cfg: RewardConfig) -> float:
    return -cfg.repetition_penalty if j.strict.repetitive else 0.0


@register("multi_boxed_penalty")
def multi_boxed_penalty(j: Judgement, cfg: RewardConfig) -> float:
    return -cfg.multi_boxed_penalty if j.strict.n_boxed >= 2 else 0.0


def check_names(names: list[str], where: str = "RL config") -> None:
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ConfigError(
            f"{where}: reward.funcs: unknown reward {unknown}; known: {', '.join(sorted(REWARDS))}"
        )


def total_reward(j: Judgement, cfg: RewardConfig) -> float:
    return float(sum(REWARDS[name](j, cfg) for name in cfg.funcs))
