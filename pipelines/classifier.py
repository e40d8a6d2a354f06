"""``octo corpus train-classifier``: a fastText classifier (math vs other, or language ID) from labelled seeds.

The seeds of each class are recipe sources (files, hub datasets or the offline demo sources), read with the
same readers and templates as a corpus build. Text is normalised the way the filter will see it (MegaMath
style for the math classifier: lowercase, digits -> 0, lines joined); a seeded held-out split gives precision
and recall per class, written beside the model as ``<model>.json``.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from octo.config import StrictModel, load_config
from octo.errors import ConfigError, StageError
from octo.procs import child_preexec
from pipelines.readers import make_reader
from pipelines.recipe import Source
from pipelines.steps import megamath_normalise

__all__ = ["ClassifierConfig", "train_classifier", "load_classifier_config"]


class FastTextOptions(StrictModel):
    epoch: int = Field(5, gt=0)
    lr: float = Field(0.5, gt=0)
    word_ngrams: int = Field(2, gt=0)
    dim: int = Field(16, gt=0)
    bucket: int = Field(100_000, gt=0, description="hash buckets; fastText's 2M default makes a 250 MB model")
    min_count: int = Field(1, gt=0)
    minn: int = Field(0, ge=0, description="character n-grams (useful for language ID)")
    maxn: int = Field(0, ge=0)
    thread: int = Field(1, gt=0, description="1 keeps training deterministic")
    seed: int = 0


class ClassifierConfig(StrictModel):
    output: str = Field(description="where the fastText .bin goes (metrics beside it as <output>.json)")
    classes: dict[str, list[Source]] = Field(description="label -> the sources of its seed documents")
    positive: str | None = Field(None, description="the label a filter keeps (default: the first class)")
    max_per_class: int | None = Field(
        None, gt=0, description="subsample larger classes to this many documents"
    )
    holdout: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    normalise: Literal["megamath", "lines"] = Field(
        "megamath",
        description="megamath: as the math filter sees text; lines: newlines joined only (language ID)",
    )
    thresholds: list[float] = Field(default_factory=lambda: [0.3, 0.5, 0.7, 0.9])
    fasttext: FastTextOptions = FastTextOptions()

    @model_validator(mode="after")
    def _check(self):
        if len(self.classes) < 2:
            raise ConfigError("classes needs at least two labels")
        if self.positive is not None and self.positive not in self.classes:
            raise ConfigError(f"positive '{self.positive}' is not one of the classes {list(self.classes)}")
        return self

    @property
    def positive_label(self) -> str:
        return self.positive or next(iter(self.classes))


def load_classifier_config(path, overrides=()) -> ClassifierConfig:
    return load_config(path, ClassifierConfig, overrides)


def _normalise(text: str, mode: str) -> str:
    return megamath_normalise(text) if mode == "megamath" else " ".join(text.split())


def _texts(sources) -> list[str]:

    texts = []
    for source in sources:
        reader = make_reader(source, rejects_folder=None)
        texts += [doc.text for doc in reader.run(None, 0, 1)]
    return texts


def _metrics(model, rows: list[tuple[str, str]], labels: list[str], positive: str, thresholds) -> dict:
    predictions = [model.predict(text, k=-1) for _, text in rows]
    per_class = {}
    for label in labels:
        tp = sum(
            1
            for (gold, _), (pl, _) in zip(rows, predictions)
            if gold == label and pl[0] == f"__label__{label}"
        )
        predicted = sum(1 for pl, _ in predictions if pl[0] == f"__label__{label}")
        actual = sum(1 for gold, _ in rows if gold == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": actual}  # fmt: skip
    # precision/recall of "keep if P(positive) >= t", the rule the corpus filter applies
    scores = [dict(zip(pl, ps)).get(f"__label__{positive}", 0.0) for pl, ps in predictions]
    at_threshold = {}
    for t in thresholds:
        kept = [gold for (gold, _), s in zip(rows, scores) if s >= t]
        tp = sum(1 for gold in kept if gold == positive)
        actual = sum(1 for gold, _ in rows if gold == positive)
        at_threshold[str(t)] = {
            "precision": round(tp / len(kept), 4) if kept else 0.0,
            "recall": round(tp / actual, 4) if actual else 0.0,
            "kept": len(kept),
        }
    accuracy = sum(1 for (gold, _), (pl, _) in zip(rows, predictions) if pl[0] == f"__label__{gold}") / max(
        1, len(rows)
    )
    return {
        "accuracy": round(accuracy, 4),
        "per_class": per_class,
        f"keep_if_p_{positive}_at_least": at_threshold,
    }


# fastText 0.9.2 training run in a fresh interpreter. In a long-lived process it fails at random with
# "Encountered NaN" (reproduced here with identical data and options, ~50% of runs once the process had loaded
# a few hundred MB of text; it reads memory it never initialised). A fresh process, with large allocations on
# fresh pages (glibc M_MMAP_THRESHOLD), trains reproducibly: same data and seed, same model.
_TRAIN_CODE = """
import ctypes, ctypes.util, json, sys
try:
    ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-3, 128 * 1024)
except Exception:
    pass
import fasttext
args = json.loads(sys.argv[1])
out = args.pop("_output")
fasttext.train_supervised(**args).save_model(out)
"""


def _train_fasttext(train_file: Path, output: Path, o: FastTextOptions) -> None:
    import subprocess
    import sys

    args = {
        "input": str(train_file), "epoch": o.epoch, "lr": o.lr, "wordNgrams": o.word_ngrams, "dim": o.dim,
        "bucket": o.bucket, "minCount": o.min_count, "minn": o.minn, "maxn": o.maxn, "thread": o.thread,
        "seed": o.seed, "verbose": 0, "_output": str(output),
    }  # fmt: skip
    result = subprocess.run(  # the training process dies with this one, even by SIGKILL
        [sys.executable, "-c", _TRAIN_CODE, json.dumps(args)],
        capture_output=True,
        text=True,
        preexec_fn=child_preexec(),
    )
    if result.returncode != 0:
        raise StageError(f"fastText training failed: {result.stderr.strip().splitlines()[-1:]}")


def train_classifier(config: ClassifierConfig, output: str | Path | None = None) -> dict:
    """Train, evaluate on the held-out split, save ``output`` (default ``config.output``) and its metrics JSON."""
    import fasttext

    start = time.time()
    output = Path(output or config.output)
    rng = random.Random(config.seed)
    train, test, counts = [], [], {}
    for label, sources in config.classes.items():
        texts = [_normalise(t, config.normalise) for t in _texts(sources)]
        texts = [t for t in texts if t]
        rng.shuffle(texts)
        if config.max_per_class:
            texts = texts[: config.max_per_class]
        if len(texts) < 2:
            raise ConfigError(f"class '{label}' has {len(texts)} seed documents; need at least 2")
        cut = max(1, int(round(len(texts) * config.holdout)))
        test += [(label, t) for t in texts[:cut]]
        train += [(label, t) for t in texts[cut:]]
        counts[label] = {"train": len(texts) - cut, "test": cut}
    rng.shuffle(train)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"__label__{label} {text}\n" for label, text in train))
        partial = Path(tmp) / "model.bin"
        _train_fasttext(train_file, partial, config.fasttext)
        model = fasttext.load_model(str(partial))
        partial.replace(output)  # atomic: a filter never loads a half-written model
    metrics = {
        "model": str(output),
        "labels": list(config.classes),
        "positive": config.positive_label,
        "normalise": config.normalise,
        "documents": counts,
        "held_out": _metrics(model, test, list(config.classes), config.positive_label, config.thresholds),
        "train_seconds": round(time.time() - start, 2),
        "config": config.model_dump(mode="json"),
    }
    Path(f"{output}.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def format_metrics(metrics: dict) -> str:
    lines = [f"classifier {metrics['model']} ({metrics['train_seconds']} s)"]
    for label, c in metrics["documents"].items():
        lines.append(f"  {label}: {c['train']} train / {c['test']} held out")
    held = metrics["held_out"]
    lines.append(f"  held-out accuracy {held['accuracy']:.3f}")
    for label, m in held["per_class"].items():
        lines.append(
            f"  {label:>10}: precision {m['precision']:.3f}  recall {m['recall']:.3f}  f1 {m['f1']:.3f}"
        )
    for t, m in held[f"keep_if_p_{metrics['positive']}_at_least"].items():
        lines.append(
            f"  keep if P({metrics['positive']}) >= {t}: precision {m['precision']:.3f} recall {m['recall']:.3f}"
        )
    return "\n".join(lines)
