"""Typed suite configs (``configs/eval/*.yaml``): which tasks, which prompts, which metric, how to generate.

A suite is one evaluation protocol (few-shot base, zero-shot RL template, pass@k). Each task names where its
items come from (a benchmark, a local JSONL, the offline GSM8K set, a reasoning-gym generator), how many
few-shot exemplars it shows, the prompt style and the metric. Suite-level ``prompt``/``metric``/``max_items``
are defaults that every task without its own value inherits, so ``prompt=orz`` on the command line switches a
whole suite to another template.

``prompt: {from_run: runs/<study>/rl/<arm>}`` (or the override ``prompt.from_run=<dir>``) takes the template, its
stop strings and system prompt from that RL run's resolved config (its ``manifest.json``), so an RL checkpoint
is evaluated on exactly the prompt it was trained on (``octo.templates`` renders both).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator

from octo.assets import check_benchmarks
from octo.config import ConfigError, StrictModel, key_lines, load_raw, parse_config
from octo.sources import EvalSource
from octo.templates import EVAL_TEMPLATES

PromptStyle = Literal[EVAL_TEMPLATES]  # the octo.templates registry (shared with RL)
MetricName = Literal["boxed", "boxed_lenient", "number", "latex", "letter"]


class TaskConfig(StrictModel):
    name: str = Field(description="label in results.json and the details file name")
    source: EvalSource = "benchmark"  # the names are octo.sources's, shared with the corpus and RL
    benchmark: str | None = Field(
        None,
        validate_default=True,  # the default (the task's name) is checked too
        description="source=benchmark: a name known to octo.assets (default: name)",
    )
    path: str | None = Field(None, description="source=jsonl: a file of {question, answer, solution?} rows")
    fewshot_path: str | None = Field(
        None, description="source=jsonl: exemplars from this file instead of held-out items"
    )
    generator: str | None = Field(
        None, description="source=reasoning_gym: the generator (e.g. basic_arithmetic)"
    )
    size: int | None = Field(None, gt=0, description="source=reasoning_gym: number of items to generate")
    seed: int | None = Field(None, description="source=reasoning_gym: the items' seed")
    options: dict[str, Any] = Field(
        default_factory=dict, description="source=reasoning_gym: generator options"
    )
    fewshot: int = Field(0, ge=0, description="number of exemplars shown before each question")
    fewshot_seed: int | None = Field(
        None, description="source=reasoning_gym: exemplars come from the generator at this seed"
    )
    fewshot_max_chars: int = Field(1200, gt=0, description="held-out exemplars: longest solution allowed")
    prompt: PromptStyle | None = Field(None, description="default: the suite's prompt")
    template: str | None = Field(None, description="prompt=custom: text with a {question} field")
    metric: MetricName | None = Field(None, description="default: the suite's metric")
    max_items: int | None = Field(
        None, gt=0, description="score only the first N items (default: suite.max_items)"
    )
    max_new_tokens: int | None = Field(None, gt=0, description="default: generation.max_new_tokens")
    stop: list[str] | None = Field(None, description="stop sequences (default: the prompt style's)")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", value):
            raise ValueError("task names use letters, digits, '_' and '-' only (they become file names)")
        return value

    @field_validator("benchmark")
    @classmethod
    def _known_benchmark(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("source") == "benchmark" and "name" in info.data:
            check_benchmarks([value or info.data["name"]])
        return value

    @model_validator(mode="after")
    def _source_fields(self) -> TaskConfig:
        if self.source == "jsonl" and not self.path:
            raise ValueError("source=jsonl needs path")
        if self.source == "reasoning_gym" and not (self.generator and self.size and self.seed is not None):
            raise ValueError("source=reasoning_gym needs generator, size and seed")
        if self.fewshot_seed is not None and self.source != "reasoning_gym":
            raise ValueError("fewshot_seed applies to source=reasoning_gym only")
        return self


class ModelSettings(StrictModel):
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto (cuda when available)")
    engine: Literal["octo", "lighteval"] = Field(
        "octo",
        description="backend=transformers: octo.generation (shared few-shot prefix, rows leave the batch at "
        "their stop) or lighteval's own TransformersModel",
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    batch_size: int = Field(
        32,
        gt=0,
        description="prompts per batch at most (samples multiply it); engine=octo also caps it by memory",
    )
    chat_template: bool = Field(False, description="wrap prompts in the tokenizer's chat template")
    system_prompt: str | None = None
    max_length: int | None = Field(None, gt=0, description="context length (default: the model config's)")
    threads: int | None = Field(
        None,
        gt=0,
        description="torch CPU threads during the run (default: leave as is); 1 can be far faster on a busy box",
    )


class GenerationSettings(StrictModel):
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 = no top-k filtering")
    n: int = Field(1, gt=0, description="samples per item; n > 1 reports pass@k and mean@n")
    max_new_tokens: int = Field(
        512, gt=0, description="per-task generation budget (lighteval generation_size)"
    )
    passk: list[int] | None = Field(None, description="k values for pass@k (default: powers of two up to n)")

    @model_validator(mode="after")
    def _sampling(self) -> GenerationSettings:
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 samples need temperature > 0 (greedy decoding gives n identical samples)")
        bad = [k for k in self.passk or [] if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"passk values must lie in 1..n={self.n} (got {bad})")
        return self

    def ks(self) -> list[int]:
        if self.passk:
            return sorted(set(self.passk))
        return [2**i for i in range(self.n.bit_length()) if 2**i <= self.n]


class VllmSettings(StrictModel):
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, gt=0)
    max_model_len: int | None = None
    enforce_eager: bool = False


class SuiteConfig(StrictModel):
    name: str
    description: str = ""
    seed: int = Field(0, description="torch/python seed set before every task (sampled runs repeat exactly)")
    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="vllm: generation with vLLM (GPU), scored by the same lighteval metrics"
    )
    benchmarks_dir: str | None = Field(
        None, description="folder of <name>/test.jsonl (default: octo.assets')"
    )
    benchmark_source: Literal["auto", "local", "hub"] = "auto"
    max_items: int | None = Field(None, gt=0, description="default per-task item limit (quick runs)")
    include: list[str] | None = Field(None, description="run only these tasks (by name)")
    prompt: PromptStyle = "qa"
    template: str | None = None
    stop: list[str] | None = Field(None, description="default stop sequences (default: the prompt style's)")
    prompt_from_run: str | None = Field(
        None, description="set by prompt: {from_run: <RL run dir>}: the run whose template this suite uses"
    )
    metric: MetricName = "boxed"
    model: ModelSettings = ModelSettings()
    generation: GenerationSettings = GenerationSettings()
    vllm: VllmSettings = VllmSettings()
    tasks: list[TaskConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _task_defaults(self) -> SuiteConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique (got {names})")
        unknown = sorted(set(self.include or []) - set(names))
        if unknown:
            raise ValueError(f"include names unknown tasks {unknown} (tasks: {names})")
        for task in self.tasks:
            # Inherit the suite's defaults (written into the task, so the manifest shows what ran).
            if task.prompt is None:
                task.prompt = self.prompt
                if task.stop is None:
                    task.stop = self.stop
            if task.metric is None:
                task.metric = self.metric
            if task.template is None:
                task.template = self.template
            if task.max_items is None:
                task.max_items = self.max_items
            if task.prompt == "custom" and not (task.template and "{question}" in task.template):
                raise ValueError(
                    f"task {task.name}: prompt=custom needs a template with a {{question}} field"
                )
            if task.metric == "letter" and task.prompt != "mc":
                raise ValueError(f"task {task.name}: metric=letter needs prompt=mc")
        return self


def _set_task_field(data: dict, item: str, source: str) -> None:
    """Apply ``tasks.<name or index>.<field>[.<sub>]=value`` (OmegaConf cannot merge dotted keys into lists)."""
    key, _, raw = item.partition("=")
    parts = key.split(".")
    tasks = data.get("tasks") or []
    match = [
        t
        for i, t in enumerate(tasks)
        if isinstance(t, dict) and (t.get("name") == parts[1] or str(i) == parts[1])
    ]
    if len(parts) < 3 or not match:
        names = [t.get("name") for t in tasks if isinstance(t, dict)]
        raise ConfigError(
            f"{source}: override {item!r}: expected tasks.<name or index>.<field>=value (tasks: {names})"
        )
    target = match[0]
    for part in parts[2:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = yaml.safe_load(raw) if raw else None


def _prompt_from_run(data: dict, source: str) -> dict:
    """Replace ``prompt: {from_run: <dir>}`` by the template, stop strings and system prompt of that RL run."""
    spec = data["prompt"]
    if set(spec) != {"from_run"} or not spec["from_run"]:
        raise ConfigError(
            f"{source}: prompt: expected a style name or {{from_run: <RL run folder>}}, got {spec}"
        )
    manifest = Path(str(spec["from_run"])) / "manifest.json"
    try:
        template = json.loads(manifest.read_text())["config"]["template"]
        name, stop = template["name"], list(template["stop_strings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{source}: prompt.from_run: cannot read the RL run's template from {manifest} "
            f"(field config.template: {exc!r})"
        ) from exc
    data = {**data, "prompt_from_run": str(spec["from_run"]), "stop": stop}
    if name == "chat":  # lighteval's chat-template path renders the tokenizer's template
        model = dict(data.get("model") or {}, chat_template=True, system_prompt=template.get("system_prompt"))
        return {**data, "prompt": "custom", "template": "{question}", "model": model}
    return {**data, "prompt": name}


def selected_tasks(suite: SuiteConfig) -> list[TaskConfig]:
    return [t for t in suite.tasks if suite.include is None or t.name in suite.include]


def load_suite(path: str | Path | SuiteConfig, overrides: list[str] | tuple[str, ...] = ()) -> SuiteConfig:
    """Load ``configs/eval/<suite>.yaml`` with dotted ``key=value`` overrides (a SuiteConfig passes through).

    ``tasks.<name>.<field>=value`` (or ``tasks.<index>.<field>``) overrides one task's field.
    """
    if isinstance(path, SuiteConfig):
        if overrides:
            raise ValueError("overrides apply to a suite file, not to an already loaded SuiteConfig")
        return path
    path = Path(path)
    per_task = [o for o in overrides if o.startswith("tasks.")]
    from_run = [o.partition("=")[2] for o in overrides if o.startswith("prompt.from_run=")]
    rest = [o for o in overrides if not o.startswith(("tasks.", "prompt.from_run="))]
    data = load_raw(path, rest)
    for item in per_task:
        _set_task_field(data, item, str(path))
    if from_run:
        data["prompt"] = {"from_run": from_run[-1]}
    if isinstance(data.get("prompt"), dict):
        data = _prompt_from_run(data, str(path))
    return parse_config(data, SuiteConfig, source=str(path), lines=key_lines(path), overrides=overrides)
