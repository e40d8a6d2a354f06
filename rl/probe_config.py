"""The readiness probe's typed options and its budget: how much of the RL run's generation it may spend.

The probe lives in the RL stage because RL owns everything it must match (prompts and their decontamination,
template, reward, temperature, G, max response length); evaluation only reads the ``probe.json`` it writes.
"""

from __future__ import annotations

import yaml
from pydantic import Field

from octo.config import StrictModel, parse_config
from octo.errors import ConfigError

from .config import RLConfig


class ReferenceConfig(StrictModel):
    """Held-out reference solutions whose per-token loss the probe measures (decontaminated against RL prompts)."""

    benchmark: str | None = Field(
        None,
        description="an octo.assets benchmark with solutions (gsm8k); default: the RL generator at another seed "
        "(reference = the boxed answer)",
    )
    fallback_benchmark: str | None = Field(
        "gsm8k",
        description="used when the RL generator has no held-out problem left (a small problem space, as in the "
        "demo, is covered by the RL prompts); null: fail instead",
    )
    count: int = Field(32, gt=0, description="reference solutions to score")
    seed_offset: int = Field(10_000, description="reasoning_gym references: added to the RL prompt seed")


class ProbeConfig(StrictModel):
    output_dir: str = "runs/probe/default"
    budget_share: float = Field(
        0.05, gt=0, le=0.05, description="share of the RL run's generation budget the probe may spend (<= 5%)"
    )
    max_prompts: int = Field(
        64, gt=0, description="prompts probed at most (fewer when the budget is smaller)"
    )
    min_prompts: int = Field(
        4, gt=0, description="below this many affordable prompts the probe refuses to run"
    )
    samples: int | None = Field(
        None,
        ge=2,
        description="samples per prompt (pass@k up to k = samples); default: G, or up to 4 G when max_prompts "
        "prompts leave budget to spare",
    )
    seed: int = Field(0, description="added to the RL seed for prompt choice and sampling")
    references: ReferenceConfig = ReferenceConfig()


def rl_generation_budget(rl: RLConfig) -> int:
    """Generated tokens the RL run may spend: every step's prompts x G x that step's max response length."""
    t = rl.trainer
    per_step = t.prompts_per_step * t.num_generations
    return sum(per_step * t.max_completion_at(step) for step in range(1, t.steps + 1))


def plan_budget(probe: ProbeConfig, rl: RLConfig) -> dict:
    """Prompts, samples and tokens the probe may use: its worst case (every sample at the limit) fits the share."""
    group, max_tokens = rl.trainer.num_generations, rl.trainer.max_completion_length
    rl_tokens = rl_generation_budget(rl)
    allowed = int(probe.budget_share * rl_tokens)
    # spare budget beyond max_prompts prompts buys more samples per prompt: pass@k at k > G
    samples = probe.samples or max(group, min(4 * group, allowed // (probe.max_prompts * max_tokens)))
    prompts = min(probe.max_prompts, allowed // (samples * max_tokens))
    return {
        "rl_generation_tokens": rl_tokens,
        "share": probe.budget_share,
        "allowed_tokens": allowed,
        "prompts": prompts,
        "samples_per_prompt": samples,
        "group_size": group,
        "max_new_tokens": max_tokens,
        "worst_case_tokens": prompts * samples * max_tokens,
    }


def load_probe(overrides: list[str] | tuple[str, ...] = ()) -> ProbeConfig:
    """A ProbeConfig from dotted ``key.sub=value`` overrides (every field has a default)."""
    data: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"probe override {item!r}: expected key.sub=value")
        node = data
        *parents, last = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(text) if text.strip() else None
    return parse_config(data, ProbeConfig, source="probe options", overrides=overrides)
