"""RL prompt sources, decontamination, templates, the stop-string cut and the rollout summary."""

from __future__ import annotations

import pytest

from octo.assets import MissingAssetError
from octo.decont import normalise_question
from octo.jsonl import write_jsonl
from rl.config import DecontaminationConfig, ItemSource
from rl.dynamics import METRIC_FIELDS, metrics_row, summarise_rollout
from rl.prompts import ContaminationError, decontaminate, load_items
from rl.stopping import cut_at_stop
from rl.templates import render

EASY = dict(
    min_terms=2, max_terms=2, min_digits=1, max_digits=1, operators=["+", "-"],
    allow_parentheses=False, allow_negation=False,
)  # fmt: skip


def test_jsonl_source_with_problem_solution_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(
        path,
        [{"problem": "What is $1+1$?", "solution": r"It is $\boxed{2}$."}, {"question": "2+2?", "answer": 4}],
    )
    items = load_items(ItemSource(source="jsonl", path=str(path)))
    assert items == [
        {"id": "p-0", "question": "What is $1+1$?", "answer": "2"},
        {"id": "p-1", "question": "2+2?", "answer": "4"},
    ]


def test_parquet_source_and_field_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"q": ["1+2?", "3+4?"], "gold": ["3", "7"], "id": ["a", "b"]}), path)
    src = ItemSource(source="parquet", path=str(path), question_field="q", answer_field="gold", limit=1)
    assert load_items(src) == [{"id": "a", "question": "1+2?", "answer": "3"}]


def test_bad_rows_name_the_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [{"question": "ok?", "answer": "1"}, {"question": "no answer here"}])
    with pytest.raises(ValueError, match=r"bad.jsonl: row 2 has no answer"):
        load_items(ItemSource(source="jsonl", path=str(path)))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_items(ItemSource(source="jsonl", path=str(tmp_path / "missing.jsonl")))


def test_reasoning_gym_source_is_seeded():
    src = ItemSource(source="reasoning_gym", dataset="basic_arithmetic", size=20, seed=555, options=EASY)
    a, b, shifted = load_items(src), load_items(src), load_items(src, seed_offset=1)
    assert a == b and a != shifted
    assert a[0]["question"].startswith("Calculate ") and a[0]["id"] == "basic_arithmetic-555-0"
    assert shifted[0]["id"] == "basic_arithmetic-556-0"


def test_hub_source_offline_is_a_clear_error():
    src = ItemSource(source="hub", dataset="DigitalLearningGmbH/MATH-lighteval", levels=[3, 4, 5])
    with pytest.raises(MissingAssetError, match="MATH-lighteval.*could not be loaded.*source=jsonl"):
        load_items(src)


def test_normalised_questions_keep_math_symbols():
    assert (
        normalise_question("  Calculate 2+3. ") == normalise_question("calculate 2 + 3") == "calculate 2 + 3"
    )
    assert normalise_question("Calculate 2 + 3.") != normalise_question("Calculate 2 - 3.")


def test_decontamination_against_eval_files(tmp_path):
    long_q = "A train leaves the station at noon and travels at sixty miles per hour toward a city two hundred miles away"
    eval_file = tmp_path / "eval.jsonl"
    write_jsonl(
        eval_file, [{"id": "e1", "question": "Calculate 2 + 3."}, {"id": "e2", "problem": long_q + "."}]
    )
    items = [
        {"id": "r1", "question": "CALCULATE 2+3"},  # same question, other spelling
        {"id": "r2", "question": "Calculate 2 - 3."},  # a different problem
        {"id": "r3", "question": "Given that " + long_q[:90] + ", how long does it take?"},  # 13-gram overlap
        {"id": "r4", "question": "What is 7 times 8?"},
    ]
    kept, report = decontaminate(items, DecontaminationConfig(eval_files=[str(eval_file)]))
    assert [x["id"] for x in kept] == ["r2", "r4"]
    assert report["contaminated"] == 2 and report["checked_against"] == {f"file/{eval_file}": 2}
    assert {(e["id"], e["how"]) for e in report["examples"]} == {("r1", "exact"), ("r3", "13-gram")}

    kept, report = decontaminate(items, DecontaminationConfig(eval_files=[str(eval_file)], action="report"))
    assert len(kept) == 4 and report["contaminated"] == 2
    with pytest.raises(ContaminationError, match="2 of 4 RL prompts appear.*r1 matches"):
        decontaminate(items, DecontaminationConfig(eval_files=[str(eval_file)], action="fail"))


def test_decontamination_against_benchmarks_and_validation(benchmarks_root):
    from octo.assets import benchmark_items

    gsm = benchmark_items("gsm8k")[5]
    items = [{"id": "leak", "question": gsm["question"]}, {"id": "val", "question": "Calculate 1 + 1."},
             {"id": "ok", "question": "Calculate 4 + 4."}]  # fmt: skip
    cfg = DecontaminationConfig(benchmarks=["gsm8k"])
    kept, report = decontaminate(
        items, cfg, validation={"arith": [{"id": "v", "question": "Calculate 1 + 1."}]}
    )
    assert [x["id"] for x in kept] == ["ok"]
    assert report["checked_against"]["benchmark/gsm8k"] == len(benchmark_items("gsm8k"))
    kept, _ = decontaminate(items, cfg.model_copy(update={"include_validation": False}), {"arith": []})
    assert [x["id"] for x in kept] == ["val", "ok"]


def test_templates(tiny_tokenizer):
    from transformers import AutoTokenizer

    assert render("qa", "Calculate 2 + 3.") == "Question: Calculate 2 + 3.\nAnswer:"
    orz = render("orz", "Calculate 2 + 3.")
    assert "User: Calculate 2 + 3." in orz and "\\boxed{}" in orz and orz.endswith("Assistant:")
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    with pytest.raises(ValueError, match="chat template"):
        render("chat", "hi", tok)
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>"
    assert render("chat", "Calculate 2 + 3.", tok, system_prompt="Be brief.") == (
        "<system>Be brief.\n<user>Calculate 2 + 3.\n<assistant>"
    )


def test_cut_at_stop(tiny_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    stops = ["Question:", "User:"]
    ids = tok(" 2 + 3 = 5. The answer is \\boxed{5}.\n\nQuestion: What is 1 + 1?", add_special_tokens=False)[
        "input_ids"
    ]
    cut, stopped = cut_at_stop(ids, tok, stops)
    assert stopped and tok.decode(cut) == " 2 + 3 = 5. The answer is \\boxed{5}.\n\n"
    clean = tok(" 7. The answer is \\boxed{7}.", add_special_tokens=False)["input_ids"]
    assert cut_at_stop(clean, tok, stops) == (clean, False)
    starts = tok("Question: again", add_special_tokens=False)["input_ids"]
    cut, stopped = cut_at_stop(starts, tok, stops)
    assert stopped and len(cut) == 1  # never empty: the first sampled token stays
    assert cut_at_stop(ids, tok, []) == (ids, False)


def test_rollout_summary():
    def row(reward, correct, length, finish="eos", n_boxed=1, first=False, rep=False, lenient=None):
        return {"reward": reward, "correct": correct, "correct_strict": correct,
                "correct_lenient": correct if lenient is None else lenient, "length": length, "finish": finish,
                "n_boxed": n_boxed, "boxed_first": first, "repetitive": rep, "no_answer": n_boxed == 0}  # fmt: skip

    samples = [
        row(1, True, 10),
        row(-1, False, 30, finish="length", n_boxed=0, rep=True, lenient=True),  # group 1
        row(-1, False, 20, n_boxed=2),
        row(-1, False, 40, finish="stop", first=True),  # group 2: no signal
    ]
    s = summarise_rollout(samples, num_generations=2)
    assert s["reward_mean"] == -0.5 and s["reward_std"] == pytest.approx(0.8660254)
    assert s["accuracy"] == 0.25 and s["accuracy_lenient"] == 0.5 and s["frac_zero_std_groups"] == 0.5
    assert s["response_len_mean"] == 25 and s["correct_len_mean"] == 10
    assert s["clip_ratio"] == 0.25 and s["stop_ratio"] == 0.25 and s["repetition_ratio"] == 0.25
    assert s["multi_boxed_ratio"] == 0.25 and s["boxed_first_ratio"] == 0.25 and s["no_answer_ratio"] == 0.25
    row0 = metrics_row(0, extra={"val/x/acc": 0.5})
    assert list(row0)[: len(METRIC_FIELDS)] == list(METRIC_FIELDS) and row0["reward_mean"] is None
    assert summarise_rollout([row(-1, False, 5)], 1)["correct_len_mean"] is None
