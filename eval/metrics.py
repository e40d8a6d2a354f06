"""Metrics as lighteval sample-level metrics: one per-completion scorer, then accuracy or pass@k over samples.

Scorers (one per answer format; the suite's ``metric`` field picks one):

| metric          | scorer                                                                    | used for |
| --------------- | ------------------------------------------------------------------------- | -------- |
| `boxed`         | ``octo.scoring.score(require_boxed=True)``: last ``\\boxed{}``, the RL reward | zero-shot RL template, pass@k, generated problems |
| `boxed_lenient` | ``octo.scoring.score(require_boxed=False)``: last number when nothing is boxed | lenient variant (the pilot's reward) |
| `number`        | lighteval extractive match, number gold (= ``Metrics.expr_gold_metric``)   | GSM8K few-shot ("The answer is N", "#### N") |
| `latex`         | lighteval extractive match, LaTeX gold ("final answer is $X$", ``\\boxed{}``) | MATH500, Minerva, OlympiadBench, AMC23, AIME24 few-shot |
| `letter`        | lighteval extractive match over choice letters                             | MMLU-STEM |

With one sample per item the task reports ``acc``; with n samples it reports ``pass@k`` for each k (the
unbiased estimator of Chen et al. 2021) and ``mean@n`` (the mean per-sample accuracy: the sampled accuracy RL
optimises). Every completion is scored once, whatever the number of k values.
"""

from __future__ import annotations

import numpy as np

from octo.passk import pass_at_k  # noqa: F401  (the one estimator; re-exported)
from octo.scoring import score as octo_score


class OctoScorer:
    """The project's answer checker (last ``\\boxed{}``, math-verify): eval accuracy = RL reward."""

    def __init__(self, require_boxed: bool):
        self.require_boxed = require_boxed

    def __call__(self, doc, text: str) -> dict:
        verdict = octo_score(text, doc.get_golds()[0], require_boxed=self.require_boxed)
        return {
            "correct": verdict.correct,
            "answer": verdict.answer,
            "n_boxed": verdict.n_boxed,
            "boxed_first": verdict.boxed_first,
            "repetitive": verdict.repetitive,
        }


class ExtractiveScorer:
    """lighteval's MultilingualExtractiveMatchMetric for one answer format (number, latex or letter)."""

    def __init__(self, kind: str):
        from lighteval.metrics.dynamic_metrics import MultilingualExtractiveMatchMetric
        from lighteval.metrics.utils.extractive_match_utils import (
            ExprExtractionConfig,
            IndicesExtractionConfig,
            LatexExtractionConfig,
        )
        from lighteval.utils.language import Language

        self.kind = kind
        if kind == "number":  # lighteval's expr_gold_metric
            gold = (ExprExtractionConfig(),)
            pred = (ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0))
            precision = 5
        elif kind == "latex":
            gold = (LatexExtractionConfig(),)
            pred = (ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0))
            precision = 6
        elif kind == "letter":
            letters = IndicesExtractionConfig(
                prefix_for_extraction="NativeLetters", try_extract_without_anchor=True
            )
            gold, pred, precision = (letters,), (letters,), 6
        else:
            raise ValueError(f"unknown extractive metric {kind!r}")
        self.metric = MultilingualExtractiveMatchMetric(
            language=Language.ENGLISH,
            gold_extraction_target=gold,
            pred_extraction_target=pred,
            fallback_mode="first_match",
            precision=precision,
            aggregation_function=max,
        )

    def __call__(self, doc, text: str) -> dict:
        from lighteval.models.model_output import ModelResponse

        correct = self.metric.compute(doc=doc, model_response=ModelResponse(text=[text]))
        found = (doc.specific or {}).get("extracted_predictions") or []
        return {"correct": bool(correct), "answer": found[-1] if found else None}


def make_scorer(metric: str):
    if metric == "boxed":
        return OctoScorer(require_boxed=True)
    if metric == "boxed_lenient":
        return OctoScorer(require_boxed=False)
    return ExtractiveScorer(metric)


def metric_names(n: int, ks: list[int]) -> list[str]:
    return ["acc"] if n == 1 else [f"pass@{k}" for k in ks] + [f"mean@{n}"]


def build_metric(metric: str, n: int, ks: list[int]):
    """A lighteval SampleLevelMetricGrouping: scores each of the n completions once, returns acc or pass@k."""
    from lighteval.metrics.metrics_sample import SampleLevelComputation, SamplingMetric
    from lighteval.metrics.utils.metric_utils import SampleLevelMetricGrouping
    from lighteval.tasks.requests import SamplingMethod

    scorer = make_scorer(metric)
    names = metric_names(n, ks)

    class SampledAccuracy(SamplingMetric, SampleLevelComputation):
        """Per-item accuracy over n samples (n=1: acc; n>1: pass@k for each k and mean@n)."""

        def __init__(self):
            super().__init__()  # SamplingMetric: no normalisation; lighteval reads num_samples() from it

        def num_samples(self) -> int:
            return n

        def compute(self, doc, model_response, **kwargs) -> dict:
            texts = list(model_response.final_text[:n])
            if len(texts) < n:
                raise RuntimeError(f"expected {n} samples per item, the model returned {len(texts)}")
            verdicts = [scorer(doc, text) for text in texts]
            doc.specific = {**(doc.specific or {}), "octo_verdicts": verdicts}
            correct = sum(v["correct"] for v in verdicts)
            if n == 1:
                return {"acc": float(correct)}
            out = {f"pass@{k}": pass_at_k(n, correct, k) for k in ks}
            out[f"mean@{n}"] = correct / n
            return out

    return SampleLevelMetricGrouping(
        metric_name=names,
        higher_is_better=dict.fromkeys(names, True),
        category=SamplingMethod.GENERATIVE,
        sample_level_fn=SampledAccuracy(),
        corpus_level_fn=dict.fromkeys(names, np.mean),  # np.mean: lighteval's stderr is then the plain SEM
    )
