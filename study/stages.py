"""The stage configs of a study: each stage's recipe with the study's paths (corpora, tokenizer, base, arms,
RL runs) filled in. The runner calls the stages with them; the dry run's estimate reads them too.
"""

from __future__ import annotations

from pathlib import Path

import rl
from octo.assets import smollm2_path
from octo.checkpoints import FINAL
from octo.config import load_raw, parse_config
from octo.errors import ConfigError
from octo.tiny import resolve_tokenizer
from pipelines.recipe import load_recipe
from rl.probe_config import load_probe
from study.config import ArmEntry, MidtrainEntry, StudyConfig
from study.tracking import for_stage


def corpus_recipe(study: StudyConfig, name: str, tokenizer: Path | None):
    entry = study.corpora[name]
    overrides = [*entry.overrides, f"output_dir={study.corpus_dir(name)}"]
    if tokenizer is not None:
        overrides.append(f"tokenize.tokenizer={tokenizer}")
    return load_recipe(entry.recipe, overrides)


def tokenizer_path(study: StudyConfig) -> Path:
    if study.tokenizer.path:
        return resolve_tokenizer(study.tokenizer.path)
    return study.tokenizer_dir()


def midtrain_config(study: StudyConfig, arm: str, entry: MidtrainEntry, start: str | None):
    """The arm's midtrain config: the recipe with the study's paths (output, base, corpora) filled in."""
    from midtrain.config import MidtrainConfig  # torch (the midtrain package): only for an arm's config

    data = load_raw(entry.recipe, entry.overrides)
    data["output_dir"] = str(study.midtrain_dir(arm))
    data["seed"] = data.get("seed", 0) + study.seed
    model = data.setdefault("model", {})
    branch = isinstance(entry, ArmEntry) and entry.branch
    if model.get("tiny") is not None:
        model["tiny"]["tokenizer"] = str(tokenizer_path(study))
        model["tiny"]["seed"] = model["tiny"].get("seed", 0) + study.seed
    elif branch:
        # weights, optimizer and data position come from the parent run; model.base names the architecture
        data["branch"] = {**(data.get("branch") or {}), "from_run": str(study.midtrain_dir(entry.start_from))}
    elif start is not None:
        model["base"] = start
    stages = data["data"]["stages"]
    for stage in stages.values():  # sources named like a study corpus read that corpus's shards
        for name, source in (stage.get("mixture") or {}).items():
            if name in study.corpora:
                source["path"] = str(study.corpus_dir(name) / "tokens")
    if entry.mixture is not None or entry.tokens is not None:
        if len(stages) != 1:
            raise ConfigError(
                f"{entry.recipe}: 'mixture'/'tokens' in a study need a recipe with one data stage"
            )
        stage = next(iter(stages.values()))
        if entry.tokens is not None:
            stage["tokens"] = entry.tokens
        if entry.mixture is not None:
            stage["mixture"] = {
                corpus: {"path": str(study.corpus_dir(corpus) / "tokens"), "weight": weight}
                for corpus, weight in entry.mixture.items()
            }
    if (
        study.workers > 1
    ):  # the loop would otherwise take every core (a field that does not change the weights)
        data.setdefault("train", {}).setdefault("num_threads", study.threads_per_worker())
    config = parse_config(data, MidtrainConfig, source=f"{entry.recipe} (study arm '{arm}')")
    config.tracking = for_stage(study, config.tracking, f"{arm}/midtrain")
    return config


def model_path(study: StudyConfig, name: str) -> str:
    """The checkpoint of a model of the study: 'base', an arm, or '<arm>-rl'."""
    if name.endswith("-rl"):
        return str(study.rl_dir(name[:-3]) / FINAL)
    if name == "base" and study.base.model is not None:
        if study.base.model.startswith("smollm2"):
            # the offline SmolLM2-135M ('smollm2:N': its first N layers)

            layers = study.base.model.partition(":")[2]
            return str(smollm2_path(int(layers) if layers else None))
        return study.base.model
    return str(study.midtrain_dir(name) / FINAL)


def rl_config(study: StudyConfig, arm: str):
    overrides = [*study.rl.overrides, f"model={model_path(study, arm)}", f"output_dir={study.rl_dir(arm)}"]
    config = rl.load(study.rl.config, overrides)
    config.seed += study.seed
    config.tracking = for_stage(study, config.tracking, f"{arm}/rl")
    return config


def probe_config(study: StudyConfig, arm: str):
    """The arm's probe options: the study's overrides, written to probe/<arm>/."""
    overrides = [*(study.probe.overrides if study.probe else []), f"output_dir={study.probe_dir(arm)}"]
    return load_probe(overrides)
