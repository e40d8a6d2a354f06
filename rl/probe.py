"""``run_probe(probe, rl, model) -> probe.json``: the readiness probe of a checkpoint before RL.

It samples the RL run's own prompts (loaded and decontaminated as RL loads them) with the RL template, stop
strings, temperature and G, scores every sample with the RL reward, measures the loss of held-out reference
solutions, and writes ``probe.json`` (signals, budget, prediction), ``samples.jsonl`` (every scored sample, so
the numbers can be recomputed) and a manifest. A complete probe for the same options returns at once.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict
from pathlib import Path

from octo.assets import benchmark_items
from octo.errors import ConfigError, InputError
from octo.generation import Generator, Sampling, cut_text
from octo.jsonl import write_jsonl
from octo.layout import PROBE_FILE
from octo.manifest import is_complete, write_manifest

from .config import ItemSource, RLConfig
from .probe_config import ProbeConfig, plan_budget
from .probe_signals import Completion, group_signals, predict
from .prompts import EvalIndex, decontaminate, load_items
from .rewards import judge, total_reward
from .templates import render
from .validation import eos_ids


def probe_identity(probe: ProbeConfig, rl: RLConfig, model: str) -> dict:
    """What a probe's result depends on (its manifest hash): the options, the RL recipe and the checkpoint."""
    rl_part = rl.model_dump(mode="json", exclude={"output_dir", "model", "log_every", "checkpoint"})
    return {"probe": probe.model_dump(mode="json"), "rl": rl_part, "model": str(model)}


def probe_prompts(probe: ProbeConfig, rl: RLConfig, count: int) -> list[dict]:
    """``count`` of the RL run's prompts (decontaminated as RL does), drawn with the probe's seed."""
    validation = {v.name: load_items(v) for v in rl.validation.sets}
    offset = rl.seed if rl.prompts.source == "reasoning_gym" else 0
    items, _ = decontaminate(load_items(rl.prompts, seed_offset=offset), rl.prompts.decontaminate, validation)
    rng = random.Random(rl.seed + probe.seed)
    return rng.sample(items, min(count, len(items)))


def _benchmark_references(name: str) -> list[dict]:
    return [
        {"question": x["question"], "solution": x.get("solution") or "", "answer": x["answer"]}
        for x in benchmark_items(name)
    ]


def _held_out(rows: list[dict], rl: RLConfig) -> list[dict]:
    """The rows whose question is not an RL prompt (the RL decontamination's normalised text and n-grams)."""
    index = EvalIndex(rl.prompts.decontaminate.ngram)
    index.add(
        "rl", load_items(rl.prompts, seed_offset=rl.seed if rl.prompts.source == "reasoning_gym" else 0)
    )
    return [r for r in rows if index.match(r["question"]) is None]


def reference_items(probe: ProbeConfig, rl: RLConfig) -> tuple[list[dict], dict]:
    """Held-out (question, solution, answer) rows, decontaminated against the RL prompts; and where they came from."""
    refs = probe.references
    if refs.benchmark:
        name, rows = f"benchmark/{refs.benchmark}", _benchmark_references(refs.benchmark)
    elif rl.prompts.source == "reasoning_gym":
        source = ItemSource(**{**rl.prompts.model_dump(exclude={"decontaminate"}), "limit": None})
        source.seed += rl.seed + refs.seed_offset
        source.size = max(refs.count * 4, 16)
        name, rows = (
            f"reasoning_gym/{source.dataset} seed {source.seed}",
            [{**x, "solution": ""} for x in load_items(source)],
        )
    else:
        raise ConfigError("probe references.benchmark is needed when the RL prompts are not generated")
    kept = _held_out(rows, rl)
    info = {"source": name, "candidates": len(rows), "dropped_as_rl_prompts": len(rows) - len(kept)}
    if len(kept) < max(1, refs.count // 4) and not refs.benchmark and refs.fallback_benchmark:
        # the generator's whole problem space is among the RL prompts: held-out text must come from elsewhere
        fallback = _held_out(_benchmark_references(refs.fallback_benchmark), rl)
        info["fallback"] = (
            f"benchmark/{refs.fallback_benchmark} ({len(kept)} held-out generated problems left)"
        )
        kept = fallback
    return kept[: refs.count], info


def reference_text(row: dict) -> str:
    """The completion a reference stands for: its worked solution (if any), then the boxed answer."""
    solution = row["solution"].strip()
    return f" {solution} \\boxed{{{row['answer']}}}" if solution else f" \\boxed{{{row['answer']}}}"


def reference_loss(model, tokenizer, prompts: list[str], completions: list[str]) -> dict:
    """Mean per-token cross-entropy (nats) of each reference completion after its prompt, over all tokens."""
    import torch

    total, tokens = 0.0, 0
    with torch.no_grad():
        for prompt, completion in zip(prompts, completions):
            head = tokenizer(prompt)["input_ids"]
            ids = tokenizer(prompt + completion)["input_ids"]
            if len(ids) <= len(head):
                continue
            tensor = torch.tensor([ids], device=model.device)
            logits = model(input_ids=tensor).logits[0, len(head) - 1 : -1].float()
            target = tensor[0, len(head) :]
            total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            tokens += len(target)
    if not tokens:
        raise InputError("no reference solution left to score after decontamination")
    return {"reference_loss": total / tokens, "reference_tokens": tokens, "references": len(prompts)}


def score_samples(items, outs, tokenizer, rl: RLConfig, eos: set[int], max_tokens: int):
    """Each prompt's samples as Completions (the RL reward's judgement), plus rows for samples.jsonl."""
    groups, rows = [], []
    stops = list(rl.template.stop_strings)
    for item, samples in zip(items, outs):
        group = []
        for ids in samples:
            raw = tokenizer.decode(ids, skip_special_tokens=True)
            text = cut_text(raw, stops)
            ended = bool(ids) and (ids[-1] in eos or text != raw)
            j = judge(text, item["answer"], rl.reward.require_boxed)
            c = Completion(
                tokens=len(ids), clipped=not ended and len(ids) >= max_tokens,
                reward=total_reward(j, rl.reward), correct=j.correct, answer=j.verdict.answer,
                boxed=j.strict.n_boxed > 0, boxed_first=j.strict.boxed_first, repetitive=j.strict.repetitive,
            )  # fmt: skip
            group.append(c)
            rows.append({"id": item["id"], "text": text, **asdict(c)})
        groups.append(group)
    return groups, rows


def _load_model(path: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def _sample(model, tokenizer, rl: RLConfig, items: list[dict], budget: dict, seed: int):
    import torch

    torch.manual_seed(seed)
    fmt = [render(rl.template.name, x["question"], tokenizer, rl.template.system_prompt) for x in items]
    ids = [tokenizer(p)["input_ids"] for p in fmt]
    t = rl.trainer
    sampling = Sampling(t.temperature, t.top_p, t.top_k)
    eos = eos_ids(model, tokenizer)
    outs = Generator(model, tokenizer).generate(
        ids,
        budget["samples_per_prompt"],
        budget["max_new_tokens"],
        eos,
        list(rl.template.stop_strings),
        sampling,
    )
    return score_samples(items, outs, tokenizer, rl, set(eos), budget["max_new_tokens"])


def run_probe(probe: ProbeConfig, rl: RLConfig, model_path: str) -> Path:
    """Probe ``model_path`` for the RL run ``rl``; returns the path of ``probe.json`` (at once when complete)."""
    out = Path(probe.output_dir)
    identity = probe_identity(probe, rl, model_path)
    if is_complete(out, identity) and (out / PROBE_FILE).is_file():
        return out / PROBE_FILE
    budget = plan_budget(probe, rl)
    if budget["prompts"] < probe.min_prompts:
        raise ConfigError(
            f"probe: {probe.budget_share:.0%} of the RL run's {budget['rl_generation_tokens']} generated tokens "
            f"affords {budget['prompts']} prompts x {budget['samples_per_prompt']} samples x "
            f"{budget['max_new_tokens']} tokens, below min_prompts={probe.min_prompts}"
        )
    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, stage="probe", config=identity, status="running", started=started)
    items = probe_prompts(probe, rl, budget["prompts"])
    model, tokenizer = _load_model(model_path)
    groups, rows = _sample(model, tokenizer, rl, items, budget, rl.seed + probe.seed)
    signals = group_signals(groups, min(budget["group_size"], budget["samples_per_prompt"]))
    refs, ref_info = reference_items(probe, rl)
    ref_prompts = [
        render(rl.template.name, r["question"], tokenizer, rl.template.system_prompt) for r in refs
    ]
    signals.update(reference_loss(model, tokenizer, ref_prompts, [reference_text(r) for r in refs]))
    signals["reference_source"] = ref_info
    spent = signals["generated_tokens"]
    budget.update(spent_tokens=spent, spent_share_of_rl=spent / budget["rl_generation_tokens"])
    result = {"model": str(model_path), "signals": signals, "budget": budget, "prediction": predict(signals)}
    write_jsonl(out / "samples.jsonl", rows)
    (out / PROBE_FILE).write_text(json.dumps(result, indent=2) + "\n")
    counts = {"prompts": len(items), "samples": len(rows), "spent_tokens": spent}
    write_manifest(
        out, stage="probe", config=identity, inputs={"model": model_path}, counts=counts, started=started
    )
    return out / PROBE_FILE
