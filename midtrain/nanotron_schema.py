"""A project-side schema of nanotron's YAML config, to validate what ``nanotron-config`` writes without nanotron.

Mirrors the dataclasses of huggingface/nanotron GitHub main at commit 2411b022a75fb7f7561a1bb4166706da5e1b76de
(2026-04-07): ``src/nanotron/config/config.py`` (Config, GeneralArgs, CheckpointsArgs, LoggingArgs,
MetricsLoggingArgs, TokensArgs, OptimizerArgs, AdamWOptimizerArgs, SGDOptimizerArgs, LRSchedulerArgs, DataArgs,
DatasetStageArgs, NanosetDatasetsArgs, PretrainDatasetsArgs, TokenizerArgs, ModelArgs, ProfilerArgs),
``parallelism_config.py`` (ParallelismArgs) and ``models_config.py`` (LlamaConfig, RandomInit,
ExistingCheckpointInit). nanotron loads YAML with ``dacite.from_dict(strict=True)``: unknown keys and wrong
types (a string for a number, an int for a bool) are errors, so the fields here are strict too (dacite, like
pydantic's strict mode, accepts an int for a float). The checks that
nanotron makes in ``__post_init__`` and that a generated config could get wrong are repeated as validators.
Only the Llama model config is mirrored (the one this project writes).
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

NANOTRON_COMMIT = "2411b022a75fb7f7561a1bb4166706da5e1b76de"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class GeneralArgs(_Strict):
    project: StrictStr
    run: StrictStr | None = None
    seed: StrictInt | None = None
    step: StrictInt | None = None
    consumed_train_samples: StrictInt | None = None
    benchmark_csv_path: StrictStr | None = None
    ignore_sanity_checks: StrictBool = True


class ParallelismArgs(_Strict):
    dp: StrictInt
    pp: StrictInt
    tp: StrictInt
    pp_engine: Literal["1f1b", "afab"] | None = None
    tp_mode: Literal["ALL_REDUCE", "REDUCE_SCATTER", "all_reduce", "reduce_scatter"] | None = None
    tp_linear_async_communication: StrictBool | None = None
    recompute_layer: StrictBool = False
    tp_recompute_allgather: StrictBool = True
    expert_parallel_size: StrictInt = 1
    context_parallel_size: StrictInt = 1


class LlamaConfig(_Strict):
    bos_token_id: StrictInt = 1
    eos_token_id: StrictInt = 2
    hidden_act: StrictStr = "silu"
    hidden_size: StrictInt = 4096
    initializer_range: StrictFloat = 0.02
    intermediate_size: StrictInt = 11008
    is_llama_config: StrictBool = True
    max_position_embeddings: StrictInt = 2048
    num_attention_heads: StrictInt = 32
    num_hidden_layers: StrictInt = 32
    attention_bias: StrictBool = False
    num_key_value_heads: StrictInt | None = None
    pad_token_id: StrictInt | None = None
    pretraining_tp: StrictInt = 1
    rms_norm_eps: StrictFloat = 1e-6
    rope_scaling: dict | None = None
    rope_theta: StrictFloat = 10000.0
    rope_interleaved: StrictBool = False
    tie_word_embeddings: StrictBool = False
    use_cache: StrictBool = True
    vocab_size: StrictInt = 32000
    attn_implementation: StrictStr | None = Field("flash_attention_2", alias="_attn_implementation")
    z_loss_enabled: StrictBool = False
    z_loss_coefficient: StrictFloat = 0.0001


class RandomInit(_Strict):
    std: StrictFloat
    scaling_method: Literal["NONE", "NUM_LAYERS", "LAYER_INDEX", "MODEL_SCALE"] = "NUM_LAYERS"


class ExistingCheckpointInit(_Strict):
    path: StrictStr


class ModelArgs(_Strict):
    model_config_: LlamaConfig = Field(alias="model_config")
    init_method: Union[RandomInit, ExistingCheckpointInit]
    dtype: Literal["float32", "float64", "float16", "bfloat16"] | None = None
    make_vocab_size_divisible_by: StrictInt = 1
    ddp_bucket_cap_mb: StrictInt = 25


class TokenizerArgs(_Strict):
    tokenizer_name_or_path: StrictStr | None = None
    tokenizer_revision: StrictStr | None = None
    tokenizer_max_length: StrictInt | None = None


class CheckpointsArgs(_Strict):
    checkpoints_path: StrictStr
    checkpoint_interval: StrictInt
    save_initial_state: StrictBool | None = False
    save_final_state: StrictBool | None = True
    resume_checkpoint_path: StrictStr | None = None
    load_lr_scheduler: StrictBool | None = True
    load_optimizer: StrictBool | None = True
    checkpoints_path_is_shared_file_system: StrictBool | None = False


class LoggingArgs(_Strict):
    log_level: Literal["debug", "info", "warning", "error", "critical", "passive"] | None = None
    log_level_replica: Literal["debug", "info", "warning", "error", "critical", "passive"] | None = None
    iteration_step_info_interval: StrictInt | None = 1


class MetricsLoggingArgs(_Strict):
    log_level: Literal[0, 1] = 0
    log_detail_interval: StrictInt = Field(10, gt=0)


class TokensArgs(_Strict):
    sequence_length: StrictInt
    train_steps: StrictInt
    micro_batch_size: StrictInt
    batch_accumulation_per_replica: StrictInt
    val_check_interval: StrictInt | None = -1
    limit_val_batches: StrictInt | None = 0
    limit_test_batches: StrictInt | None = 0


class LRSchedulerArgs(_Strict):
    learning_rate: StrictFloat
    lr_warmup_steps: StrictInt = 0
    # nanotron checks lr_warmup_style before defaulting it, so it must always be given
    lr_warmup_style: Literal["linear", "constant"]
    lr_decay_style: Literal["linear", "cosine", "1-sqrt"] | None = None
    lr_decay_steps: StrictInt | None = None
    lr_decay_starting_step: StrictInt | None = None
    min_decay_lr: StrictFloat | None = None


class SGDOptimizerArgs(_Strict):
    name: Literal["sgd"] = "sgd"


class AdamWOptimizerArgs(_Strict):
    adam_eps: StrictFloat
    adam_beta1: StrictFloat
    adam_beta2: StrictFloat
    torch_adam_is_fused: StrictBool
    name: Literal["adamW"] = "adamW"


class OptimizerArgs(_Strict):
    optimizer_factory: Union[AdamWOptimizerArgs, SGDOptimizerArgs]
    zero_stage: StrictInt
    weight_decay: StrictFloat
    clip_grad: StrictFloat | None
    accumulate_grad_in_fp32: StrictBool
    learning_rate_scheduler: LRSchedulerArgs
    weight_decay_exclude_named_params: list[StrictStr] | None = None


class NanosetDatasetsArgs(_Strict):
    dataset_folder: StrictStr | list[StrictStr]
    dataset_weights: list[StrictFloat] | None = None
    dataset_read_path: StrictStr | list[StrictStr] | None = None
    tokenizer_name: StrictStr | None = None
    vocab_size: StrictInt | None = None
    token_size_in_bytes: StrictInt | None = None
    return_positions: StrictBool | None = True
    skip_in_stream: StrictBool | None = False
    pad_samples_to_global_batch_size: StrictBool | None = False
    dataset_max_tokens: list[StrictInt] | None = None
    shuffle_files: StrictBool | None = False
    use_old_brrr_dataloader: StrictBool | None = False

    @model_validator(mode="after")
    def _weights_match_folders(self):
        folders = [self.dataset_folder] if isinstance(self.dataset_folder, str) else self.dataset_folder
        if self.dataset_weights is not None and len(self.dataset_weights) != len(folders):
            raise ValueError(
                f"Number of dataset weights ({len(self.dataset_weights)}) does not match number of dataset "
                f"folders ({len(folders)})"
            )
        return self


class PretrainDatasetsArgs(_Strict):
    hf_dataset_or_datasets: StrictStr | list | dict
    hf_dataset_splits: StrictStr | list | None = None
    hf_dataset_config_name: StrictStr | None = None
    dataset_processing_num_proc_per_process: StrictInt | None = 1
    dataset_overwrite_cache: StrictBool | None = False
    text_column_name: StrictStr | None = None


class DataArgs(_Strict):
    dataset: Union[NanosetDatasetsArgs, PretrainDatasetsArgs, None]
    seed: StrictInt | None
    num_loading_workers: StrictInt | None = 1


class DatasetStageArgs(_Strict):
    name: StrictStr
    start_training_step: StrictInt = Field(ge=0)
    data: DataArgs
    sequence_length: StrictInt | None = None


class ProfilerArgs(_Strict):
    profiler_export_path: StrictStr | None
    wait: StrictInt = 1
    warmup: StrictInt = 1
    active: StrictInt = 1
    repeat: StrictInt = 1
    skip_first: StrictInt = 3
    record_shapes: StrictBool = False
    profile_memory: StrictBool = False
    with_stack: StrictBool = True
    export_chrome_trace: StrictBool = False


class Config(_Strict):
    general: GeneralArgs
    parallelism: ParallelismArgs
    model: ModelArgs
    tokenizer: TokenizerArgs | None = None
    checkpoints: CheckpointsArgs | None = None
    logging: LoggingArgs | None = None
    metrics_logging: MetricsLoggingArgs | None = None
    tokens: TokensArgs | None = None
    optimizer: OptimizerArgs | None = None
    data_stages: list[DatasetStageArgs] | None = None
    profiler: ProfilerArgs | None = None
    lighteval: None = None  # the project never writes nanotron's lighteval section
    s3_upload: None = None

    @model_validator(mode="after")
    def _nanotron_post_init_checks(self):
        m = self.model.model_config_
        kv = m.num_key_value_heads or m.num_attention_heads
        if m.num_attention_heads % self.parallelism.tp:
            raise ValueError(f"num_attention_heads ({m.num_attention_heads}) must be divisible by tp")
        if kv < self.parallelism.tp or m.num_attention_heads % kv:
            raise ValueError(f"num_key_value_heads ({kv}) must be >= tp and divide num_attention_heads")
        if self.data_stages:
            starts = [s.start_training_step for s in self.data_stages]
            names = [s.name for s in self.data_stages]
            if 1 not in starts:
                raise ValueError("You must have a training stage starting at 1 in the config's data_stages")
            if len(set(names)) != len(names) or len(set(starts)) != len(starts):
                raise ValueError(f"data_stages need unique names and start steps: {names}, {starts}")
            seq = self.tokens.sequence_length if self.tokens else None
            for stage in self.data_stages:
                ds = stage.data.dataset
                if stage.sequence_length not in (None, seq):
                    raise ValueError("nanotron does not support changing sequence length between stages")
                if isinstance(ds, NanosetDatasetsArgs):
                    if ds.vocab_size is not None and ds.vocab_size != m.vocab_size:
                        raise ValueError(
                            f"Model's vocab_size ({m.vocab_size}) does not match dataset's ({ds.vocab_size})"
                        )
                    tok = self.tokenizer.tokenizer_name_or_path if self.tokenizer else None
                    if tok is not None and ds.tokenizer_name is not None and tok != ds.tokenizer_name:
                        raise ValueError(
                            f"Tokenizer passed in config ({tok}) does not match dataset's ({ds.tokenizer_name})"
                        )
        if self.tokens and self.optimizer:
            lr = self.optimizer.learning_rate_scheduler
            if lr.lr_decay_steps is not None and lr.lr_decay_starting_step is not None:
                if lr.lr_decay_starting_step < lr.lr_warmup_steps:
                    raise ValueError("lr_decay_starting_step is before the end of warmup")
        return self


def validate(data: dict) -> Config:
    """Validate a nanotron config dict (as loaded from its YAML); raises pydantic's ValidationError."""
    return Config.model_validate(data)
