"""Corpus building blocks: arithmetic working, templates, normalisation, recipes and their dry runs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from corpus_helpers import EASY, HARD, write_recipe

from octo.config import ConfigError
from pipelines import sources
from pipelines.build import dry_run
from pipelines.recipe import CorpusRecipe, load_recipe
from pipelines.sources import (
    FormatError,
    Formatter,
    arithmetic_records,
    left_to_right_steps,
    parse_expression,
)
from pipelines.steps import megamath_normalise

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "configs" / "corpus").glob("*.yaml"))


@pytest.mark.parametrize(
    "expression, steps, value",
    [
        ("7 - 2", ["7 - 2 = 5"], 5),
        ("3 + 14 - 5", ["3 + 14 = 17", "17 - 5 = 12"], 12),
        ("5 - 9 - 4", ["5 - 9 = -4", "-4 - 4 = -8"], -8),
        ("3 - -7", ["3 - -7 = 10"], 10),
        ("-8 + -5 + 20", ["-8 + -5 = -13", "-13 + 20 = 7"], 7),
    ],
)
def test_left_to_right_working(expression, steps, value):
    assert left_to_right_steps(expression) == (steps, value)


@pytest.mark.parametrize("bad", ["3 * 4", "( 1 + 2 )", "1 +", "", "+ 3", "2 + x", "__import__('os')"])
def test_parser_rejects_what_it_cannot_work_out(bad):
    with pytest.raises(ValueError, match="cannot parse"):
        parse_expression(bad)


def test_working_never_uses_eval():
    assert "eval(" not in inspect.getsource(sources)


def test_arithmetic_records_mix_and_formats():
    records = arithmetic_records(400, 101, [(1, EASY), (1, HARD)])
    assert len(records) == 400 and len({r["id"] for r in records}) == 400
    assert sum(r["difficulty"] == 0 for r in records) == 200  # 50/50 easy/hard
    easy = [r for r in records if r["difficulty"] == 0]
    assert all(len(r["expression"].split()) == 3 for r in easy)  # two 1-digit terms
    for r in records:
        assert r["solution"] == f"{r['steps']}. The answer is \\boxed{{{r['answer']}}}."
        assert "\\boxed" not in r["prose"] and r["prose"].count(r["answer"]) >= 1
        assert r["question"] == f"Calculate {r['expression']}."
    assert len({r["prose"].split(" ")[0] for r in records}) >= 4  # several prose templates
    assert arithmetic_records(50, 101, [(1, EASY)]) == arithmetic_records(50, 101, [(1, EASY)])
    assert arithmetic_records(50, 101, [(1, HARD)]) != arithmetic_records(50, 102, [(1, HARD)])


def test_templates_render_and_name_missing_fields():
    qa = Formatter("Question: {question}\nAnswer: {answer}", fields={"answer": "solution"})
    assert qa.render({"question": " What is 2+2? ", "solution": "4"}) == "Question: What is 2+2?\nAnswer: 4"
    assert qa.render({"question": "q", "solution": 4}) == "Question: q\nAnswer: 4"  # numbers are text too
    with pytest.raises(FormatError, match="missing_solution"):
        qa.render({"question": "q"})
    with pytest.raises(FormatError, match="empty_question"):
        qa.render({"question": "  ", "solution": "4"})
    with pytest.raises(FormatError, match="not_text_solution"):
        qa.render({"question": "q", "solution": ["a list"]})
    instruction = Formatter(
        "Instruction: {instruction}\nQuestion: {question}", constants={"instruction": "Solve."}
    )
    assert instruction.render({"question": "q"}) == "Instruction: Solve.\nQuestion: q"
    text = Formatter("{text}")
    assert text.render({"text": "  kept as is \n"}) == "  kept as is \n"


def test_megamath_normalisation():
    assert megamath_normalise("The SUM\n of 12 and 3.5 is 15.5!") == "the sum of 0 and 0 . 0 is 0 . 0 !"
    assert megamath_normalise("x_1 = 42") == megamath_normalise("x_9 = 7")


def test_demo_wiki_splits_are_disjoint_and_complete():
    pretrain = load_recipe(ROOT / "configs/corpus/demo_pretrain.yaml").sources[0]
    generic = load_recipe(ROOT / "configs/corpus/demo_generic.yaml").sources[0]
    a = {r["id"] for r in sources.wiki_records(exclude_topic="Mathematics", hash_range=pretrain.hash_range)}
    b = {r["id"] for r in sources.wiki_records(exclude_topic="Mathematics", hash_range=generic.hash_range)}
    every = {r["id"] for r in sources.wiki_records(exclude_topic="Mathematics")}
    assert not a & b and a | b == every
    assert 0.57 < len(a) / len(every) < 0.63


def test_demo_problem_seeds_avoid_rl_and_evaluation_seeds():
    for name in ("demo_mathweb", "demo_qa", "demo_instruct"):
        source = next(
            s for s in load_recipe(ROOT / f"configs/corpus/{name}.yaml").sources if s.type == "arithmetic"
        )
        seeds = {source.seed + i for i in range(len(source.mix))}
        assert not seeds & ({999, 4242} | set(range(555, 655))), name
        assert [part.options for part in source.mix] == [EASY, HARD], name


def _minimal(**extra) -> dict:
    return {
        "name": "t",
        "output_dir": "/tmp/never-written",
        "sources": [{"name": "w", "type": "wiki"}],
        **extra,
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sources": [{"name": "a", "type": "arithmetic", "size": 5, "seed": 999, "mix": [{"weight": 1, "options": EASY}]}]}, "999"),
        ({"sources": [{"name": "a", "type": "arithmetic", "size": 5, "seed": 554, "mix": [{"weight": 1, "options": EASY}, {"weight": 1, "options": EASY}]}]}, "555"),
        ({"sources": [{"name": "a", "type": "reasoning_gym", "generator": "gcd", "size": 5, "seed": 4242}]}, "4242"),
        ({"sources": [{"name": "a", "type": "arithmetic", "size": 5, "seed": 1, "mix": [{"weight": 1, "options": {"operators": ["+"]}}]}]}, "allow_parentheses"),
        ({"sources": [{"name": "a", "type": "arithmetic", "size": 5, "seed": 1, "mix": [{"weight": 1, "options": {**EASY, "operators": ["*"]}}]}]}, "operators"),
        ({"sources": [{"name": "w", "type": "wiki"}, {"name": "w", "type": "gsm8k_offline"}]}, "unique"),
        ({"sources": [{"name": "Bad Name", "type": "wiki"}]}, "lowercase"),
        ({"filters": {"math": {"model": "m.bin", "apply_to": ["nope"]}}}, "unknown sources"),
        ({"decont": {"benchmarks": ["gsm9k"]}}, "unknown benchmarks"),
        ({"sources": [{"name": "w", "type": "webpages"}]}, "sources.0"),
    ],
)  # fmt: skip
def test_recipe_errors_name_the_field(tmp_path, change, message):
    path = write_recipe(tmp_path / "r.yaml", _minimal(**change))
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)


def test_unknown_key_names_file_and_line(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", _minimal(minhash={"num_bukets": 3}))
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert str(path) in str(err.value) and "minhash.num_bukets" in str(err.value) and "line" in str(err.value)


def test_dry_run_catches_missing_inputs(tmp_path):
    missing = _minimal(sources=[{"name": "f", "type": "jsonl", "path": str(tmp_path / "absent")}])
    with pytest.raises(ConfigError, match="sources.0.path"):
        dry_run(CorpusRecipe.model_validate(missing))
    (tmp_path / "empty").mkdir()
    empty = _minimal(sources=[{"name": "f", "type": "jsonl", "path": str(tmp_path / "empty")}])
    with pytest.raises(ConfigError, match="no files matching"):
        dry_run(CorpusRecipe.model_validate(empty))
    no_model = _minimal(filters={"math": {"model": str(tmp_path / "absent.bin")}})
    with pytest.raises(ConfigError, match="train_config"):
        dry_run(CorpusRecipe.model_validate(no_model))
    bad_option = _minimal(filters={"quality": [{"name": "gopher_quality", "options": {"min_doc_wordz": 3}}]})
    with pytest.raises(ConfigError, match="filters.quality.0.options"):
        dry_run(CorpusRecipe.model_validate(bad_option))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_passes_a_dry_run(recipe, tmp_path):
    loaded = load_recipe(recipe, [f"output_dir={tmp_path / recipe.stem}"])
    for executor in ("local", "slurm", "ray"):
        stages = dry_run(loaded, executor)
        assert stages and stages[-1].name in ("filter", "dedup", "refine_guard", "tokenize", "merge")
    assert not (tmp_path / recipe.stem).exists()  # a dry run writes nothing


def test_cli_dry_run_and_bad_override(tmp_path, capsys):
    from pipelines.__main__ import main

    assert (
        main(["build", str(ROOT / "configs/corpus/demo_qa.yaml"), "--dry-run", f"output_dir={tmp_path}/qa"])
        == 0
    )
    assert "filter" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="decont.n_grams"):
        main(["build", str(ROOT / "configs/corpus/demo_qa.yaml"), "--dry-run", "decont.n_grams=two"])
