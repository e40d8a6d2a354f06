"""Corpus refinement: documents rewritten by a language model behind an OpenAI-compatible server.

This is how MegaMath-Web-Pro (and OctoThinker's MegaMath-Web-Pro-Max) were made: web math text is sent to a
large instruct model with a rewriting prompt (``configs/prompts/megamath_web_pro_refine.txt``) and the reply
replaces the text. The recipe's ``refine:`` section adds two stages after filtering / MinHash:

* ``refine``: datatrove's own ``InferenceRunner`` (``datatrove.pipeline.inference``) sends every document of the
  ``apply_to`` sources to the server with bounded concurrency. Its checkpointing keeps finished documents in
  ``work/refine_checkpoints/`` (chunks plus a sqlite request cache), so a killed task resumes without sending
  them again. ``RefineEndpoint`` is datatrove's ``EndpointServer`` with our retry/backoff: a server that stops
  answering fails the task with "server gone" after the configured retries, and building again resumes.
* ``refine_guard``: the ``filter:refine`` step judges each reply (empty, refusal, truncated at the token
  limit, shorter than ``min_length_ratio`` of the input, lost every number and formula). Accepted rewrites
  replace the text and keep the original in ``metadata['refine']['original']``; rejected documents go to
  ``dropped/refine/`` with the original text, the reply and the reason. Then decontamination and ``docs/``
  as without refinement, so the report's per-source accounting covers refinement like any filter.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.inference.servers import EndpointServer
from datatrove.pipeline.inference.types import InferenceError, ServerError
from datatrove.pipeline.writers import JsonlWriter

from octo.config import ConfigError
from pipelines import steps
from pipelines.errors import RefineServerError
from pipelines.recipe import CorpusRecipe, RefineConfig, RefineGuards, resolve_path

__all__ = [
    "RefineServerError",
    "judge",
    "refine_stages",
    "load_prompt",
    "check_server",
    "estimate",
    "report_section",
]

RESULT_KEY = "refine_result"  # metadata between the two stages (removed before docs/)
REASONS = ("request_error", "empty", "truncated", "refusal", "too_short", "lost_math")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_FORMULA = re.compile(r"\\[A-Za-z]+|\$|[=<>^]|\d\s*[-+*/×÷]\s*\d")


def paths(work: Path) -> dict[str, Path]:
    return {
        "prerefine": work / "prerefine",
        "refined": work / "refined",
        "checkpoints": work / "refine_checkpoints",
    }


# ------------------------------------------------------------------------------------------------ prompt
def load_prompt(cfg: RefineConfig) -> str:
    path = resolve_path(cfg.prompt)
    if not path.is_file():
        raise ConfigError(f"refine.prompt: {cfg.prompt} does not exist")
    template = path.read_text(encoding="utf-8")
    if cfg.placeholder not in template:
        raise ConfigError(f"refine.prompt: {cfg.prompt} does not contain the placeholder {cfg.placeholder!r}")
    return template


def math_marks(text: str) -> set[str]:
    """The numbers and formula marks of a text (what a faithful rewrite must not lose entirely)."""
    return set(_NUMBER.findall(text)) | set(_FORMULA.findall(text))


def judge(original: str, result: dict, guards: RefineGuards, max_tokens: int) -> str | None:
    """Why a reply is rejected (one of REASONS), or None when the rewrite is kept."""
    if "error" in result:
        return "request_error"
    reply = (result.get("text") or "").strip()
    if not reply:
        return "empty"
    completion = (result.get("usage") or {}).get("completion_tokens", 0)
    if result.get("finish_reason") == "length" or completion >= max_tokens:
        return "truncated"
    head = reply[:300]
    if any(re.search(p, head, flags=re.IGNORECASE) for p in guards.refusal_patterns):
        return "refusal"
    if len(reply) < guards.min_length_ratio * len(original.strip()):
        return "too_short"
    if guards.keep_math and math_marks(original) and not math_marks(reply):
        return "lost_math"
    return None


# -------------------------------------------------------------------------------------- server + runner
@dataclass
class RefineInferenceConfig(InferenceConfig):
    """datatrove's InferenceConfig plus the endpoint's retry policy and where its API key is."""

    retries: int = 5
    backoff_s: float = 2.0
    api_key_env: str | None = None


class RefineEndpoint(EndpointServer):
    """datatrove's EndpointServer with bounded retries and exponential backoff; gives up with ServerError."""

    def __init__(self, config: InferenceConfig, rank: int):
        super().__init__(config, rank)
        self.retries, self.backoff_s = config.retries, config.backoff_s
        self.timeout_s = config.request_timeout
        key_env = config.api_key_env
        if self.client is not None:  # https / remote: OpenAI client on <endpoint>/v1, our retries only
            from openai import AsyncOpenAI

            key = os.environ.get(key_env, "") if key_env else "none"
            base = f"{self.endpoint_url}/v1"
            self.client = AsyncOpenAI(api_key=key, base_url=base, timeout=self.timeout_s, max_retries=0)

    async def bg_start_server(self) -> None:
        """Nothing to start: wait for the endpoint, or fail every request with a message that says what to do."""
        try:
            for _ in range(self.config.server_ready_max_attempts):
                if await self.is_ready():
                    self._server_ready.set_result(True)
                    return
                await asyncio.sleep(self.config.server_ready_delay_sec)
            message = (
                f"refine: no OpenAI-compatible server answers at {self.endpoint_url}/v1/models; start it and "
                "build again (refined documents are kept and not sent again)"
            )
            self._server_ready.set_exception(ServerError(message))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            if not self._server_ready.done():
                self._server_ready.set_exception(ServerError(exc))

    async def _make_request(self, payload: dict) -> dict:
        last = None
        for attempt in range(self.retries + 1):
            try:
                return await asyncio.wait_for(super()._make_request(dict(payload)), timeout=self.timeout_s)
            except (ConnectionError, OSError, asyncio.TimeoutError, ServerError) as exc:
                last = exc
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff_s * 2**attempt)
        raise ServerError(
            f"refine: server gone at {self.endpoint_url} ({type(last).__name__}: {last}) after {self.retries} "
            "retries; build again when it is back (refined documents are kept and not sent again)"
        )


class RefineRunner(InferenceRunner):
    name = "✍ Refine (LLM rewrite)"

    def _init_server(self, rank: int):
        if self.config.server_type == "vllm":  # datatrove starts `vllm serve <model>` inside the task
            return super()._init_server(rank)
        return RefineEndpoint(self.config, rank)

    def run(self, data, rank: int = 0, world_size: int = 1):
        try:
            return super().run(data, rank, world_size)
        except ServerError as exc:
            raise RefineServerError(str(exc.error)) from None


class RefineRollout:
    """One request per in-scope document; out-of-scope documents pass with no request (picklable)."""

    def __init__(self, template: str, placeholder: str, chat: bool, apply_to: tuple[str, ...] | None):
        self.template, self.placeholder, self.chat, self.apply_to = template, placeholder, chat, apply_to

    async def __call__(self, document: Document, generate):
        if self.apply_to is not None and document.metadata.get("source") not in self.apply_to:
            return {"skipped": True}
        prompt = self.template.replace(self.placeholder, document.text)
        payload = {"messages": [{"role": "user", "content": prompt}]} if self.chat else {"prompt": prompt}
        try:
            result = await generate(payload)
        except InferenceError as exc:  # the server refused this request (e.g. too long): this document only
            if "BadRequestError" not in str(exc.error):
                raise
            return {"error": str(exc.error)[:500]}
        return {"text": result.text, "finish_reason": result.finish_reason, "usage": result.usage}


class RefineGuard(BaseFilter):
    """Replaces the text with accepted rewrites; rejects the others with their reason (label filter:refine)."""

    name = "🛡 Refine guards"

    def __init__(self, guards: RefineGuards, max_tokens: int, model: str, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.guards, self.max_tokens, self.model = guards, max_tokens, model

    def filter(self, doc: Document):
        results = doc.metadata.pop(RESULT_KEY, None) or [{"error": "no reply recorded"}]
        result = results[0]
        if result.get("skipped"):
            self.stat_update("out_of_scope")
            return True
        reason = judge(doc.text, result, self.guards, self.max_tokens)
        usage = result.get("usage") or {}
        self.stat_update("prompt_tokens", value=usage.get("prompt_tokens", 0))
        self.stat_update("completion_tokens", value=usage.get("completion_tokens", 0))
        if reason is not None:
            doc.metadata["refine_reply"] = result.get("text") or result.get("error", "")
            doc.metadata["refine_finish_reason"] = result.get("finish_reason")
            return False, reason
        doc.metadata["refine"] = {"original": doc.text, "model": self.model, "usage": usage}
        doc.text = result["text"].strip()
        return True


# ------------------------------------------------------------------------------------------------ stages
def refine_stages(recipe: CorpusRecipe, out: Path, tasks: int, tail: list, tail_names: list[str], stage_cls):
    """The two refinement stages; ``tail`` is what would otherwise follow the filters (decont, count, docs)."""
    cfg = recipe.refine
    p = paths(out / "work")
    gen = cfg.generation
    params = {"max_tokens": gen.max_tokens, "temperature": gen.temperature, "top_p": gen.top_p, **gen.extra}
    if gen.seed is not None:
        params["seed"] = gen.seed
    config = RefineInferenceConfig(
        server_type=cfg.server,
        model_name_or_path=str(resolve_path(cfg.model)) if cfg.server == "vllm" else cfg.model,
        endpoint_url=cfg.endpoint if cfg.server == "endpoint" else None,
        model_max_context=cfg.max_model_len,
        use_chat=cfg.chat,
        default_generation_params=params,
        max_concurrent_generations=cfg.concurrency,
        request_timeout=cfg.request_timeout_s,
        server_ready_max_attempts=cfg.connect_attempts,
        server_ready_delay_sec=cfg.connect_delay_s,
        metric_interval=3600,
        model_kwargs=dict(cfg.vllm_args) or None,
        server_start_timeout_sec=600.0,
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
        api_key_env=cfg.api_key_env,
    )
    apply_to = tuple(cfg.apply_to) if cfg.apply_to else None
    runner = RefineRunner(
        RefineRollout(load_prompt(cfg), cfg.placeholder, cfg.chat, apply_to),
        config,
        JsonlWriter(str(p["refined"]), output_filename="${rank}_chunk_${chunk_index}.jsonl.gz"),
        checkpoints_local_dir=str(p["checkpoints"]),
        records_per_chunk=cfg.records_per_chunk,
        metadata_key=RESULT_KEY,
    )
    guard = steps.with_dropped_writer(
        RefineGuard(cfg.guards, gen.max_tokens, cfg.model), str(out / "dropped" / "refine")
    )
    return [
        stage_cls(
            "refine",
            [steps.InternalJsonlReader(str(p["prerefine"])), runner],
            tasks,
            labels=["read:prerefine", "refine:generate"],
        ),  # fmt: skip
        stage_cls(
            "refine_guard",
            [steps.InternalJsonlReader(str(p["refined"])), guard, *tail],
            tasks,
            labels=["read:refined", "filter:refine", *tail_names],
        ),  # fmt: skip
    ]


def prerefine_writer(out: Path):
    return JsonlWriter(str(paths(out / "work")["prerefine"]), output_filename="${rank}.jsonl.gz")


def fingerprint_part(refine: dict) -> dict:
    """What the refined documents depend on: not where the server is or how fast it is asked."""
    keep = {k: v for k, v in refine.items() if k not in _RUN_ONLY}
    prompt = resolve_path(refine["prompt"])
    keep["prompt_text"] = prompt.read_text(encoding="utf-8") if prompt.is_file() else None
    return keep


_RUN_ONLY = {"server", "endpoint", "max_model_len", "vllm_args", "api_key_env", "concurrency", "request_timeout_s", "retries", "backoff_s",
             "connect_attempts", "connect_delay_s", "tokenizer"}  # fmt: skip


# ------------------------------------------------------------------------------------- dry run / report
def check_server(cfg: RefineConfig, timeout_s: float = 5.0) -> str:
    """GET <endpoint>/v1/models: a line saying whether the server is up and serves ``cfg.model``."""
    url = f"{cfg.endpoint}/v1/models"
    headers = {}
    if cfg.api_key_env and os.environ.get(cfg.api_key_env):
        headers["Authorization"] = f"Bearer {os.environ[cfg.api_key_env]}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s) as r:
            served = [m.get("id") for m in json.loads(r.read()).get("data", [])]
    except Exception as exc:  # noqa: BLE001 - any failure is reported, the dry run goes on
        return f"server {url}: not reachable now ({type(exc).__name__}); start it before building"
    if cfg.model not in served:
        raise ConfigError(f"refine.model: {cfg.model!r} is not served at {url} (served: {served})")
    return f"server {url}: up, serves {cfg.model!r}"


def _token_counter(cfg: RefineConfig):
    if cfg.tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(resolve_path(cfg.tokenizer)))
        return lambda text: len(tok(text, add_special_tokens=False)["input_ids"]), "tokenizer"
    return lambda text: (len(text) + 3) // 4, "4 characters per token"


def estimate(recipe: CorpusRecipe, make_reader, sample: int = 200) -> dict:
    """Tokens in/out of the refinement, from up to ``sample`` documents per refined source (before filters):
    in = prompt + document, out = min(document, max_tokens) (the prompt asks to keep the length)."""
    cfg = recipe.refine
    template = load_prompt(cfg)
    count, how = _token_counter(cfg)
    prompt_tokens = count(template.replace(cfg.placeholder, ""))
    per_source = {}
    for source in recipe.sources:
        if cfg.apply_to and source.name not in cfg.apply_to:
            continue
        docs = []
        for doc in make_reader(source).run(None, 0, 1):
            docs.append(count(doc.text))
            if len(docs) >= sample:
                break
        n = source.limit if source.limit > 0 else None
        per_source[source.name] = {
            "sampled": len(docs),
            "complete": len(docs) < sample,
            "mean_in": prompt_tokens + (sum(docs) / len(docs) if docs else 0),
            "mean_out": sum(min(d, cfg.generation.max_tokens) for d in docs) / len(docs) if docs else 0,
            "documents": len(docs) if len(docs) < sample else n,
        }
    return {"counted_with": how, "prompt_tokens": prompt_tokens, "sources": per_source}


def dry_run_lines(recipe: CorpusRecipe, make_reader) -> list[str]:
    cfg = recipe.refine
    if cfg.server == "vllm":
        if not resolve_path(cfg.model).is_dir():
            raise ConfigError(
                f"refine.model: {cfg.model} is not a checkpoint folder (server: vllm serves it)"
            )
        lines = [f"server: each task starts `vllm serve {cfg.model}` (needs vllm and a free port)"]
    else:
        lines = [check_server(cfg)]
    est = estimate(recipe, make_reader)
    for name, s in est["sources"].items():
        docs = s["documents"]
        total = f"{docs:,} docs -> ~{docs * s['mean_in']:,.0f} tokens in, ~{docs * s['mean_out']:,.0f} out" if docs \
            else "document count unknown until read (sampled the first ones)"  # fmt: skip
        lines.append(f"refine {name}: ~{s['mean_in']:,.0f} tokens in / ~{s['mean_out']:,.0f} out per document "
                     f"({est['counted_with']}); {total} (upper bound: before filters)")  # fmt: skip
    return lines


def report_section(recipe: CorpusRecipe, steps_rows: list[dict], stage_stats: dict) -> dict:
    """Throughput of the requests sent by the runs that finished each task, and the rejection reasons."""
    raw = stage_stats.get("refine:generate", {})
    runner = {k: v.get("total", 0) if isinstance(v, dict) else (v or 0) for k, v in raw.items()}
    guard = next((r for r in steps_rows if r["step"] == "filter:refine"), {})
    seconds = runner.get("inference_time", 0.0)
    sent = runner.get("successful_requests", 0)
    tokens_out = runner.get("completion_tokens", 0)
    return {
        "model": recipe.refine.model,
        "prompt": recipe.refine.prompt,
        "judged": guard.get("in", 0) - guard.get("out_of_scope", 0),
        "kept": guard.get("kept", 0) - guard.get("out_of_scope", 0),
        "rejected": guard.get("dropped", 0),
        "rejected_by_reason": guard.get("dropped_by_reason", {}),
        "out_of_scope": guard.get("out_of_scope", 0),
        "requests_sent": int(sent),
        "failed_requests": int(runner.get("failed_requests", 0)),
        "tokens_in": int(runner.get("prompt_tokens", 0)),
        "tokens_out": int(tokens_out),
        "inference_s": round(seconds, 2),
        "documents_per_s": round(sent / seconds, 3) if seconds else None,
        "tokens_out_per_s": round(tokens_out / seconds, 1) if seconds else None,
    }


def render_section(r: dict) -> list[str]:
    reasons = ", ".join(f"{k}: {v:,.0f}" for k, v in r["rejected_by_reason"].items()) or "none"
    return [
        "## Refinement",
        "",
        f"Model `{r['model']}`, prompt `{r['prompt']}`. {r['judged']:,.0f} documents judged: {r['kept']:,.0f} "
        f"rewrites kept, {r['rejected']:,.0f} rejected ({reasons}); {r['out_of_scope']:,.0f} out of scope.",
        "",
        f"Requests sent by the runs that finished: {r['requests_sent']:,} ({r['failed_requests']:,} failed), "
        f"{r['tokens_in']:,} tokens in, {r['tokens_out']:,} out in {r['inference_s']} s: "
        f"{r['documents_per_s']} documents/s, {r['tokens_out_per_s']} tokens out/s.",
        "",
    ]
