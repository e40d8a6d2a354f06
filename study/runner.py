"""Run a study end to end: corpora -> tokenizer -> base -> mid-training arms -> evaluation -> RL -> evaluation
-> readiness table.

The runner only connects the stages: each step calls one stage's public function with a config whose paths
point into the study folder, and each stage writes its own outputs and manifest there. A step whose outputs
are complete for the same config is skipped by the stage itself (the runner reports it as cached), so a killed
study started again resumes where it stopped. With ``workers: 1`` everything runs in this one process (a fresh
interpreter per stage would spend 5-10 s on imports each time); with more, steps whose inputs are done run
side by side in worker processes (``study.scheduler``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import eval as evaluation
import rl
from octo.checkpoints import FINAL
from octo.errors import MissingInputError
from octo.jsonl import read_jsonl
from octo.manifest import is_complete, write_manifest
from octo.procs import run_lock
from octo.tiny import train_bpe_tokenizer
from study import estimate as est
from study.config import MidtrainEntry, StudyConfig
from study.progress import Progress
from study.scheduler import Outcome, Step, run_steps
from study.stages import corpus_recipe, midtrain_config, model_path, probe_config, rl_config, tokenizer_path
from study.tracking import open_study_run, study_row


def log(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------------------------- corpora
def build_corpus(study: StudyConfig, name: str, tokenizer: Path | None) -> Path:
    from pipelines.build import build  # datatrove: only when a corpus is built

    return build(corpus_recipe(study, name, tokenizer))


def train_tokenizer(study: StudyConfig) -> Path:
    """Train the study's BPE on a seeded sample of each corpus's documents (skipped when already trained)."""
    out = study.tokenizer_dir()
    config = study.tokenizer.model_dump(mode="json")
    if is_complete(out, config):
        return out
    started = time.time()
    rng = random.Random(0)
    texts: list[str] = []
    counts = {}
    for corpus, n in study.tokenizer.train_docs.items():
        docs = [
            row["text"]
            for f in sorted((study.corpus_dir(corpus) / "docs").glob("*.jsonl.gz"))
            for row in read_jsonl(f)
        ]
        if not docs:
            raise MissingInputError(
                f"tokenizer.train_docs: corpus '{corpus}' has no documents under {study.corpus_dir(corpus)}/docs"
            )
        sample = rng.sample(docs, min(n, len(docs)))
        texts += sample
        counts[corpus] = len(sample)
    train_bpe_tokenizer(texts, out, vocab_size=study.tokenizer.vocab_size)
    inputs = {c: study.corpus_dir(c) / "docs" for c in counts}
    write_manifest(out, stage="tokenizer", config=config, inputs=inputs, counts=counts, started=started)
    return out


def docs_step_tokenizer(study: StudyConfig) -> Path | None:
    """The tokenizer a corpus's first build uses: none while the study's own tokenizer is not trained yet.

    Once it is (a resumed study), the same tokenizer is passed again, so the corpus build finds its
    tokens complete instead of dropping them."""
    if study.tokenizer.path is not None:
        return tokenizer_path(study)
    return study.tokenizer_dir() if is_complete(study.tokenizer_dir()) else None


# ------------------------------------------------------------------------------------------ mid-training
def run_midtrain(study: StudyConfig, arm: str, entry: MidtrainEntry, start: str | None) -> Path:
    import midtrain  # torch: only when an arm is trained

    config = midtrain_config(study, arm, entry, start)
    if study.engine == "nanotron":
        from midtrain.nanotron_config import generate  # torch: only when nanotron configs are written

        final = Path(config.output_dir) / FINAL
        if not final.exists():
            files = generate(config, launch=True)
            raise SystemExit(
                f"[study] {arm}: nanotron configs and launch scripts written ({', '.join(map(str, files))}). "
                f"Run them on the cluster, convert the last checkpoint to {final} with `octo midtrain convert`, "
                "then run the study again: it continues from there."
            )
        return final
    return midtrain.run(config)


# -------------------------------------------------------------------------------------- RL and evaluation
def run_rl(study: StudyConfig, arm: str) -> Path:
    return rl.run(rl_config(study, arm))


def run_probe(study: StudyConfig, arm: str) -> Path:
    """The readiness probe of the arm's checkpoint before RL, for the arm's own RL recipe (RL's prompts, G...)."""
    from rl.probe import run_probe as probe  # torch/transformers: only when the probe runs

    return probe(probe_config(study, arm), rl_config(study, arm), model_path(study, arm))


def suite_name(path: str) -> str:
    return Path(path).stem


def run_eval(study: StudyConfig, model: str, suite_path: str, rl_arm: str | None = None) -> dict:
    """Evaluate one checkpoint; an RL checkpoint (``rl_arm``) with its own run's template and stop strings."""
    from_run = [f"prompt.from_run={study.rl_dir(rl_arm)}"] if rl_arm is not None else []
    suite = evaluation.load_suite(suite_path, [*study.eval.overrides, *from_run])
    return evaluation.run(suite, model_path(study, model), study.eval_dir(model, suite_name(suite_path)))


def run_readiness(study: StudyConfig) -> Path:
    # rows come in the study's arm order: the readiness stage reads it from the study manifest
    return evaluation.build_readiness(study.root, **study.readiness)


# -------------------------------------------------------------------------------------------- the plan
def plan(study: StudyConfig) -> list[Step]:
    """Every step in a valid order; each names the steps whose outputs it reads (``needs``)."""
    steps: list[Step] = []
    tokenizing = study.tokenizer.path is None
    for name in study.corpora:
        label = "documents" if tokenizing else "documents + tokens"
        steps.append(Step(f"corpus {name}: {label}", study.corpus_dir(name),
                          lambda n=name: build_corpus(study, n, docs_step_tokenizer(study)),
                          est.corpus(study, name), "corpus"))  # fmt: skip
    if tokenizing:
        docs = tuple(s.name for s in steps)
        steps.append(Step("tokenizer: train BPE", study.tokenizer_dir(), lambda: train_tokenizer(study),
                          stage="tokenizer", needs=docs))  # fmt: skip
        for name in study.corpora:
            steps.append(Step(f"corpus {name}: tokens", study.corpus_dir(name),
                              lambda n=name: build_corpus(study, n, study.tokenizer_dir()), stage="corpus",
                              needs=("tokenizer: train BPE",)))  # fmt: skip
    data = tuple(s.name for s in steps)  # a model step may read any corpus or the tokenizer

    def model_steps(model: str, rl: bool, trained: tuple[str, ...]) -> None:
        for suite in study.eval.before_rl:
            steps.append(Step(f"eval {model} / {suite_name(suite)}", study.eval_dir(model, suite_name(suite)),
                              lambda m=model, s=suite: run_eval(study, m, s), est.evaluation(study, model, suite),
                              "eval", data + trained))  # fmt: skip
        if not rl or study.rl is None:
            return
        if study.probe is not None:
            steps.append(Step(f"probe {model}", study.probe_dir(model), lambda m=model: run_probe(study, m),
                              est.probe(study, model), "probe", data + trained))  # fmt: skip
        steps.append(Step(f"rl {model}", study.rl_dir(model), lambda m=model: run_rl(study, m),
                          est.rl(study, model), "rl", data + trained))  # fmt: skip
        for suite in study.eval.after_rl:
            steps.append(Step(f"eval {model}-rl / {suite_name(suite)}", study.eval_dir(f"{model}-rl", suite_name(suite)),
                              lambda m=model, s=suite: run_eval(study, f"{m}-rl", s, rl_arm=m),
                              est.evaluation(study, f"{model}-rl", suite), "eval", data + (f"rl {model}",)))  # fmt: skip

    trained: dict[str, tuple[str, ...]] = {"base": ()}  # the step that writes each model's checkpoint
    if study.base.pretrain is not None:
        steps.append(Step("midtrain base (pre-training)", study.midtrain_dir("base"),
                          lambda: run_midtrain(study, "base", study.base.pretrain, None),
                          est.midtrain(study, "base", study.base.pretrain), "midtrain", data))  # fmt: skip
        trained["base"] = ("midtrain base (pre-training)",)
    model_steps("base", bool(study.rl and study.rl.on_base), trained["base"])
    for arm, entry in study.arms.items():
        steps.append(Step(f"midtrain {arm}", study.midtrain_dir(arm),
                          lambda a=arm, e=entry: run_midtrain(study, a, e, model_path(study, e.start_from)),
                          est.midtrain(study, arm, entry), "midtrain", data + trained[entry.start_from]))  # fmt: skip
        trained[arm] = (f"midtrain {arm}",)
        model_steps(arm, entry.rl, trained[arm])
    if study.eval.before_rl or study.rl is not None:
        steps.append(Step("readiness table", study.root, lambda: run_readiness(study), stage="readiness",
                          needs=tuple(s.name for s in steps)))  # fmt: skip
    return steps


def run(study: StudyConfig) -> Path:
    """Run (or resume) every step of the study, with progress and a timing summary; returns the study folder."""
    study.root.mkdir(parents=True, exist_ok=True)
    with run_lock(study.root / "study"):  # one run of a study at a time; its children die with it
        return _run(study)


def _run(study: StudyConfig) -> Path:
    steps = plan(study)
    started = time.time()
    timings: list[dict] = []
    write_manifest(study.root / "study", stage="study", config=study, started=started, status="running")
    progress, tracker = Progress.of(steps, study.compute, study.workers), open_study_run(study)
    if study.workers > 1:
        log(f"{study.workers} steps at a time, {study.threads_per_worker()} torch thread(s) each")

    def started_step(i: int) -> None:
        log(f"[{i + 1}/{len(steps)}] {steps[i].name}")

    def finished_step(i: int, outcome: Outcome) -> None:
        step, n = steps[i], len(steps)
        timings.append({"step": step.name, "stage": step.stage, "seconds": round(outcome.seconds, 2),
                        "cached": outcome.cached})  # fmt: skip
        state = "cached (already complete)" if outcome.cached else "done"
        log(f"[{i + 1}/{n}] {step.name}: {state} in {outcome.seconds:.1f}s")
        progress.finished(i, outcome.seconds, outcome.cached)
        log(progress.line())
        tracker.log(study_row(step, outcome.result, progress), step=len(timings))
        write_manifest(study.root / "study", stage="study", config=study, started=started, status="running",
                       counts={"steps": n, "done": len(timings)}, extra={"timings": timings})  # fmt: skip

    run_steps(study, steps, plan, started_step, finished_step)
    tracker.finish()
    total = time.time() - started
    write_manifest(study.root / "study", stage="study", config=study, started=started,
                   counts={"steps": len(steps), "done": len(steps)}, extra={"timings": timings})  # fmt: skip
    by_stage: dict[str, float] = {}
    for t in timings:
        by_stage[t["stage"]] = by_stage.get(t["stage"], 0.0) + t["seconds"]
    log(
        f"study '{study.name}' finished in {total / 60:.1f} min: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in by_stage.items())
        + (f" (step time summed over {study.workers} workers)" if study.workers > 1 else "")
    )
    return study.root
