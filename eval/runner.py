"""Score one checkpoint on one suite: one lighteval Pipeline per task, then results.json, details and a manifest.

Rules that keep lighteval 0.13 correct (docs/eval.md, "Correctness"):
* one task and one few-shot setting per Pipeline (mixing them truncates the longer prompts);
* fixed, sequential exemplars;
* the generation budget is the task's ``generation_size``, never ``GenerationParameters.max_new_tokens``
  (which truncates the prompt to that many tokens);
* temperature, top_p and top_k always explicit; ``do_sample`` set in memory for sampled runs;
* after each task every prompt the model received is compared, token by token, with the full prompt: any
  truncation stops the run with an error (the details are written first).

Output (``out_dir``): ``results.json``, ``details/<task>.jsonl`` (one row per item), ``manifest.json``.
A finished task is kept when an interrupted run is started again with the same config.
"""

from __future__ import annotations

import json
import logging
import time
import types
from pathlib import Path

from octo.config import ConfigError
from octo.errors import StageError
from octo.jsonl import write_jsonl
from octo.manifest import config_hash, is_complete, write_manifest
from octo.procs import run_lock

from . import tasks as T
from .config import SuiteConfig, load_suite, selected_tasks
from .metrics import build_metric, metric_names

RESULTS = "results.json"
log = logging.getLogger("octo.eval")


def model_fingerprint(path: str | Path) -> dict:
    """Names, sizes and modification times of the checkpoint's files: a rewritten checkpoint is re-evaluated."""
    path = Path(path)
    if not path.exists():
        return {"path": str(path), "exists": False}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        "path": str(path.resolve()),
        "files": {
            str(f.relative_to(path)) if path.is_dir() else f.name: [f.stat().st_size, int(f.stat().st_mtime)]
            for f in files
        },
    }


def _run_config(suite: SuiteConfig, model_path: str | Path) -> dict:
    return {"suite": suite.model_dump(mode="json"), "model": model_fingerprint(model_path)}


def _quiet_lighteval() -> None:
    # lighteval warns once per unparsable completion ("did not manage to extract a prediction"): with weak
    # models that is most items. Our own per-task summary line reports what matters.
    for name in ("lighteval", "lighteval.metrics", "lighteval.models", "lighteval.tasks"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _as_ids(tokens) -> list[int]:
    return tokens.tolist() if hasattr(tokens, "tolist") else [int(t) for t in tokens]


def _completion_stats(ids: list[int], text: str, tokenizer, stop: list[str], max_new_tokens: int) -> dict:
    """Length of the answer as scored (re-tokenised after the stop cut) and whether it hit the budget."""
    eos = tokenizer.eos_token_id
    raw_len = ids.index(eos) if eos in ids else len(ids)
    raw_text = tokenizer.decode(ids[:raw_len], skip_special_tokens=True)
    stopped = eos in ids or any(s in raw_text for s in stop)
    return {
        "tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        "clipped": not stopped and raw_len >= max_new_tokens,
    }


def _received_length(received: list[int], full: list[int], pad_id: int | None) -> int:
    """How much of the full prompt reached the model: len(full) only when it arrived whole (after left padding).

    Anything else (a cut prompt, altered tokens) returns fewer, so the caller counts it as truncated.
    """
    pad = len(received) - len(full)
    if pad >= 0 and received[pad:] == full and all(t == pad_id for t in received[:pad]):
        return len(full)
    start = 0
    while start < len(received) and received[start] == pad_id:
        start += 1
    return min(len(received) - start, len(full) - 1)


def run_task(task, suite: SuiteConfig, backend, out_dir: Path) -> dict:
    """Evaluate one task with one lighteval Pipeline; write details/<task>.jsonl; return its result entry."""
    import transformers

    started = time.time()
    timing = {}

    def lap(name: str) -> None:  # seconds since the previous lap
        timing[name] = time.time() - started - sum(timing.values())

    loaded = T.task_items(task, suite)
    max_new_tokens = task.max_new_tokens or suite.generation.max_new_tokens
    stop = T.stop_sequences(task)
    key = T.register_items(loaded)
    full_name = f"octo_{task.name}|{task.fewshot}"
    lap("items")
    try:
        pipeline = _lighteval_pipeline(task, suite, backend, out_dir, loaded, key, max_new_tokens)
        lap("pipeline_init")
        # keep a reference: the Pipeline deletes the tokenizer from the model when it finishes
        tokenizer = pipeline.model.tokenizer
        prompts = _prepare_prompts(pipeline, full_name, tokenizer)
        _check_context(task, prompts, max_new_tokens, pipeline.model.max_length)
        lap("prompt_check")
        transformers.set_seed(suite.seed)
        pipeline.evaluate()
        lap("evaluate")
        aggregated = pipeline.get_results()["results"][full_name.replace("|", ":")]
        details = pipeline.get_details()[full_name]
    finally:
        T.release_items(key)

    rows, truncated = _detail_rows(details, loaded, prompts, tokenizer, stop, max_new_tokens)
    write_jsonl(out_dir / "details" / f"{task.name}.jsonl", rows)
    lap("details")
    if truncated:
        raise StageError(
            f"task {task.name}: {truncated} prompts reached the model truncated (see {out_dir}/details/"
            f"{task.name}.jsonl, prompt_tokens vs input_tokens); the scores would be wrong"
        )
    entry = _result_entry(task, suite, loaded, rows, aggregated, max_new_tokens, stop)
    entry["truncated_prompts"] = truncated
    entry["wall_s"] = round(time.time() - started, 3)
    entry["timing_s"] = {k: round(v, 4) for k, v in timing.items()}
    return entry


def _lighteval_pipeline(
    task, suite: SuiteConfig, backend, out_dir: Path, loaded, key: str, max_new_tokens: int
):
    """A lighteval Pipeline over a fresh module that holds just this task."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters

    gen = suite.generation
    module = types.ModuleType(f"octo_eval_tasks_{task.name}")
    module.OCTO_ONLY = True
    metric = build_metric(task.metric, gen.n, gen.ks())
    module.TASKS_TABLE = [T.lighteval_task_config(task, key, metric, max_new_tokens, bool(loaded.exemplars))]
    params = PipelineParameters(
        launcher_type=ParallelismManager.NONE,
        custom_tasks_directory=module,
        remove_reasoning_tags=False,  # score the raw completion, as the RL reward does
    )
    tracker = EvaluationTracker(output_dir=str(out_dir / ".lighteval"), save_details=False)
    pipeline = Pipeline(
        tasks=f"octo_{task.name}|{task.fewshot}",
        pipeline_parameters=params,
        evaluation_tracker=tracker,
        **backend.pipeline_kwargs(),
    )
    backend.after_init(pipeline)
    return pipeline


def _prepare_prompts(pipeline, full_name: str, tokenizer) -> dict:
    """doc id -> (full prompt text, its token ids); each doc records its prompt length for the scorer."""
    lm = pipeline.model
    prompts = {}
    for doc in pipeline.documents_dict[full_name]:
        text = lm.prompt_manager.prepare_prompt(doc)
        prompts[doc.id] = (text, tokenizer(text, add_special_tokens=lm.add_special_tokens)["input_ids"])
        doc.specific = {**(doc.specific or {}), "octo_prompt_tokens": len(prompts[doc.id][1])}
    return prompts


def _check_context(task, prompts: dict, max_new_tokens: int, max_length: int) -> None:
    """Refuse before generating when the longest prompt plus the budget would not fit (lighteval would cut it)."""
    longest = max(len(ids) for _, ids in prompts.values())
    if longest + max_new_tokens > max_length:
        raise ConfigError(
            f"task {task.name}: the longest {task.fewshot}-shot prompt has {longest} tokens; with "
            f"max_new_tokens={max_new_tokens} it exceeds the model context ({max_length}). Lower fewshot or "
            "max_new_tokens, or raise model.max_length if the model allows it (lighteval would cut the prompt)"
        )


def _detail_rows(details, loaded, prompts: dict, tokenizer, stop: list[str], max_new_tokens: int):
    """One row per item, in item order, and how many prompts reached the model truncated."""
    rows, truncated = [], 0
    pad_id = tokenizer.pad_token_id
    for detail in sorted(details, key=lambda d: int(d.doc.id)):
        doc, response = detail.doc, detail.model_response
        item = loaded.items[int(doc.id)]
        prompt, full_ids = prompts[doc.id]
        received = _received_length(_as_ids(response.input_tokens), list(full_ids), pad_id)
        truncated += received != len(full_ids)
        verdicts = (doc.specific or {}).get("octo_verdicts", [])
        stats = [
            _completion_stats(_as_ids(ids), text, tokenizer, stop, max_new_tokens)
            for ids, text in zip(response.output_tokens, response.final_text)
        ]
        rows.append(
            {
                "id": item["id"],
                "question": item["question"],
                "gold": item["answer"],
                "prompt": prompt,
                "prompt_tokens": len(full_ids),
                "input_tokens": received,
                "completions": list(response.final_text),
                "completion_tokens": [s["tokens"] for s in stats],
                "clipped": [s["clipped"] for s in stats],
                "answers": [v.get("answer") for v in verdicts],
                "correct": [bool(v.get("correct")) for v in verdicts],
                "verdicts": verdicts,
                "metrics": {k: float(v) for k, v in detail.metric.items()},
            }
        )
    return rows, truncated


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _result_entry(
    task, suite: SuiteConfig, loaded, rows: list[dict], aggregated: dict, max_new_tokens, stop
) -> dict:
    """The task's entry in results.json: its settings, scores and completion-length figures."""
    gen = suite.generation
    names = metric_names(gen.n, gen.ks())
    scores = {
        name: {
            "value": float(aggregated[name]),
            "stderr": float(aggregated.get(f"{name}_stderr", 0.0) or 0.0),
        }
        for name in names
    }
    main = names[0] if gen.n == 1 else f"mean@{gen.n}"
    lengths = [t for r in rows for t in r["completion_tokens"]]
    correct_lengths = [t for r in rows for t, c in zip(r["completion_tokens"], r["correct"]) if c]
    return {
        "source": task.source,
        "benchmark": task.benchmark or (task.name if task.source == "benchmark" else None),
        "prompt": task.prompt,
        "metric": task.metric,
        "fewshot": task.fewshot,
        "exemplar_ids": [x["id"] for x in loaded.exemplars],
        "n": len(rows),
        "items_available": loaded.available,
        "dropped_as_exemplar": loaded.dropped_as_exemplar,
        "samples": gen.n,
        "max_new_tokens": max_new_tokens,
        "stop": stop,
        "main": main,
        "score": scores[main]["value"],
        "stderr": scores[main]["stderr"],
        "scores": scores,
        "mean_completion_tokens": _mean(lengths),
        "mean_correct_completion_tokens": _mean(correct_lengths),
        "clip_ratio": _mean([c for r in rows for c in r["clipped"]]),
        "max_prompt_tokens": max(r["prompt_tokens"] for r in rows),
    }


def _settings(suite: SuiteConfig, backend_name: str) -> dict:
    return {
        "backend": backend_name,
        "seed": suite.seed,
        "generation": suite.generation.model_dump(mode="json") | {"ks": suite.generation.ks()},
        "model": suite.model.model_dump(mode="json"),
    }


def default_out_dir(model_path: str | Path, suite: SuiteConfig) -> Path:
    """Where ``octo eval run`` writes without ``--out``: runs/eval/<model folder name>/<suite name>."""
    return Path("runs/eval") / Path(model_path).name / suite.name


def score_lines(results: dict) -> str:
    """One line per task: metric, score ± stderr and the number of items."""
    width = max(len(name) for name in results["tasks"])
    return "\n".join(
        f"  {name:<{width}}  {entry['main']:>8} {entry['score']:.3f} ± {entry['stderr']:.3f}  n={entry['n']}"
        for name, entry in results["tasks"].items()
    )


def run(
    suite: SuiteConfig | str | Path,
    model_path: str | Path,
    out_dir: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    model=None,
    backend=None,
    force: bool = False,
) -> dict:
    """Score ``model_path`` on every task of ``suite``; write ``out_dir``/results.json, details/, manifest.json.

    Returns the results dict. Skips the work (and returns the stored results) when ``out_dir`` already holds a
    complete run of the same suite config on the same checkpoint files. ``model``: an already loaded HF model
    for ``model_path`` (saves a load when one process evaluates the same checkpoint on several suites).
    ``backend``: a ready generation backend (``eval.backends``), e.g. ``GeneratorBackend`` around your own
    generate function; default: the suite's (transformers or vLLM).
    """
    suite = load_suite(suite, overrides)
    out_dir = Path(out_dir)
    run_config = _run_config(suite, model_path)
    if backend is not None:
        run_config["backend"] = backend.name
    results_file = out_dir / RESULTS
    if not force and is_complete(out_dir, run_config) and results_file.is_file():
        log.info("[eval] %s on %s: already complete in %s", suite.name, model_path, out_dir)
        return json.loads(results_file.read_text())
    if not Path(model_path).exists():
        raise ConfigError(f"--model {model_path}: no such checkpoint folder")

    import random

    import numpy as np
    import torch

    # Process-wide state that lighteval and the seeding below change: autograd (lighteval turns it off at import
    # and per model) and the Python/NumPy/torch random streams. Restored on exit, so a training stage that runs
    # next in the same process is unaffected by an evaluation in between.
    grad_enabled = torch.is_grad_enabled()
    rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    threads = torch.get_num_threads()
    try:
        if suite.model.threads:
            torch.set_num_threads(suite.model.threads)
        with run_lock(out_dir):  # one run at a time in a folder; its children die with it
            return _run(suite, model_path, out_dir, run_config, model, backend, force)
    finally:
        torch.set_num_threads(threads)
        torch.set_grad_enabled(grad_enabled)
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _run(
    suite: SuiteConfig, model_path, out_dir: Path, run_config: dict, model, backend, force: bool
) -> dict:
    results_file = out_dir / RESULTS
    T.install_lighteval_patches()
    _quiet_lighteval()
    started = time.time()
    previous = json.loads(results_file.read_text()) if results_file.is_file() and not force else {}
    done = previous.get("tasks", {}) if previous.get("config_hash") == config_hash(run_config) else {}
    write_manifest(out_dir, stage="eval", config=run_config, started=started, status="running")
    results = {
        "suite": suite.name,
        "model": str(model_path),
        "config_hash": config_hash(run_config),
        "settings": _settings(suite, backend.name if backend is not None else suite.backend),
        "complete": False,
        "tasks": dict(done),
    }
    own_backend = backend is None
    try:
        for task in selected_tasks(suite):
            if task.name in results["tasks"]:
                print(f"[eval] {suite.name}/{task.name}: kept from the interrupted run", flush=True)
                continue
            if backend is None:
                from .backends import make_backend  # torch/transformers/lighteval: only when a suite runs

                backend = make_backend(suite, model_path, model)
            entry = run_task(task, suite, backend, out_dir)
            results["tasks"][task.name] = entry
            _write_json(results_file, results)
            print(
                f"[eval] {suite.name}/{task.name}: {entry['main']} {entry['score']:.3f} ± {entry['stderr']:.3f} "
                f"(n={entry['n']}, {task.fewshot}-shot, {gen_label(suite)}) in {entry['wall_s']:.1f}s",
                flush=True,
            )
    finally:
        if own_backend and backend is not None:
            backend.close()
    results["complete"] = True
    results["wall_s"] = round(time.time() - started, 3)
    _write_json(results_file, results)
    counts = {name: entry["n"] for name, entry in results["tasks"].items()}
    write_manifest(
        out_dir, stage="eval", config=run_config, inputs={"model": model_path}, counts=counts, started=started
    )
    return results


def gen_label(suite: SuiteConfig) -> str:
    gen = suite.generation
    return "greedy" if gen.temperature == 0 else f"T={gen.temperature:g}, n={gen.n}"


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
