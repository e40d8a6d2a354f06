"""The dry run's compute estimate: tokens and FLOPs per step, and a time at the configured device rate.

Training costs 6 N FLOPs per token, generation 2 N (N = parameters; attention and prompt tokens are left
out, so these are lower bounds for long sequences). Time = FLOPs / (devices x peak x utilisation), with the
generation part at ``generation_utilisation``: token-by-token decoding reaches a far smaller share of peak than
training does (on 2 CPU cores, a few percent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.config import load_suite, selected_tasks
from octo.assets import benchmark_items
from octo.config import load_raw
from rl.probe_config import plan_budget
from study.stages import corpus_recipe, midtrain_config, probe_config, rl_config


@dataclass
class Estimate:
    tokens: float = 0.0  # tokens trained on or generated
    flops: float = 0.0
    note: str = ""
    generation_flops: float = 0.0  # the part of ``flops`` spent decoding

    def seconds(self, compute) -> float:
        rate = compute.devices * compute.peak_flops
        decoding = compute.generation_utilisation or compute.utilisation
        return (self.flops - self.generation_flops) / (rate * compute.utilisation) + self.generation_flops / (
            rate * decoding
        )


def llama_params(
    hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int, tied: bool
) -> int:
    head_dim = hidden // heads
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o + k, v
    block = attention + 3 * hidden * ffn + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * block + hidden


def params_from_hf_config(config: dict[str, Any]) -> int:
    return llama_params(
        config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
        config.get("num_key_value_heads") or config["num_attention_heads"], config["intermediate_size"],
        config["vocab_size"], config.get("tie_word_embeddings", False),
    )  # fmt: skip


def base_params(study) -> float | None:
    """Parameters of the study's models (every arm shares the base's architecture)."""
    if "base" in study.compute.params:
        return study.compute.params["base"]
    if study.base.pretrain is not None:
        tiny = (load_raw(study.base.pretrain.recipe, study.base.pretrain.overrides).get("model") or {}).get(
            "tiny"
        )
        if tiny:
            shape = {"hidden_size": 128, "num_layers": 2, "num_heads": 2, "intermediate_size": 336,
                     "tie_word_embeddings": True, **(tiny.get("model") or {})}  # fmt: skip
            return llama_params(shape["hidden_size"], shape["num_layers"], shape["num_heads"],
                                shape.get("num_kv_heads") or shape["num_heads"], shape["intermediate_size"],
                                study.tokenizer.vocab_size, shape["tie_word_embeddings"])  # fmt: skip
    model = study.base.model or ""
    if model.startswith("smollm2"):
        return 134_515_008
    config = Path(model) / "config.json"
    if config.is_file():
        return params_from_hf_config(json.loads(config.read_text()))
    return None


def corpus(study, name: str) -> Estimate:
    from pipelines.build import dry_run  # datatrove: the corpus stages are planned to be counted

    recipe = corpus_recipe(study, name, None)
    stages = dry_run(recipe)  # validates the recipe, its sources and models without building anything
    kinds = ", ".join(f"{s.type}:{s.name}" for s in recipe.sources)
    return Estimate(note=f"{len(stages)} datatrove stages; sources {kinds}")


def midtrain(study, arm: str, entry) -> Estimate:

    config = midtrain_config(study, arm, entry, start="<base>")
    tokens = sum(stage.tokens for stage in config.data.stages.values())
    n = base_params(study)
    return Estimate(
        tokens,
        6 * n * tokens if n else 0.0,
        f"{tokens / 1e6:,.1f}M tokens, seq {config.data.sequence_length}",
    )


def rl(study, model: str) -> Estimate:

    t = rl_config(study, model).trainer
    generated = sum(
        t.prompts_per_step * t.num_generations * t.max_completion_at(step) for step in range(1, t.steps + 1)
    )
    n = base_params(study) or 0.0
    return Estimate(generated, (2 + 6 * t.num_iterations) * n * generated,
                    f"{t.steps} steps x {t.prompts_per_step} prompts x {t.num_generations} rollouts, "
                    f"<= {generated / 1e6:,.2f}M generated tokens", generation_flops=2 * n * generated)  # fmt: skip


def probe(study, model: str) -> Estimate:
    budget = plan_budget(probe_config(study, model), rl_config(study, model))
    generated = budget["worst_case_tokens"]
    flops = 2 * (base_params(study) or 0.0) * generated
    note = (f"{budget['prompts']} RL prompts x {budget['samples_per_prompt']} samples, <= {generated / 1e6:,.3f}M "
            f"generated tokens ({budget['share']:.0%} of RL's)")  # fmt: skip
    return Estimate(generated, flops, note, flops)


def evaluation(study, model: str, suite_path: str) -> Estimate:
    suite = load_suite(suite_path, study.eval.overrides)
    items = generated = 0
    for task in selected_tasks(suite):
        if task.source == "benchmark":
            count = len(benchmark_items(task.benchmark or task.name))
        elif task.source == "gsm8k_offline":
            count = 100
        else:
            count = task.size or 0  # jsonl tasks: unknown until read
        count = min(count, task.max_items or suite.max_items or count)
        items += count
        generated += count * suite.generation.n * (task.max_new_tokens or suite.generation.max_new_tokens)
    flops = 2 * (base_params(study) or 0.0) * generated
    return Estimate(generated, flops, f"{items} items, <= {generated / 1e6:,.2f}M generated tokens", flops)
