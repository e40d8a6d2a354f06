"""Suite configs, task items and prompts, and the metrics, without running a model (fast)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from eval.config import load_suite, selected_tasks
from eval.metrics import make_scorer, pass_at_k
from eval.tasks import exemplar_answer, question_text, task_items
from octo.config import ConfigError
from octo.scoring import score as octo_score

CONFIGS = sorted(Path("configs/eval").glob("*.yaml"))


def pass_at_k_exact(n: int, c: int, k: int) -> float:
    """pass@k with exact binomials: the oracle for eval.metrics.pass_at_k."""
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_every_shipped_suite_loads():
    names = {p.stem for p in CONFIGS}
    assert {"base_fewshot", "rl_zeroshot", "passk", "demo_fewshot", "demo_zeroshot", "demo_sampled"} <= names
    for path in CONFIGS:
        suite = load_suite(path)
        assert suite.name == path.stem
        assert all(t.prompt and t.metric for t in suite.tasks)  # suite defaults were filled in


def test_base_fewshot_is_octothinkers_protocol():
    suite = load_suite("configs/eval/base_fewshot.yaml")
    shots = {t.name: t.fewshot for t in suite.tasks}
    assert shots == {
        "gsm8k": 8,
        "math500": 4,
        "olympiad_bench": 4,
        "minerva_math": 4,
        "mmlu_stem": 4,
        "amc23": 0,
    }
    assert suite.generation.temperature == 0 and suite.generation.n == 1
    metrics = {t.name: t.metric for t in suite.tasks}
    assert metrics["gsm8k"] == "number" and metrics["mmlu_stem"] == "letter" and metrics["math500"] == "latex"
    passk = load_suite("configs/eval/passk.yaml")
    assert passk.generation.temperature == 1.0 and passk.generation.ks() == [1, 2, 4, 8, 16]
    assert load_suite("configs/eval/passk.yaml", ["generation.n=12"]).generation.ks() == [1, 2, 4, 8]


def test_overrides_and_errors():
    suite = load_suite(
        "configs/eval/base_fewshot.yaml",
        ["max_items=5", "tasks.gsm8k.fewshot=2", "tasks.1.max_items=7", "include=[gsm8k,math500]"],
    )
    tasks = {t.name: t for t in suite.tasks}
    assert tasks["gsm8k"].fewshot == 2 and tasks["gsm8k"].max_items == 5 and tasks["math500"].max_items == 7
    assert [t.name for t in selected_tasks(suite)] == ["gsm8k", "math500"]
    assert load_suite("configs/eval/rl_zeroshot.yaml", ["prompt=orz"]).tasks[0].prompt == "orz"
    cases = {
        "generation.n=4": "temperature > 0",  # sampling n > 1 at T=0
        "generation.temprature=1": "temprature",  # a typo names the field
        "tasks.nope.fewshot=1": r"tasks: \['gsm8k'",
        "include=[nope]": "unknown tasks",
        "prompt=custom": "template",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_suite(
                "configs/eval/base_fewshot.yaml"
                if "prompt" not in override
                else "configs/eval/rl_zeroshot.yaml",
                [override],
            )


def test_pass_at_k_is_the_unbiased_estimator():
    for n, c, k in itertools.product([1, 4, 7, 16], range(0, 17), [1, 2, 4, 8, 16]):
        if c <= n and k <= n:
            assert pass_at_k(n, c, k) == pytest.approx(pass_at_k_exact(n, c, k), abs=1e-12)
    # brute force: the chance that a random k-subset of the n samples holds a correct one
    n, c, k = 6, 2, 3
    subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # pass@1 is the mean accuracy
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


class _Doc:
    """The two Doc fields the scorers read."""

    def __init__(self, gold, choices=None):
        self.choices, self.gold_index, self.specific = (
            choices or [gold],
            (choices or [gold]).index(gold),
            None,
        )

    def get_golds(self):
        return [self.choices[self.gold_index]]


@pytest.mark.parametrize(
    "metric, gold, text, correct",
    [
        ("number", "18", "She makes 9 * 2 = 18 dollars a day. The answer is 18.", True),
        ("number", "18", "9 * 2 = 18\n#### 18", True),
        ("number", "1234", "The answer is 1,234.", True),
        ("number", "18", "18 + 3 = 21. The answer is 21.", False),
        (
            "latex",
            "\\boxed{\\frac{14}{3}}",
            "Final Answer: The final answer is $\\frac{14}{3}$. I hope it is correct.",
            True,
        ),
        (
            "latex",
            "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
            "so the point is $\\boxed{(3,\\frac{\\pi}{2})}$",
            True,
        ),
        ("latex", "\\boxed{27}", "The final answer is $28$. I hope it is correct.", False),
        ("boxed", "5", "7 - 2 = 5. The answer is \\boxed{5}.", True),
        ("boxed", "5", "7 - 2 = 5. The answer is 5.", False),  # the RL reward needs a box
        ("boxed_lenient", "5", "7 - 2 = 5. The answer is 5.", True),
        ("boxed", "0.5", "\\boxed{3} wait \\boxed{\\frac{1}{2}}", True),  # the last box counts
    ],
)
def test_scorers_fit_each_answer_format(metric, gold, text, correct):
    assert make_scorer(metric)(_Doc(gold), text)["correct"] is correct


def test_letter_scorer_and_octo_scorer_agree_with_their_sources():
    letters = make_scorer("letter")
    assert letters(_Doc("B", list("ABCD")), "The answer is (B).")["correct"]
    assert not letters(_Doc("B", list("ABCD")), "The answer is (C).")["correct"]
    text = "3 + 4 = 7. The answer is \\boxed{7}. Also \\boxed{8}"
    verdict = octo_score(text, "8")
    got = make_scorer("boxed")(_Doc("8"), text)
    assert got == {
        k: getattr(verdict, k) for k in ("correct", "answer", "n_boxed", "boxed_first", "repetitive")
    }


def test_benchmark_items_exclude_their_exemplars(benchmarks_root):
    suite = load_suite("configs/eval/base_fewshot.yaml", ["max_items=30"])
    for task in suite.tasks:
        loaded = task_items(task, suite)
        assert len(loaded.exemplars) == task.fewshot and len(loaded.items) == 30
        scored = {x["id"] for x in loaded.items}
        assert not scored & {x["id"] for x in loaded.exemplars}, task.name
        if task.prompt != "mc":
            assert all(x.get("solution") for x in loaded.exemplars)
    gsm8k = task_items(suite.tasks[0], suite)
    assert gsm8k.exemplars[0]["question"].startswith("Janet")  # the first items with short solutions
    prompt = question_text("qa", None, gsm8k.items[0])
    assert prompt == f"Question: {gsm8k.items[0]['question']}\nAnswer:"
    shown = exemplar_answer("qa", gsm8k.exemplars[0])
    assert "<<" not in shown and shown.endswith(f"The answer is {gsm8k.exemplars[0]['answer']}.")
    mmlu = next(t for t in suite.tasks if t.name == "mmlu_stem")
    text = question_text("mc", None, task_items(mmlu, suite).items[0])
    assert "\nA. " in text and "\nD. " in text and text.endswith("Answer:")
    math = task_items(next(t for t in suite.tasks if t.name == "math500"), suite)
    assert exemplar_answer("minerva", math.exemplars[0]).endswith("I hope it is correct.")


def test_generated_items_and_exemplars_from_another_seed():
    suite = load_suite("configs/eval/demo_fewshot.yaml", ["include=[arith]"])
    loaded = task_items(suite.tasks[0], suite)
    assert loaded.exemplars[0]["id"].startswith("basic_arithmetic-4242-")
    assert len(loaded.items) + loaded.dropped_as_exemplar == 500
    questions = {x["question"] for x in loaded.exemplars}
    assert not questions & {
        x["question"] for x in loaded.items
    }  # a generated duplicate of an exemplar is not scored
    assert loaded.items[0]["question"] == "Calculate 7 - 2."
    first = loaded.exemplars[0]
    assert (
        exemplar_answer("qa_boxed", first)
        == f"{first['solution']}. The answer is \\boxed{{{first['answer']}}}."
    )
    assert first["solution"].endswith(f"= {first['answer']}")


def test_jsonl_source_and_its_errors(tmp_path):
    good = tmp_path / "items.jsonl"
    good.write_text(
        "".join(json.dumps({"question": f"What is {i} + 1?", "answer": i + 1}) + "\n" for i in range(6))
    )
    suite = load_suite(
        "configs/eval/demo_zeroshot.yaml",
        [
            "include=[mine]",
            "tasks.0.name=mine",
            "tasks.0.source=jsonl",
            f"tasks.0.path={good}",
            "tasks.0.max_items=4",
        ],
    )
    loaded = task_items(suite.tasks[0], suite)
    assert [x["answer"] for x in loaded.items] == ["1", "2", "3", "4"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": 1}\n{"question": "no answer"}\n')
    suite = load_suite("configs/eval/demo_zeroshot.yaml", ["tasks.0.source=jsonl", f"tasks.0.path={bad}"])
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: each row needs"):
        task_items(suite.tasks[0], suite)


def test_package_exports_the_orchestrator_api():
    import eval as package
    from eval.config import load_suite as direct

    assert package.load_suite is direct and callable(package.run) and callable(package.build_readiness)
    with pytest.raises(AttributeError):
        package.nope  # noqa: B018
