"""The mid-training recipe as typed config, and the plan it implies (steps, stages, schedule) in plain numbers.

Everything a user writes is in tokens (``200B``, ``4M``, ``1_500_000``); the plan turns tokens into optimizer
steps once, here, so the training loop, the dry run and the nanotron config all agree on the same numbers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from octo.config import StrictModel, load_config
from octo.errors import ConfigError
from octo.tiny import TinyModelConfig
from octo.tracking import TrackingConfig

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_tokens(value: Any) -> int:
    """``1_500_000``, ``1.5e6``, ``"1.5M"``, ``"200B"``, ``"4Mi"`` (binary: 4 * 2**20) -> an int number of tokens."""
    if isinstance(value, bool):
        raise ConfigError("a token count must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"a token count must be whole, got {value}")
        return int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([KMGBT]?)(i?)\s*", value, re.I)
        if match:
            number, suffix, binary = match.groups()
            scale = 2 ** (10 * "KMGT".index(suffix.upper()) + 10) if binary else _SUFFIX[suffix.upper()]
            if binary and not suffix:
                raise ConfigError(f"'{value}': 'i' needs a K/M/G/T suffix")
            tokens = float(number.replace("_", "")) * scale
            if abs(tokens - round(tokens)) < 1e-6:
                return int(round(tokens))
    raise ConfigError(f"not a token count: {value!r} (write e.g. 1500000, 1.5M, 200B or 4Mi)")


Tokens = Annotated[int, BeforeValidator(parse_tokens)]


NAME = r"^[A-Za-z0-9_.-]+$"


class Source(StrictModel):
    path: str = Field(
        description="folder with datatrove *.ds token shards (or a corpus folder with tokens/ inside)"
    )
    weight: float = Field(gt=0, description="relative share of training tokens (normalised per stage)")


class DataStage(StrictModel):
    tokens: Tokens = Field(gt=0)
    mixture: dict[str, Source] = Field(
        min_length=1,
        description="source name -> folder and weight; a name is a stream that later stages continue",
    )


class DataConfig(StrictModel):
    sequence_length: int = Field(2048, gt=0)
    stages: dict[str, DataStage] = Field(
        min_length=1, description="stage name -> stage, trained in this order"
    )
    shuffle: bool = Field(True, description="reshuffle documents of each source every epoch (seeded)")
    eos: Literal["auto", "present", "insert"] = Field(
        "auto",
        description="documents in the shards end with EOS (present), or we add one (insert); auto checks",
    )
    eos_token_id: int | None = Field(None, description="defaults to the tokenizer's EOS")

    @model_validator(mode="after")
    def _consistent_sources(self):
        paths: dict[str, str] = {}
        for stage_name, stage in self.stages.items():
            for name, src in stage.mixture.items():
                for what in (stage_name, name):
                    if not re.match(NAME, what):
                        raise ConfigError(
                            f"'{what}': stage and source names use letters, digits, '_', '.', '-'"
                        )
                if paths.setdefault(name, src.path) != src.path:
                    raise ConfigError(f"source '{name}' names two folders: {paths[name]} and {src.path}")
        return self


class ModelConfig(StrictModel):
    base: str | None = Field(
        None, description="HF folder, hub id (online only), 'smollm2' or 'smollm2:N' (first N layers)"
    )
    tiny: TinyModelConfig | None = Field(None, description="or: a random-init tiny Llama from the factory")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="weights while training (master copy)"
    )
    save_dtype: Literal["float32", "bfloat16"] = "float32"

    @model_validator(mode="after")
    def _one_source(self):
        if (self.base is None) == (self.tiny is None):
            raise ConfigError("give exactly one of model.base (a checkpoint) or model.tiny (a factory shape)")
        return self


class BranchConfig(StrictModel):
    """Continue another run (weights, optimizer, step, data position): the decay branches of a stable run."""

    from_run: str = Field(description="output_dir of the run to continue")
    at_tokens: Tokens | None = Field(
        None, description="its first checkpoint with at least this many tokens; default: its last"
    )


class ScheduleConfig(StrictModel):
    """Warmup, then constant (stable), then decay to a floor; all lengths in tokens of the whole lineage."""

    lr: float = Field(gt=0)
    warmup_tokens: Tokens = Field(0, ge=0)
    decay: Literal["none", "linear", "cosine", "1-sqrt"] = "cosine"
    decay_tokens: Tokens | None = Field(
        None, ge=0, description="the last decay_tokens of the run decay; null: everything after warmup"
    )
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="floor = lr * min_lr_ratio")


class OptimConfig(StrictModel):
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip_grad: float | None = Field(1.0, gt=0)


class TrainConfig(StrictModel):
    global_batch_tokens: Tokens = Field(
        gt=0, description="tokens per optimizer step (all devices, accumulated)"
    )
    micro_batch_size: int = Field(4, gt=0, description="sequences per forward pass per device")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA with bf16"
    )
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads; default: the cores this process may use"
    )
    log_every: int = Field(10, gt=0, description="steps between metrics rows (each one syncs the device)")
    checkpoint_every: int | None = Field(
        None, gt=0, description="steps; a checkpoint is also saved at stage ends"
    )
    keep_checkpoints: int = Field(2, gt=0, description="most recent checkpoints kept (stage ends included)")
    progress: bool = True


class NanotronConfig(StrictModel):
    """How `octo midtrain nanotron-config` lays the same recipe out for nanotron (GitHub main)."""

    dp: int = Field(1, gt=0)
    tp: int = Field(1, gt=0)
    pp: int = Field(1, gt=0)
    micro_batch_size: int | None = Field(None, gt=0, description="default: train.micro_batch_size")
    zero_stage: Literal[0, 1] = 0
    recompute_layer: bool = False
    checkpoint_interval: int | None = Field(None, gt=0, description="default: train.checkpoint_every or 1000")
    out_dir: str | None = Field(None, description="default: <output_dir>/nanotron")
    rope_interleaved: bool = Field(
        False, description="False keeps HF's rotate-half RoPE layout (no q/k permutation)"
    )
    allow_rope_scaling_drop: bool = Field(
        False,
        description="nanotron ignores rope_scaling (Llama-3.1/3.2 'llama3' scaling): allow it knowingly",
    )
    # launch
    repo_dir: str = Field("", description="nanotron checkout holding run_train.py (default: $NANOTRON_DIR)")
    activate: str = Field("", description="shell line that enters the nanotron environment")
    octo_python: str = Field("python", description="python of the octo environment (for the converter)")
    nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(8, gt=0)
    partition: str | None = None
    time: str = "48:00:00"
    sbatch_extra: list[str] = Field(default_factory=list, description="more '#SBATCH ...' options")


class MidtrainConfig(StrictModel):
    name: str
    output_dir: str
    seed: int = 0
    model: ModelConfig
    branch: BranchConfig | None = None
    data: DataConfig
    schedule: ScheduleConfig
    optim: OptimConfig = OptimConfig()
    train: TrainConfig
    nanotron: NanotronConfig = NanotronConfig()
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, exclude=True)  # never part of the hash

    @model_validator(mode="after")
    def _batch_shape(self):
        seq = self.data.sequence_length
        if self.train.global_batch_tokens % seq:
            raise ConfigError(
                f"train.global_batch_tokens ({self.train.global_batch_tokens}) must be a multiple of "
                f"data.sequence_length ({seq})"
            )
        sequences = self.train.global_batch_tokens // seq
        if sequences % self.train.micro_batch_size:
            raise ConfigError(
                f"train.global_batch_tokens / data.sequence_length = {sequences} sequences per step must be a "
                f"multiple of train.micro_batch_size ({self.train.micro_batch_size})"
            )
        return self


# Fields that may change between a run and its resumption (they do not change what is trained).
RESUMABLE_FIELDS = (
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.num_threads",
    "train.progress",
    "nanotron",
)


def identity(config: MidtrainConfig) -> dict:
    """The config as a dict without the fields that do not change the trained weights."""
    data = config.model_dump(mode="json")
    for dotted in RESUMABLE_FIELDS:
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node.pop(last, None)
    return data


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> MidtrainConfig:
    """Load ``configs/midtrain/<x>.yaml`` with dotted ``key.sub=value`` overrides."""
    return load_config(path, MidtrainConfig, overrides)
