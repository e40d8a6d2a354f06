"""TRL's GRPOTrainer, wired for R1-Zero-style RL that records its dynamics.

* ``grpo_args``: the config's RL-step view (prompts x rollouts per step, updates per rollout batch) mapped to
  TRL's counts of completions and micro-steps.
* ``OctoGRPOTrainer``: rollouts on the transformers path through ``octo.generation.Generator`` (each prompt
  prefilled once and its KV cache repeated for its G completions, rows leave the batch at EOS or a stop
  string) or, with ``trainer.rollout_engine=vllm``, through the run's own vLLM engine (``rl.vllm_rollouts``,
  the trained weights reloaded before each step's rollouts), a cut before the stop string (before rewards and
  loss masking; vLLM gets the same list as ``stop``), and the stair schedule of the max response length.
  Settings the engine does not implement (min_p, a repetition penalty, images) fall back to TRL's own ``generate`` call with a stop-string criterion.
  A micro-batch whose advantages are all 0 (and whose loss has no KL, entropy or router term) skips its
  backward: its gradient is exactly 0, so only the forward runs, for TRL's logged metrics.
* ``Recorder``: the reward function TRL calls; it scores each completion once, writes ``samples.jsonl`` and
  keeps the rollout summary of the step.
* ``DynamicsCallback``: one ``metrics.jsonl`` row per RL step (rollout summary + TRL's update logs +
  validation), and a progress line every few steps.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from tqdm import tqdm
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from octo.errors import ConfigError
from octo.generation import Generator, Sampling
from octo.jsonl import append_jsonl, append_jsonl_rows, read_jsonl
from octo.progress import bar as progress_bar

from .config import RLConfig
from .dynamics import metrics_row, summarise_rollout, summarise_updates
from .rewards import judge, total_reward
from .stopping import cut_at_stop, stop_generate_on
from .vllm_rollouts import VLLMRollouts


def updates_per_step(cfg: RLConfig) -> int:
    """Optimizer updates (TRL global steps) per RL step."""
    return cfg.trainer.updates_per_step * cfg.trainer.num_iterations


def grpo_args(cfg: RLConfig, output_dir: str | Path, world_size: int = 1, **overrides) -> GRPOConfig:
    """TRL arguments for ``cfg``: one RL step = one generation batch = ``updates_per_step`` optimizer updates."""
    t = cfg.trainer
    completions = t.prompts_per_step * t.num_generations
    if t.prompts_per_step % t.updates_per_step:
        raise ConfigError(
            f"trainer.prompts_per_step ({t.prompts_per_step}) must be divisible by trainer.updates_per_step "
            f"({t.updates_per_step}): each update trains on whole prompt groups"
        )
    per_update = completions // t.updates_per_step  # completions in one PPO mini-batch, all devices
    per_device = t.micro_batch_size or per_update // world_size
    if per_update % (per_device * world_size):
        raise ConfigError(
            f"a mini-batch of {per_update} completions cannot be split into micro-batches of "
            f"trainer.micro_batch_size={per_device} on {world_size} device(s)"
        )
    accumulation = per_update // (per_device * world_size)
    eos_stop = {}
    if t.use_vllm and cfg.template.stop_strings:  # vLLM stops natively and leaves the stop string out
        eos_stop = {
            "generation_kwargs": {"stop": cfg.template.stop_strings, "include_stop_str_in_output": False}
        }
    checkpointing = cfg.checkpoint.every > 0
    args = dict(
        output_dir=str(output_dir),
        seed=cfg.seed,
        max_steps=t.steps * updates_per_step(cfg),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        generation_batch_size=completions,
        num_generations=t.num_generations,
        num_iterations=t.num_iterations,
        max_completion_length=t.max_completion_at(1),
        temperature=t.temperature,
        top_p=t.top_p,
        top_k=t.top_k,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        beta=t.beta,
        loss_type=t.loss_type,
        epsilon=t.epsilon,
        epsilon_high=t.epsilon_high if t.epsilon_high is not None else t.epsilon,
        scale_rewards=t.scale_rewards,
        mask_truncated_completions=t.mask_truncated_completions,
        bf16=t.bf16,
        gradient_checkpointing=t.gradient_checkpointing,
        use_vllm=t.use_vllm,
        vllm_mode=t.vllm_mode,
        vllm_gpu_memory_utilization=t.vllm_gpu_memory_utilization,
        vllm_max_model_length=t.vllm_max_model_length,
        logging_steps=1,
        save_strategy="steps" if checkpointing else "no",
        save_steps=max(cfg.checkpoint.every, 1) * updates_per_step(cfg),
        save_total_limit=cfg.checkpoint.keep,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        **eos_stop,
    )
    args.update(overrides)
    return GRPOConfig(**args)


class OctoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + stop strings on the transformers generation path + a max-response-length schedule."""

    def __init__(
        self,
        *args,
        stop_strings=(),
        length_schedule=None,
        steps_per_rl_step: int = 1,
        rollout_engine: str = "octo",
        vllm_max_model_len: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.stop_strings = list(stop_strings)
        self.length_schedule = length_schedule  # RL step -> max completion length
        self.steps_per_rl_step = steps_per_rl_step
        self.last_finish: list[str] = []
        self.rollout_engine = rollout_engine  # octo (octo.generation) or vllm (rl.vllm_rollouts)
        self.vllm_max_model_len = vllm_max_model_len
        self.vllm_rollouts = None  # built at the first rollout, closed when train() returns or raises
        self.backwards_skipped = 0  # micro-batches whose backward was skipped: their gradient is exactly 0

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:
            self.close_rollout_engine()

    def close_rollout_engine(self) -> None:
        if self.vllm_rollouts is not None:
            self.vllm_rollouts.close()
            self.vllm_rollouts = None

    @property
    def rl_step(self) -> int:
        """The RL step being generated or trained (1-based)."""
        return self.state.global_step // self.steps_per_rl_step + 1

    def _apply_length_schedule(self) -> None:
        if self.length_schedule is None:
            return
        length = self.length_schedule(self.rl_step)
        if length != self.max_completion_length:
            self.max_completion_length = length
            if getattr(self, "generation_config", None) is not None:
                self.generation_config.max_new_tokens = length
                self.generation_kwargs["max_new_tokens"] = length
            if getattr(self, "vllm_generation", None) is not None:
                self.vllm_generation.max_completion_length = length

    def _load_optimizer_and_scheduler(self, checkpoint):
        """Resume fix for several CPU processes: transformers 5.17 loads the optimizer state with
        ``map_location=args.device``, which is ``cpu:<rank>`` there, a location ``torch.load`` cannot restore
        ("don't know how to restore data location ... (tagged with cpu:0)"). CPU tensors need no mapping."""
        import torch

        if checkpoint is None or self.args.world_size == 1 or self.args.device.type != "cpu":
            return super()._load_optimizer_and_scheduler(checkpoint)
        real_load = torch.load

        def load(*args, map_location=None, **kwargs):
            if isinstance(map_location, torch.device) and map_location.type == "cpu":
                map_location = "cpu"
            return real_load(*args, map_location=map_location, **kwargs)

        torch.load = load
        try:
            return super()._load_optimizer_and_scheduler(checkpoint)
        finally:
            torch.load = real_load

    def _compute_loss(self, model, inputs):
        if not self._gradient_is_exactly_zero(inputs):
            return super()._compute_loss(model, inputs)
        import torch

        # Every advantage here is 0, so every per-token loss is 0 x (ratio terms) and the backward would give each
        # trainable parameter a gradient of exactly 0. Skip that backward (about 3/4 of a step's training time):
        # run the forward without autograd, so TRL logs the same loss, entropy and clip ratios, and return a loss
        # whose backward writes those zero gradients, so clipping, the optimizer step and its state are unchanged.
        with torch.no_grad():
            loss = super()._compute_loss(model, inputs)
        firsts = [p.view(-1)[0] for p in model.parameters() if p.requires_grad]
        self.backwards_skipped += 1
        return loss + torch.stack(firsts).sum() * 0.0

    def _gradient_is_exactly_zero(self, inputs) -> bool:
        """True when this micro-batch's gradient is exactly 0: all its advantages are 0 and no term of the loss
        works without them (KL to a reference, an entropy bonus, a router loss). One process only: a DDP,
        DeepSpeed or FSDP rank must run the same backward as its peers."""
        return (
            self.model.training
            and self.beta == 0.0
            and not self._entropy_bonus_enabled
            and not self.aux_loss_enabled
            and self.accelerator.num_processes == 1
            and not self.is_deepspeed_enabled
            and not self.is_fsdp_enabled
            and bool((inputs["advantages"] == 0).all())
        )

    def _generate_and_score_completions(self, inputs):
        self._apply_length_schedule()
        return super()._generate_and_score_completions(inputs)

    def _engine_applies(self, images, multimodal_fields) -> bool:
        gen = self.generation_config
        return (
            images is None
            and not multimodal_fields
            and not getattr(self, "tools", None)
            and gen.min_p is None
            and gen.repetition_penalty in (None, 1.0)
            and not gen.suppress_tokens
            and (gen.num_beams or 1) == 1
        )

    def _prompt_groups(self, prompt_ids: list[list[int]]) -> tuple[list[list[int]], int]:
        """TRL's batch holds each prompt G times in a row: the distinct prompts and G (1 if groups differ)."""
        groups: list[tuple[list[int], int]] = []
        for ids in prompt_ids:
            if groups and groups[-1][0] == list(ids):
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((list(ids), 1))
        n = groups[0][1] if len({c for _, c in groups}) == 1 else 1
        return ([p for p, _ in groups] if n > 1 else [list(ids) for ids in prompt_ids]), n

    def _sampling(self) -> Sampling:
        gen = self.generation_config
        return Sampling(gen.temperature if gen.do_sample else 0.0, gen.top_p or 1.0, gen.top_k or 0)

    def _engine_generate(self, prompt_ids: list[list[int]]) -> list[list[int]]:
        """Prefill each prompt once and sample its G completions (octo.generation)."""
        import torch
        from trl.models import unwrap_model_for_generation

        prompts, n = self._prompt_groups(prompt_ids)
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
        ):
            engine = Generator(model, self._tokenizer, max_rows=len(prompt_ids))
            sampling = self._sampling()
            outs = engine.generate(
                prompts, n, self.max_completion_length, self.eos_token_ids, self.stop_strings, sampling
            )
        return [ids for samples in outs for ids in samples]

    def _vllm_generate(self, prompt_ids: list[list[int]]) -> list[list[int]]:
        """The G completions of each prompt from the run's vLLM engine, after pushing the current weights."""
        model = self.accelerator.unwrap_model(self.model_wrapped)
        if self.vllm_rollouts is None:
            self.vllm_rollouts = VLLMRollouts(
                model, self._tokenizer, seed=self.args.seed, max_model_len=self.vllm_max_model_len
            )
        self.vllm_rollouts.push(model, self.state.global_step)  # a no-op unless the optimizer stepped
        prompts, n = self._prompt_groups(prompt_ids)
        outs = self.vllm_rollouts.generate(
            prompts, n, self.max_completion_length, self.eos_token_ids, self.stop_strings, self._sampling()
        )
        return [ids for samples in outs for ids in samples]

    def _generate_single_turn(self, prompt_ids, images=None, multimodal_fields=None, *args, **kwargs):
        transformers_path = not self.use_vllm and not self.use_transformers_continuous_batching
        engine = transformers_path and self._engine_applies(images, multimodal_fields)
        if engine:
            generate = self._vllm_generate if self.rollout_engine == "vllm" else self._engine_generate
            completion_ids, logprobs = generate(prompt_ids), None
        elif transformers_path and self.stop_strings:
            model = self.accelerator.unwrap_model(self.model_wrapped)
            with stop_generate_on(model, self._tokenizer, self.stop_strings):
                completion_ids, logprobs = super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, *args, **kwargs
                )
        else:
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, *args, **kwargs
            )
        pad = self._tokenizer.pad_token_id
        cut, finish = [], []
        for ids in completion_ids:
            ids = list(ids)
            if transformers_path and not engine and ids and ids[-1] not in self.eos_token_ids:
                while ids and ids[-1] == pad:  # a row stopped by the criterion is padded to the batch length
                    ids.pop()
            ids, stopped = cut_at_stop(ids, self._tokenizer, self.stop_strings)
            cut.append(ids)
            if ids and ids[-1] in self.eos_token_ids:
                finish.append("eos")
            elif stopped or len(ids) < self.max_completion_length:
                finish.append("stop")
            else:
                finish.append("length")
        if logprobs is not None:
            logprobs = [lp[: len(ids)] for lp, ids in zip(logprobs, cut)]
        self.last_finish = finish
        return cut, logprobs


class Recorder:
    """The reward function TRL calls once per rollout batch; it also records samples and the rollout summary."""

    def __init__(self, cfg: RLConfig, samples_path: Path | None):
        self.cfg = cfg
        self.samples_path = samples_path
        self.trainer: OctoGRPOTrainer | None = None
        self.rollouts: dict[int, dict] = {}  # RL step -> rollout summary

    def __call__(self, completions, completion_ids, answer, prompt_id, **kwargs) -> list[float]:
        trainer = self.trainer
        step = trainer.rl_step
        finish = (
            trainer.last_finish if len(trainer.last_finish) == len(completions) else ["?"] * len(completions)
        )
        G = self.cfg.trainer.num_generations
        rows, rewards = [], []
        for i, (text, ids, gold, pid) in enumerate(zip(completions, completion_ids, answer, prompt_id)):
            j = judge(text, gold, self.cfg.reward.require_boxed)
            reward = total_reward(j, self.cfg.reward)
            rewards.append(reward)
            rows.append({
                "step": step, "prompt_id": pid, "text": text, "length": len(ids),
                "reward": reward, "correct": j.correct, "correct_strict": j.strict.correct,
                "correct_lenient": j.lenient.correct, "answer": j.verdict.answer, "n_boxed": j.strict.n_boxed,
                "boxed_first": j.strict.boxed_first, "repetitive": j.strict.repetitive,
                "no_answer": j.no_answer, "finish": finish[i],
            })  # fmt: skip
        if trainer.accelerator.num_processes > 1:
            # each process scored its contiguous slice of the rollout batch; the main one records all of it
            # (multi-process runs are not tested here: no GPUs on the CI machine)
            from accelerate.utils import gather_object

            rows = gather_object(rows)
            if not trainer.accelerator.is_main_process:
                return rewards
        for i, row in enumerate(rows):
            row["group"] = i // G
        self.rollouts[step] = summarise_rollout(rows, G)
        if self.samples_path is not None:
            append_jsonl_rows(self.samples_path, rows)
        return rewards

    def as_reward_function(self):
        def octo_reward(**kwargs):  # TRL names reward metrics after __name__
            return self(**kwargs)

        return octo_reward


def had_signal(row: dict) -> bool:
    """Some group of this rollout (a metrics row or rollout summary) had reward variance."""
    zero_std = row.get("frac_zero_std_groups")
    return zero_std is not None and zero_std < 1.0


class DynamicsCallback(TrainerCallback):
    """Writes one metrics.jsonl row per RL step and prints progress."""

    def __init__(
        self,
        cfg: RLConfig,
        recorder: Recorder,
        metrics_path: Path,
        validator=None,
        started=None,
        tracker=None,
    ):
        self.cfg, self.recorder, self.metrics_path, self.validator = cfg, recorder, metrics_path, validator
        self.tracker = tracker  # octo.tracking.Tracker: each row also goes to the configured trackers
        self.bar = None
        self.per_step = updates_per_step(cfg)
        self.pending: list[dict] = []
        self.validation: dict = {}
        self.started = started or time.time()
        self.signal_seen = False  # has any group had reward variance (a nonzero advantage) in this run?

    def wants_validation(self, step: int, stopping: bool = False) -> bool:
        every = self.cfg.validation.every
        last = stopping or step == self.cfg.trainer.steps
        return self.validator is not None and every > 0 and (step % every == 0 or last)

    def stops_without_signal(self, step: int) -> bool:
        """True at the step where ``trainer.stop_without_signal`` ends a run in which no group had variance."""
        self.signal_seen |= had_signal(self.recorder.rollouts.get(step) or {})
        patience = self.cfg.trainer.stop_without_signal
        return bool(patience) and not self.signal_seen and step >= patience and step < self.cfg.trainer.steps

    def on_train_begin(self, args, state, control, **kwargs):
        done = state.global_step // self.per_step
        if done and self.metrics_path.is_file():  # resumed: the rows kept up to the checkpoint
            kept = read_jsonl(self.metrics_path, torn_tail=True)
            self.signal_seen = any(had_signal(row) for row in kept)
        self.bar = progress_bar(
            self.cfg.trainer.steps, initial=done, desc="rl", disable=not state.is_world_process_zero
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and state.global_step % self.per_step == 0:
            step = state.global_step // self.per_step
            stopping = self.stops_without_signal(step)
            if self.wants_validation(step, stopping):
                self.validation = self.validator(model)
            if stopping:
                control.should_training_stop = True  # the trainer still logs this step, then saves final/
                tqdm.write(
                    f"[rl] stopping at step {step} of {self.cfg.trainer.steps} (trainer.stop_without_signal): "
                    f"no group has had reward variance, so every advantage was 0 and the policy has not moved"
                )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or "train_runtime" in logs or not state.is_world_process_zero:
            return
        self.pending.append(dict(logs))
        if state.global_step % self.per_step:
            return
        step = state.global_step // self.per_step
        extra = {
            "max_completion_length": self.cfg.trainer.max_completion_at(step),
            "wall_time": round(time.time() - self.started, 3),
            **self.validation,
        }
        row = metrics_row(
            step, self.recorder.rollouts.pop(step, None), summarise_updates(self.pending), extra
        )
        append_jsonl(self.metrics_path, row)
        if self.tracker is not None:
            self.tracker.log(row)
        self.pending, self.validation = [], {}
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
        if step % self.cfg.log_every == 0 or step == self.cfg.trainer.steps or step == 1:
            tqdm.write(progress_line(row, self.cfg.trainer.steps))  # keeps a terminal bar intact


def _fmt(value, spec=".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def progress_line(row: dict, total: int) -> str:
    vals = " ".join(
        f"{k[4:]}={_fmt(v, '.3f')}" for k, v in row.items() if k.startswith("val/") and k.endswith("/acc")
    )
    return (
        f"[rl] step {row['step']}/{total}  reward {_fmt(row['reward_mean'])}  acc {_fmt(row['accuracy'])}  "
        f"len {_fmt(row['response_len_mean'], '.1f')}  clip {_fmt(row['clip_ratio'], '.2f')}  "
        f"zero-std {_fmt(row['frac_zero_std_groups'], '.2f')}  {_fmt(row['step_time'], '.2f')} s/step"
        + (f"  val {vals}" if vals else "")
    )
