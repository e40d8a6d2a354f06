"""The two things every vLLM user in the project does alike: sampling parameters and stopping the engine.

Used by evaluation (``eval.backends.VLLMBackend``) and RL rollouts (``rl.vllm_rollouts``); vLLM is imported
only when called, so the main (vLLM-free) environment can import this module.
"""

from __future__ import annotations


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
