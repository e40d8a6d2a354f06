"""The study recipe: which corpora, which base, which mid-training arms, then RL and evaluation on each.

A study YAML names the stage recipes (``configs/<stage>/*.yaml``) and says how they connect; the runner
fills in the paths between them (every arrow is a folder under ``out_dir``), so a stage recipe stays usable
on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from octo.config import StrictModel, load_config
from octo.errors import ConfigError
from octo.layout import StudyLayout
from octo.manifest import PROJECT_ROOT
from octo.procs import usable_cores
from octo.tracking import TrackingConfig


def _recipe_path(path: str) -> str:
    """A recipe path as written, or under the project root when it is not there (octo run from elsewhere)."""
    if Path(path).exists() or Path(path).is_absolute() or not (PROJECT_ROOT / path).exists():
        return path
    return str(PROJECT_ROOT / path)


Recipe = Annotated[str, AfterValidator(_recipe_path)]


class CorpusEntry(StrictModel):
    recipe: Recipe = Field(description="configs/corpus/<x>.yaml")
    overrides: list[str] = Field(default_factory=list, description="dotted overrides for the recipe")


class TokenizerEntry(StrictModel):
    """Either an existing tokenizer (``path``: a folder, 'llama3' or 'smollm2') or one trained on the corpora."""

    path: str | None = None
    vocab_size: int = Field(3072, gt=256)
    train_docs: dict[str, int] = Field(
        default_factory=dict, description="corpus name -> documents sampled from it to train the tokenizer"
    )

    @model_validator(mode="after")
    def _one_way(self):
        if self.path is None and not self.train_docs:
            raise ConfigError(
                "give tokenizer.path (an existing tokenizer) or tokenizer.train_docs (train one)"
            )
        return self


class MidtrainEntry(StrictModel):
    """A mid-training run: a recipe, the corpora it mixes (corpus name -> weight) and extra overrides."""

    recipe: Recipe = Field(description="configs/midtrain/<x>.yaml")
    mixture: dict[str, float] | None = Field(
        None, description="corpus -> weight; replaces the recipe's mixture (recipes with one data stage)"
    )
    tokens: str | int | None = Field(None, description="token budget of that stage (default: the recipe's)")
    overrides: list[str] = Field(default_factory=list)


class BaseEntry(StrictModel):
    """The starting checkpoint: an existing one (``model``), or a recipe that pre-trains one (``pretrain``)."""

    model: str | None = Field(None, description="HF folder, hub id (online), 'smollm2' or 'smollm2:N'")
    pretrain: MidtrainEntry | None = None

    @model_validator(mode="after")
    def _one_way(self):
        if (self.model is None) == (self.pretrain is None):
            raise ConfigError(
                "give exactly one of base.model (an existing checkpoint) or base.pretrain (a recipe)"
            )
        return self


class ArmEntry(MidtrainEntry):
    start_from: str = Field(
        "base", description="'base' or another arm whose final checkpoint this one continues"
    )
    branch: bool = Field(
        False, description="continue start_from's run as a decay branch (optimizer, step, data)"
    )
    rl: bool = Field(True, description="run RL (and the after-RL evaluation) on this arm")


class RLEntry(StrictModel):
    config: Recipe = Field(description="configs/rl/<x>.yaml")
    overrides: list[str] = Field(default_factory=list)
    on_base: bool = Field(True, description="also run RL straight from the base model (the 'base' row)")


class ProbeEntry(StrictModel):
    """The readiness probe (``octo probe``) of every RL arm's checkpoint before RL, with the arm's RL recipe."""

    overrides: list[str] = Field(
        default_factory=list, description="probe options key=value (budget_share=0.02, references.count=16)"
    )


class EvalEntry(StrictModel):
    before_rl: list[Recipe] = Field(default_factory=list, description="suites for every checkpoint before RL")
    after_rl: list[Recipe] = Field(default_factory=list, description="suites for every checkpoint after RL")
    overrides: list[str] = Field(default_factory=list, description="applied to every suite")


class ComputeEntry(StrictModel):
    """What the dry run's compute estimate assumes."""

    device: str = "2 CPU cores"
    devices: int = Field(1, gt=0)
    peak_flops: float = Field(3.0e11, gt=0, description="per device, FLOP/s")
    utilisation: float = Field(0.15, gt=0, le=1, description="fraction of peak reached in training")
    generation_utilisation: float | None = Field(
        None, gt=0, le=1, description="fraction of peak reached while generating (default: utilisation)"
    )
    params: dict[str, float] = Field(
        default_factory=dict, description="model -> parameter count, when not readable"
    )


class StudyConfig(StrictModel):
    name: str
    out_dir: str
    description: str = ""
    seed: int = Field(
        0,
        ge=0,
        description="added to the seeds of mid-training (init, data order) and RL; evaluation items stay fixed",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="steps run at once, each in its own process with cores // workers torch threads, as soon as "
        "the steps it needs are done; 1 runs every step in this process, in plan order",
    )
    engine: Literal["local", "nanotron"] = Field(
        "local", description="mid-training engine: the embedded loop, or nanotron configs + launch scripts"
    )
    corpora: dict[str, CorpusEntry] = Field(default_factory=dict)
    tokenizer: TokenizerEntry
    base: BaseEntry
    arms: dict[str, ArmEntry] = Field(default_factory=dict)
    rl: RLEntry | None = None
    eval: EvalEntry = EvalEntry()
    probe: ProbeEntry | None = Field(
        None, description="probe every RL arm before RL (probe/<arm>/probe.json)"
    )
    readiness: dict[str, str | list[str] | dict[str, str] | None] = Field(
        default_factory=dict, description="options for the table"
    )
    compute: ComputeEntry = ComputeEntry()
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, exclude=True, description="handed to every mid-training and RL run"
    )

    @model_validator(mode="after")
    def _references(self):
        names = set(self.arms)
        if "base" in names:
            raise ConfigError("arms: 'base' is reserved for the base model")
        for name, arm in self.arms.items():
            if arm.start_from != "base" and arm.start_from not in names:
                raise ConfigError(f"arms.{name}.start_from: no arm named '{arm.start_from}'")
            for corpus in arm.mixture or {}:
                if corpus not in self.corpora:
                    raise ConfigError(f"arms.{name}.mixture: no corpus named '{corpus}' in corpora")
        if self.base.pretrain:
            for corpus in self.base.pretrain.mixture or {}:
                if corpus not in self.corpora:
                    raise ConfigError(f"base.pretrain.mixture: no corpus named '{corpus}' in corpora")
        for corpus in self.tokenizer.train_docs:
            if corpus not in self.corpora:
                raise ConfigError(f"tokenizer.train_docs: no corpus named '{corpus}' in corpora")
        return self

    # ------------------------------------------------------------------ the run layout (octo.layout owns it)
    @property
    def root(self) -> Path:
        return Path(self.out_dir)

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout(self.out_dir)

    def corpus_dir(self, name: str) -> Path:
        return self.layout.corpus_dir(name)

    def tokenizer_dir(self) -> Path:
        return self.layout.tokenizer_dir()

    def midtrain_dir(self, arm: str) -> Path:
        return self.layout.midtrain_dir(arm)

    def rl_dir(self, arm: str) -> Path:
        return self.layout.rl_dir(arm)

    def eval_dir(self, model: str, suite: str) -> Path:
        return self.layout.eval_dir(model, suite)

    def probe_dir(self, arm: str) -> Path:
        return self.layout.probe_dir(arm)

    def threads_per_worker(self) -> int:
        """Torch threads for each step when ``workers`` steps share this machine's cores."""
        return max(1, usable_cores() // self.workers)

    def rl_arms(self) -> list[str]:
        if self.rl is None:
            return []
        return (["base"] if self.rl.on_base else []) + [name for name, arm in self.arms.items() if arm.rl]


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    return load_config(path, StudyConfig, overrides)
