"""The corpus recipe: one YAML file (``configs/corpus/*.yaml``) validated into ``CorpusRecipe``.

A recipe names its sources (files, Hugging Face datasets or the offline demo sources) and how each record
becomes a document, the filters (language ID, datatrove quality heuristics, a fastText math classifier),
MinHash deduplication, n-gram decontamination against evaluation sets, tokenization, and the executor
(local, Slurm, Ray) with its options.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import Field, field_validator, model_validator

from octo.assets import check_benchmarks
from octo.config import ConfigError, StrictModel, load_config
from octo.manifest import PROJECT_ROOT
from octo.sources import (
    ARITHMETIC,
    CHAMP_PROBLEMS,
    CHAMP_SOLUTIONS,
    CORPUS_OFFLINE_SOURCES,
    GSM8K_OFFLINE,
    HUB,
    JSONL,
    PARQUET,
    REASONING_GYM,
    WIKI,
)
from pipelines.sources import TEMPLATES

__all__ = ["CorpusRecipe", "load_recipe", "RESERVED_SEEDS"]

# Seeds of the problems that RL prompts (555+), evaluation (999) and few-shot exemplars (4242) use: corpus
# problems must come from other seeds.
RESERVED_SEEDS = frozenset({999, 4242, *range(555, 655)})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# ------------------------------------------------------------------------------------------------ sources
class SourceBase(StrictModel):
    name: str = Field(description="tag written to every document's metadata['source'] (a-z, 0-9, _)")
    format: Literal["text", "qa", "instruction", "cot"] = Field(
        "text", description="named template: text | qa | instruction | cot (see pipelines.sources.TEMPLATES)"
    )
    template: str | None = Field(None, description="custom str.format template; overrides `format`")
    fields: dict[str, str] = Field(default_factory=dict, description="template field -> record key")
    constants: dict[str, str] = Field(default_factory=dict, description="template field -> fixed text")
    keep_fields: list[str] = Field(default_factory=list, description="record keys copied into metadata")
    limit: int = Field(-1, description="at most this many documents per task (-1: all)")
    dedup: bool = Field(True, description="false exempts this source from MinHash (synthetic drills)")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("source names use lowercase letters, digits and _ only")
        return value

    @property
    def resolved_template(self) -> str:
        return self.template or TEMPLATES[self.format]


class JsonlSource(SourceBase):
    type: Literal[JSONL]
    path: str = Field(description="a folder (read recursively) or one file; .gz/.zst are decompressed")
    glob: str | None = Field(None, description="glob of files inside `path`, e.g. '*.jsonl.gz'")
    compression: Literal["infer", "gzip", "zstd"] | None = "infer"
    id_key: str = "id"


class ParquetSource(SourceBase):
    type: Literal[PARQUET]
    path: str
    glob: str | None = None
    id_key: str = "id"


class HubSource(SourceBase):
    type: Literal[HUB]
    dataset: str = Field(description="datasets.load_dataset path: a hub name, or a builder like 'json'")
    subset: str | None = None
    split: str = "train"
    streaming: bool = True
    load_options: dict[str, Any] = Field(default_factory=dict, description="extra load_dataset kwargs")
    id_key: str = "id"


class WikiSource(SourceBase):
    type: Literal[WIKI]
    topic: str | None = None
    exclude_topic: str | None = None
    hash_range: tuple[float, float] = Field(
        (0.0, 1.0),
        description="keep leads whose stable title hash falls in [low, high): deterministic splits",
    )
    lang: Literal["en-us", "fr-fr", "es-es"] = "en-us"


class ChampSource(SourceBase):
    type: Literal[CHAMP_PROBLEMS, CHAMP_SOLUTIONS]
    size: int | None = Field(None, description="champ_solutions: at most this many model solutions")


class Gsm8kSource(SourceBase):
    type: Literal[GSM8K_OFFLINE]


class ReasoningGymSource(SourceBase):
    type: Literal[REASONING_GYM]
    generator: str
    size: int = Field(gt=0)
    seed: int
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("seed")
    @classmethod
    def _seed_free(cls, value: int) -> int:
        if value in RESERVED_SEEDS:
            raise ValueError(
                f"seed {value} is used by RL/evaluation problems (555-654, 999, 4242); pick another"
            )
        return value


class ArithmeticPart(StrictModel):
    weight: float = Field(gt=0)
    options: dict[str, Any] = Field(description="reasoning-gym basic_arithmetic options")

    @field_validator("options")
    @classmethod
    def _left_to_right(cls, options: dict) -> dict:
        # the working is computed left to right: only + and -, and no parentheses (reasoning-gym's default has them)
        if options.get("allow_parentheses", True):
            raise ValueError("set allow_parentheses: false (the step-by-step working reads left to right)")
        if not set(options.get("operators", ["+", "-", "*", "/"])) <= {"+", "-"}:
            raise ValueError(
                "operators must be a subset of ['+', '-'] (left-to-right working has no precedence)"
            )
        return options


class ArithmeticSource(SourceBase):
    """reasoning-gym basic_arithmetic problems with left-to-right working: records have question, answer,
    expression, steps, solution ("<steps>. The answer is \\boxed{a}.") and prose (one of five explanations)."""

    type: Literal[ARITHMETIC]
    size: int = Field(gt=0)
    seed: int = Field(description="part i of `mix` draws its problems with seed + i")
    mix: list[ArithmeticPart] = Field(min_length=1)

    @model_validator(mode="after")
    def _seeds_free(self):
        used = {self.seed + i for i in range(len(self.mix))} & RESERVED_SEEDS
        if used:
            raise ValueError(
                f"seeds {sorted(used)} are used by RL/evaluation problems (555-654, 999, 4242); change `seed`"
            )
        return self


Source = Annotated[
    Union[
        JsonlSource,
        ParquetSource,
        HubSource,
        WikiSource,
        ChampSource,
        Gsm8kSource,
        ReasoningGymSource,
        ArithmeticSource,
    ],
    Field(discriminator="type"),
]
OFFLINE_TYPES = CORPUS_OFFLINE_SOURCES  # the source names are octo.sources's, shared with RL and evaluation


# ------------------------------------------------------------------------------------------------ filters
# A filter is its settings model and the datatrove step it builds, side by side: ``step()`` turns the settings
# into the step (pipelines.steps, imported lazily: datatrove is heavy). Adding one: docs/extending.md.
class Scoped(StrictModel):
    apply_to: list[str] | None = Field(
        None, description="only these sources (others pass through); null: all"
    )


class PlannedFilter(NamedTuple):
    label: str  # the step's name in the plan and the report, "filter:<what>"
    step: Any  # a pipelines.steps filter
    dropped_folder: str  # under dropped/


class LanguageFilterConfig(Scoped):
    model: str | None = Field(
        None, description="local fastText LID .bin (labels __label__<lang>); null: datatrove's ft176 download"
    )
    train_config: str | None = Field(
        None, description="classifier YAML that trains `model` when it is missing"
    )
    languages: list[str] = Field(default_factory=lambda: ["en"])
    threshold: float = Field(0.65, ge=0, le=1)

    def step(self, field: str, words) -> PlannedFilter:
        from pipelines import steps  # datatrove: only when a step is built

        model = str(check_exists(self.model, f"{field}.model")) if self.model else None
        step = steps.ScopedLanguageFilter(self.languages, self.threshold, model)
        return PlannedFilter("filter:language", step, "language")


class MetadataFilterConfig(Scoped):
    key: str = Field(
        description="a numeric metadata field (bring input fields in with the source's keep_fields)"
    )
    min: float | None = None
    max: float | None = None

    def step(self, field: str, words) -> PlannedFilter:
        from pipelines import steps  # datatrove: only when a step is built

        step = steps.MetadataThresholdFilter(self.key, self.min, self.max)
        return PlannedFilter(f"filter:{self.key}", step, f"metadata_{self.key}")


class QualityFilterConfig(Scoped):
    name: str = Field(
        description="a datatrove quality heuristic registered in pipelines.steps.QUALITY_FILTERS: gopher_quality, "
        "gopher_repetition, fineweb_quality, c4_quality"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the datatrove filter"
    )

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from pipelines.steps import QUALITY_FILTERS  # datatrove: heavy, so only when a recipe has one

        if name not in QUALITY_FILTERS:
            raise ValueError(f"unknown quality filter '{name}'; known: {', '.join(sorted(QUALITY_FILTERS))}")
        return name

    def step(self, field: str, words) -> PlannedFilter:
        from pipelines import steps  # datatrove: only when a step is built

        try:
            step = steps.QUALITY_FILTERS[self.name](**{"language": words, **self.options})
        except TypeError as exc:
            raise ConfigError(f"{field}.options: {exc}") from None
        return PlannedFilter(f"filter:{self.name}", step, f"quality_{self.name}")


class MathFilterConfig(Scoped):
    model: str = Field(description="fastText .bin trained by `octo corpus train-classifier`")
    train_config: str | None = Field(
        None, description="classifier YAML that trains `model` when it is missing"
    )
    label: str = "math"
    threshold: float = Field(0.5, ge=0, le=1, description="keep documents with P(label) >= threshold")

    def step(self, field: str, words) -> PlannedFilter:
        from pipelines import steps  # datatrove: only when a step is built

        model = str(check_exists(self.model, f"{field}.model"))
        return PlannedFilter(
            "filter:math", steps.MathClassifierFilter(model, self.label, self.threshold), "math"
        )


class FiltersConfig(StrictModel):
    """Applied in this order: language, metadata thresholds, quality heuristics, math classifier."""

    language: LanguageFilterConfig | None = None
    metadata: list[MetadataFilterConfig] = Field(default_factory=list)
    quality: list[QualityFilterConfig] = Field(default_factory=list)
    math: MathFilterConfig | None = None

    def in_order(self) -> list[tuple[str, Scoped]]:
        """(dotted field, settings) of every configured filter, in the order they run."""
        found = []
        for name in type(self).model_fields:  # declaration order is run order
            value = getattr(self, name)
            if isinstance(value, list):
                found += [(f"filters.{name}.{i}", item) for i, item in enumerate(value)]
            elif value is not None:
                found.append((f"filters.{name}", value))
        return found


# ----------------------------------------------------------------------------------- dedup / decont
class MinhashSettings(StrictModel):
    num_buckets: int = Field(14, gt=0)
    hashes_per_bucket: int = Field(8, gt=0)
    n_grams: int = Field(5, gt=0)
    norm_numbers: bool = Field(False, description="true collapses documents that differ only in numbers")
    seed: int = 1


class EvalFile(StrictModel):
    name: str
    path: str = Field(description="local JSONL of evaluation items")
    question_key: str = "question"
    answer_key: str = "answer"


class DecontConfig(StrictModel):
    n_grams: int = Field(12, ge=5)
    benchmarks: list[str] = Field(
        default_factory=list, description="names known to octo.assets.benchmark_items"
    )
    source: Literal["auto", "local", "hub"] = "auto"
    benchmarks_dir: str | None = Field(
        None, description="default: $OCTO_BENCHMARKS_DIR or shared/data/benchmarks"
    )
    files: list[EvalFile] = Field(default_factory=list, description="extra evaluation sets from local JSONL")
    index_questions: bool = Field(
        True, description="also index n-grams of the questions, not only of the answers"
    )
    norm_numbers: bool = False
    examples: int = Field(5, ge=0, description="contaminated examples per benchmark shown in report.md")
    index_dir: str | None = Field(
        None,
        description="share the n-gram index between corpora: built once under <index_dir>/<key>/ "
        "(key = hash of the evaluation sets and settings); null: each corpus builds its own in work/",
    )

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return check_benchmarks(names)


# ----------------------------------------------------------------------------------------- tokenize
class TokenizeConfig(StrictModel):
    tokenizer: str | None = Field(
        None, description="HF tokenizer folder, tokenizer.json, or 'llama3'; null: documents only"
    )
    bos_token: str | None = Field("auto", description="'auto': the tokenizer's BOS; null: no BOS")
    eos_token: str | None = Field("auto", description="'auto': the tokenizer's EOS; null: no EOS")
    shuffle: bool = Field(True, description="shuffle documents inside each shard (seeded)")
    seed: int = 0
    merge: bool = Field(False, description="merge the shards with DocumentTokenizerMerger (shuffles files)")
    max_tokens_per_file: int | None = Field(None, gt=0)
    batch_size: int = Field(1000, gt=0)


# ------------------------------------------------------------------------------------------- refine
class RefineGeneration(StrictModel):
    """Sampling settings sent with every request (OpenAI chat/completions fields)."""

    max_tokens: int = Field(2048, gt=0, description="a reply that reaches it is rejected as truncated")
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = 0
    extra: dict[str, Any] = Field(default_factory=dict, description="other request fields, e.g. stop")


class RefineGuards(StrictModel):
    """A rewrite is rejected (kept under dropped/refine/ with the reason) when any guard fires."""

    min_length_ratio: float = Field(
        0.3, ge=0, le=1, description="reject replies shorter than this fraction of the input (characters)"
    )
    refusal_patterns: list[str] = Field(
        default_factory=lambda: [
            r"^\W*(i'?m|i am) (sorry|unable|not able)",
            r"^\W*i (apologi[sz]e|can(no|'?)t (help|assist|comply|provide|do))",
            r"^\W*(sorry|unfortunately),? (but )?i",
            r"^\W*as an ai\b",
        ],
        description="case-insensitive regexes matched against the start of the reply",
    )
    keep_math: bool = Field(
        True, description="reject replies that keep none of the input's numbers and formulas"
    )


class RefineConfig(Scoped):
    """Rewrite documents with a language model behind an OpenAI-compatible server (vLLM, SGLang, ...), the
    way MegaMath-Web-Pro was made. Runs after filtering and MinHash, before decontamination."""

    server: Literal["endpoint", "vllm"] = Field(
        "endpoint",
        description="endpoint: a running server at `endpoint`; vllm: each task starts `vllm serve <model>` itself",
    )
    endpoint: str = Field("http://127.0.0.1:8000", description="server base URL (without /v1); http or https")
    model: str = Field(
        description="endpoint: the name the server serves (its /v1/models lists it); vllm: a checkpoint folder"
    )
    max_model_len: int = Field(8192, gt=0, description="server: vllm: its --max-model-len")
    vllm_args: dict[str, Any] = Field(
        default_factory=dict,
        description="server: vllm: more `vllm serve` flags, e.g. {tensor-parallel-size: 8}",
    )
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key (the key never goes in the recipe)"
    )
    prompt: str = Field("configs/prompts/megamath_web_pro_refine.txt", description="prompt template file")
    placeholder: str = Field("<EXAMPLE>", description="text in the template replaced by the document")
    chat: bool = Field(True, description="true: /v1/chat/completions; false: /v1/completions")
    generation: RefineGeneration = RefineGeneration()
    guards: RefineGuards = RefineGuards()
    concurrency: int = Field(8, gt=0, description="requests in flight at once, per task")
    request_timeout_s: float = Field(600, gt=0)
    retries: int = Field(5, ge=0, description="retries of a request the server did not answer")
    backoff_s: float = Field(2.0, gt=0, description="first retry delay; doubled at each retry")
    connect_attempts: int = Field(30, gt=0, description="polls of /v1/models before a task gives up")
    connect_delay_s: float = Field(2.0, gt=0)
    records_per_chunk: int = Field(
        100, gt=0, description="checkpoint chunk size: a killed task keeps every finished document"
    )
    tokenizer: str | None = Field(
        None,
        description="HF tokenizer folder for the dry run's token estimate (null: 4 characters per token)",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        value = value.rstrip("/")
        value = value[: -len("/v1")] if value.endswith("/v1") else value
        if not value.startswith(("http://", "https://")):
            raise ValueError("endpoint must start with http:// or https://")
        return value


# ----------------------------------------------------------------------------------------- executors
class LocalExecutorConfig(StrictModel):
    tasks: int = Field(1, gt=0)
    workers: int = Field(1, description="1: tasks run one after another in this process (no forking)")
    start_method: Literal["forkserver", "spawn", "fork"] = "forkserver"


class SlurmExecutorConfig(StrictModel):
    tasks: int = Field(4, gt=0)
    workers: int = Field(-1, description="max array tasks running at once (-1: no limit)")
    partition: str = "debug"
    time: str = "01:00:00"
    cpus_per_task: int = Field(1, gt=0)
    mem_per_cpu_gb: int = Field(2, gt=0)
    qos: str | None = None
    job_name: str = Field("octo-corpus", description="prefix of the Slurm job names")
    venv_path: str | None = Field(
        None, description="activate script sourced by jobs; default: this Python's venv"
    )
    env_command: str | None = None
    sbatch_args: dict[str, Any] = Field(default_factory=dict)
    wait_timeout_s: float = Field(3600, gt=0, description="with --wait, give up after this long")
    poll_s: float = Field(2.0, gt=0)


class RayExecutorConfig(StrictModel):
    address: str | None = Field(
        None, description="null: start a local Ray instance; 'auto' or host:port: connect"
    )
    num_cpus: int | None = Field(None, description="CPUs of the local instance (default: all)")
    tasks: int = Field(4, gt=0)
    workers: int = -1
    cpus_per_task: int = Field(1, gt=0)
    mem_per_cpu_gb: float = Field(0.5, gt=0)
    task_timeout_s: int | None = Field(None, description="kill a task after this many seconds")


class ExecutorConfig(StrictModel):
    local: LocalExecutorConfig = LocalExecutorConfig()
    slurm: SlurmExecutorConfig = SlurmExecutorConfig()
    ray: RayExecutorConfig = RayExecutorConfig()


# -------------------------------------------------------------------------------------------- recipe
class CorpusRecipe(StrictModel):
    name: str
    description: str = ""
    output_dir: str
    sources: list[Source] = Field(min_length=1)
    filters: FiltersConfig = FiltersConfig()
    minhash: MinhashSettings | None = None
    decont: DecontConfig | None = None
    tokenize: TokenizeConfig = TokenizeConfig()
    word_tokenizer: Literal["regex", "spacy"] = Field(
        "regex", description="words for MinHash/decont/quality: a regex splitter, or datatrove's spaCy 'en'"
    )
    refine: RefineConfig | None = Field(
        None, description="rewrite documents with a served language model (pipelines/refine.py)"
    )
    executor: ExecutorConfig = ExecutorConfig()

    @model_validator(mode="after")
    def _consistent(self):
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique (repeated: {dupes})")
        scoped = [self.filters.language, self.filters.math, *self.filters.quality, *self.filters.metadata]
        scoped.append(self.refine)
        for f in scoped:
            unknown = [n for n in (f.apply_to if f is not None and f.apply_to else []) if n not in names]
            if unknown:
                raise ValueError(f"filters apply_to names unknown sources {unknown} (sources: {names})")
        return self

    @property
    def minhash_sources(self) -> list[str]:
        """Sources that go through MinHash (empty when MinHash is off)."""
        if self.minhash is None:
            return []
        return [s.name for s in self.sources if s.dedup]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> CorpusRecipe:
    """Load a recipe YAML with dotted ``key=value`` overrides (e.g. ``output_dir=runs/x tokenize.tokenizer=tok``)."""
    return load_config(path, CorpusRecipe, overrides)


def recipe_of_corpus(corpus: str | Path, tokenizer: str) -> CorpusRecipe:
    """The recipe a built corpus folder was made with (its manifest), set to tokenize its documents with
    ``tokenizer`` into that same folder (``octo corpus tokenize``)."""
    manifest = Path(corpus) / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(f"{corpus}: no manifest.json (build the documents first with `octo corpus build`)")
    config = json.loads(manifest.read_text())["config"]
    config["tokenize"]["tokenizer"] = tokenizer
    config["output_dir"] = str(corpus)
    return CorpusRecipe.model_validate(config)


def resolve_path(path: str) -> Path:
    """A path from a recipe: absolute, relative to the working directory, or else to the project root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p

    rooted = PROJECT_ROOT / p
    return rooted if rooted.exists() else p


def check_exists(path: str, field: str) -> Path:
    p = resolve_path(path)
    if not p.exists():
        raise ConfigError(f"{field}: {path} does not exist")
    return p
