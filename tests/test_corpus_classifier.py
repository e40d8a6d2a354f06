"""`octo corpus train-classifier`: a fastText math classifier from labelled seeds, and the filter that uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_helpers import write_recipe
from datatrove.data import Document

from octo.assets import wiki_summaries
from pipelines.classifier import load_classifier_config, train_classifier
from pipelines.steps import MathClassifierFilter

SEEDS = {
    "math": [{"name": "wiki_math", "type": "wiki", "topic": "Mathematics"}],
    "other": [
        {"name": "wiki_other", "type": "wiki", "exclude_topic": "Mathematics", "hash_range": [0.0, 0.1]}
    ],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cls")
    config = write_recipe(tmp / "cls.yaml", {
        "output": str(tmp / "math.bin"), "classes": SEEDS, "max_per_class": 500, "holdout": 0.25, "seed": 3,
        "fasttext": {"epoch": 10, "lr": 0.5, "dim": 16, "bucket": 20000},
    })  # fmt: skip
    metrics = train_classifier(load_classifier_config(config))
    return {"tmp": tmp, "config": config, "metrics": metrics, "model": tmp / "math.bin"}


def test_reports_precision_and_recall_on_a_held_out_split(trained):
    metrics = trained["metrics"]
    assert metrics["documents"]["math"] == {"train": 192, "test": 64}  # 256 leads, 25% held out
    held = metrics["held_out"]
    for label in ("math", "other"):
        m = held["per_class"][label]
        assert 0.7 <= m["precision"] <= 1 and 0.5 <= m["recall"] <= 1, (label, m)
    at = held["keep_if_p_math_at_least"]
    assert at["0.3"]["recall"] >= at["0.9"]["recall"]  # a stricter threshold keeps fewer
    saved = json.loads(Path(f"{trained['model']}.json").read_text())
    assert saved["held_out"] == held and saved["normalise"] == "megamath"


def test_training_is_deterministic(trained, tmp_path):
    train_classifier(load_classifier_config(trained["config"]), output=tmp_path / "again.bin")
    assert (tmp_path / "again.bin").read_bytes() == trained["model"].read_bytes()


def test_filter_keeps_math_records_the_score_and_normalises_digits(trained):
    step = MathClassifierFilter(str(trained["model"]), threshold=0.5)
    math = next(r["extract"] for r in wiki_summaries(topic="Mathematics") if r["title"] == "Abelian group")
    history = next(
        r["extract"] for r in wiki_summaries(exclude_topic="Mathematics") if len(r["extract"]) > 600
    )
    kept = Document(text=math, id="m", metadata={"source": "web"})
    assert step.filter(kept) is True and kept.metadata["math_score"] >= 0.5
    dropped = Document(text=history, id="h", metadata={"source": "web"})
    assert step.filter(dropped) == (False, "math_score_below_0.5") and dropped.metadata["math_score"] < 0.5
    # MegaMath normalisation: documents that differ only in their digits get the same score
    a = Document(text="Solve 12 x + 7 = 31 for x.\nSubtract 7.", id="a", metadata={})
    b = Document(text="Solve 3 x + 1 = 10 for x. Subtract 1.", id="b", metadata={})
    step.filter(a), step.filter(b)
    assert a.metadata["math_score"] == b.metadata["math_score"]
    # scoped: documents of other sources pass unjudged
    step.apply_to = ("web",)
    other = Document(text=history, id="o", metadata={"source": "qa"})
    assert step.filter(other) is True and "math_score" not in other.metadata


def test_cli_trains_to_the_given_path(trained, tmp_path, capsys):
    from pipelines.__main__ import main

    assert (
        main(
            [
                "train-classifier",
                str(trained["config"]),
                "--out",
                str(tmp_path / "cli.bin"),
                "max_per_class=200",
            ]
        )
        == 0
    )
    assert (tmp_path / "cli.bin").is_file() and "precision" in capsys.readouterr().out
