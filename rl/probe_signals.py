"""The readiness probe's signals, computed from recorded completions (a pure function, no model), and the
fixed combination that turns them into a predicted readiness score, verdict and reasons.

Why these signals (docs/probe.md): under GRPO only groups whose rewards vary carry a gradient (learnable
fraction); base-model pass@k at large k bounds what RL reaches (Yue et al. 2025); pass@large-k plus the loss
of held-out reference solutions predicts post-RL accuracy better than pass@1 (Kang et al. 2025); format
(a final box), boxed-first, repetition and clipping are the pathologies the readiness verdicts name.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from octo.passk import pass_at_k

# The fixed combination (not fitted to any RL outcome; `octo probe validate` also reports a fitted one,
# leave-one-arm-out). Headroom (pass@G) weighs most: it bounds what RL can reach.
SCORE_WEIGHTS = {"pass_at_G": 0.4, "learnable_fraction": 0.3, "pass_at_1": 0.2, "final_boxed_rate": 0.1}
PATHOLOGY_PENALTY = 0.5  # the score shrinks by this share of the worst of the repetition and clip rates
READY_MIN_LEARNABLE, NO_SIGNAL_MAX_LEARNABLE = 0.2, 0.05
MAX_REPETITION, MAX_CLIP, MAX_BOXED_FIRST = 0.3, 0.5, 0.5


@dataclass(frozen=True)
class Completion:
    """One scored sample of a prompt, as the probe records it."""

    tokens: int  # generated tokens
    clipped: bool  # ran to the token limit without EOS or a stop string
    reward: float  # the RL run's summed reward
    correct: bool
    answer: str | None  # the extracted answer (None: no answer)
    boxed: bool  # holds a \boxed{} answer (the final box is the answer)
    boxed_first: bool
    repetitive: bool


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def answer_entropy(group: list[Completion]) -> float:
    """Shannon entropy (bits) of a prompt's answer distribution over its samples ('no answer' is one answer)."""
    counts = Counter(c.answer for c in group)
    n = len(group)
    return float(-sum((m / n) * math.log2(m / n) for m in counts.values()))


def varying_group_chance(rewards: list[float], group_size: int) -> float:
    """Chance that ``group_size`` of a prompt's samples drawn without replacement get different rewards: with
    n = G samples, whether its rewards vary at all; with more samples, the unbiased estimate for a GRPO group."""
    n = len(rewards)
    if not 2 <= group_size <= n:
        raise ValueError(f"group size must lie in 2..{n} (got {group_size})")
    same = sum(math.comb(m, group_size) for m in Counter(rewards).values())
    return 1.0 - same / math.comb(n, group_size)


def group_signals(groups: list[list[Completion]], group_size: int | None = None) -> dict:
    """Every sampled signal of the probe from ``groups`` (one list of n completions per prompt); the learnable
    fraction is for GRPO groups of ``group_size`` (default n)."""
    if not groups or any(len(g) != len(groups[0]) or not g for g in groups):
        raise ValueError("the probe needs the same number (>= 1) of completions for every prompt")
    n = len(groups[0])
    group_size = group_size or n
    flat = [c for g in groups for c in g]
    correct = [sum(c.correct for c in g) for g in groups]
    passk = {f"pass@{k}": _mean(pass_at_k(n, c, k) for c in correct) for k in range(1, n + 1)}
    return {
        "prompts": len(groups),
        "samples_per_prompt": n,
        "group_size": group_size,
        "learnable_fraction": _mean(varying_group_chance([c.reward for c in g], group_size) for g in groups),
        "pass_at_1": passk["pass@1"],
        "pass_at_G": passk[f"pass@{n}"],
        "pass_at_k": passk,
        "final_boxed_rate": _mean(c.boxed for c in flat),
        "boxed_first_rate": _mean(c.boxed_first for c in flat),
        "repetition_rate": _mean(c.repetitive for c in flat),
        "clip_rate": _mean(c.clipped for c in flat),
        "mean_length": _mean(c.tokens for c in flat),
        "mean_correct_length": _mean(c.tokens for c in flat if c.correct),
        "answer_entropy": _mean(answer_entropy(g) for g in groups),
        "generated_tokens": sum(c.tokens for c in flat),
    }


def readiness_score(signals: dict) -> float:
    """The fixed combination in [0, 1]: weighted headroom, signal, accuracy and format, shrunk by pathologies."""
    base = sum(w * (signals.get(name) or 0.0) for name, w in SCORE_WEIGHTS.items())
    worst = max(signals.get("repetition_rate") or 0.0, signals.get("clip_rate") or 0.0)
    return round(base * (1.0 - PATHOLOGY_PENALTY * worst), 6)


def predict(signals: dict) -> dict:
    """Score, predicted verdict (the readiness table's words) and the reasons for it."""
    score = readiness_score(signals)
    learnable, pass_g = signals["learnable_fraction"], signals["pass_at_G"]
    reasons = [
        f"{learnable:.0%} of GRPO groups of {signals['group_size']} would have rewards that vary",
        f"pass@{signals['samples_per_prompt']} {pass_g:.2f} (what RL can sharpen), pass@1 {signals['pass_at_1']:.2f}",
        f"{signals['final_boxed_rate']:.0%} of samples end in a boxed answer",
    ]
    pathologies = []
    if signals["repetition_rate"] > MAX_REPETITION:
        pathologies.append(f"repetition {signals['repetition_rate']:.0%} > {MAX_REPETITION:.0%}")
    if signals["clip_rate"] > MAX_CLIP:
        pathologies.append(f"clipped {signals['clip_rate']:.0%} > {MAX_CLIP:.0%}")
    if signals["boxed_first_rate"] > MAX_BOXED_FIRST:
        pathologies.append(f"boxed first {signals['boxed_first_rate']:.0%} > {MAX_BOXED_FIRST:.0%}")
    if learnable <= NO_SIGNAL_MAX_LEARNABLE:
        verdict = "not ready: no learning signal"
        reasons.append(
            "almost every group gets one reward for all its samples: GRPO has nothing to learn from"
        )
    elif pathologies:
        verdict = "at risk: pathologies"
        reasons.append("sampling shows " + ", ".join(pathologies))
    elif learnable >= READY_MIN_LEARNABLE:
        verdict = "ready"
    else:
        verdict = "marginal: little learning signal"
        reasons.append(f"fewer than {READY_MIN_LEARNABLE:.0%} of groups carry a gradient")
    return {"score": score, "verdict": verdict, "reasons": reasons, "weights": dict(SCORE_WEIGHTS)}
