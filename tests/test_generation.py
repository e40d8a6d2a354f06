"""octo.generation against plain ``model.generate``: same greedy completions with the shared few-shot prefix,
stops at stop strings, one prefill per prompt for n samples; the evaluation engines score alike; and the
in-place KV cache (octo.growing_cache) changes no token."""

from __future__ import annotations

import json

import pytest

from eval.runner import run
from octo.assets import MissingAssetError, smollm2_path
from octo.generation import Generator, Sampling, common_prefix, cut_text, rows_that_fit
from octo.tiny import TinyLlamaShape, make_tiny_llama

STOP = ["Question:"]


@pytest.fixture(scope="module")
def lively(tiny_tokenizer, tmp_path_factory):
    """A random 2-layer Llama with large weights: its greedy text varies from token to token (a small init
    repeats one token forever, which would make every comparison trivially equal)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = TinyLlamaShape(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, initializer_range=0.3
    )
    path = make_tiny_llama(shape, tiny_tokenizer, tmp_path_factory.mktemp("lively"), seed=3)
    torch.set_num_threads(1)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path), path


def fewshot_prompts(k: int = 6) -> list[str]:
    shots = "".join(f"Question: What is {i} + {i + 2}?\nAnswer: {2 * i + 2}.\n\n" for i in range(4))
    questions = [
        "What is 3 + 4?",
        "Is the sky blue on a clear day in summer?",
        "7",
        "Name a cat.",
        "Why?",
        "2-1",
    ]
    return [f"{shots}Question: {q}\nAnswer:" for q in questions[:k]]


def reference(model, tok, prompt: str, max_new_tokens: int) -> list[int]:
    import torch

    enc = tok([prompt], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_shared_prefix_greedy_equals_generate(lively):
    model, tok, _ = lively
    prompts = fewshot_prompts()
    ids = [tok(p)["input_ids"] for p in prompts]
    engine = Generator(model, tok, max_rows=4, min_prefix=8)  # 6 prompts -> two batches
    out = engine.generate(ids, 1, 24, [tok.eos_token_id])
    assert engine.last_stats["prefix_tokens"] == common_prefix(ids) > 40
    assert engine.last_stats["prefills"] == 2
    texts = set()
    for prompt, (got,) in zip(prompts, out):
        want = reference(model, tok, prompt, 24)
        assert got == want
        texts.add(tok.decode(got))
    assert len(texts) > 1 and all(
        len(set(tok.decode(g[0]))) > 3 for g in out
    )  # varied, not one token repeated


def test_rows_stop_at_their_stop_string(lively):
    """A stop string taken from the middle of one row's greedy text ends that row there; the cut text equals
    plain generate's text cut at the same string, and the row generated fewer tokens than the budget."""
    model, tok, _ = lively
    prompts = fewshot_prompts(3)
    ids = [tok(p)["input_ids"] for p in prompts]
    full = [reference(model, tok, p, 30) for p in prompts]
    text = tok.decode(full[0], skip_special_tokens=True)
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip()
    engine = Generator(model, tok, max_rows=8)
    out = engine.generate(ids, 1, 30, [tok.eos_token_id], stop=[stop])
    got = tok.decode(out[0][0], skip_special_tokens=True)
    assert stop in got and len(out[0][0]) < 30
    assert got.rstrip().endswith(stop) or got.index(stop) + len(stop) > len(got) - 8  # ends at the stop
    for (o,), ref in zip(out, full):
        assert cut_text(tok.decode(o, skip_special_tokens=True), [stop]) == cut_text(
            tok.decode(ref, skip_special_tokens=True), [stop]
        )


def test_finished_rows_are_refilled_with_waiting_prompts(lively):
    """Continuous batching: with 2 rows and 6 prompts, a row that stops at its stop string is replaced by a waiting
    prompt while the other row is still decoding; every completion still equals plain generate's, cut alike."""
    model, tok, _ = lively
    prompts = fewshot_prompts()
    ids = [tok(p)["input_ids"] for p in prompts]
    full = [reference(model, tok, p, 30) for p in prompts]
    text = tok.decode(full[0], skip_special_tokens=True)
    stop = text[len(text) // 3 : len(text) // 3 + 2]
    engine = Generator(model, tok, max_rows=2, min_prefix=8, refill=True)
    out = engine.generate(ids, 1, 30, [tok.eos_token_id], stop=[stop])
    assert engine.last_stats["prefills"] > 3 and engine.last_stats["refills"] >= 1
    for (o,), ref in zip(out, full):
        assert cut_text(tok.decode(o, skip_special_tokens=True), [stop]) == cut_text(
            tok.decode(ref, skip_special_tokens=True), [stop]
        )
        assert len(o) == 30 or stop in tok.decode(o, skip_special_tokens=True) or o[-1] == tok.eos_token_id
    static = Generator(model, tok, max_rows=2, min_prefix=8, refill=False)
    assert static.generate(ids, 1, 30, [tok.eos_token_id], stop=[stop]) == out
    assert static.last_stats["refills"] == 0


def test_n_samples_share_one_prefill_and_repeat_with_a_seed(lively):
    import torch

    model, tok, _ = lively
    ids = [tok(p)["input_ids"] for p in fewshot_prompts(3)]
    engine = Generator(model, tok, max_rows=64)
    greedy = engine.generate(ids, 1, 12, [tok.eos_token_id])
    # top_k=1 sampling is greedy: every one of the n rows copied from a prompt's cache continues it exactly
    top1 = engine.generate(ids, 4, 12, [tok.eos_token_id], sampling=Sampling(1.0, 1.0, 1))
    assert all(samples == [g[0]] * 4 for samples, g in zip(top1, greedy))
    torch.manual_seed(0)
    a = engine.generate(ids, 4, 12, [tok.eos_token_id], sampling=Sampling(1.0, 1.0, 0))
    torch.manual_seed(0)
    b = engine.generate(ids, 4, 12, [tok.eos_token_id], sampling=Sampling(1.0, 1.0, 0))
    assert a == b and len(a) == 3 and all(len(s) == 4 for s in a)
    assert len({tuple(s) for s in a[0]}) > 1  # the 4 samples of a prompt differ


def test_batch_rows_follow_memory(lively, monkeypatch):
    from octo import generation

    model, _, _ = lively
    monkeypatch.setattr(generation, "available_memory", lambda device: 1 << 30)
    short, long = rows_that_fit(model, 100, 100), rows_that_fit(model, 4000, 4000)
    assert short > long >= 1
    monkeypatch.setattr(generation, "available_memory", lambda device: 1)
    assert rows_that_fit(model, 100, 100) == 1
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2 and common_prefix([[1, 2], [3]]) == 0


def _suite_details(out):
    from octo.jsonl import read_jsonl

    return {p.stem: list(read_jsonl(p)) for p in sorted((out / "details").glob("*.jsonl"))}


def test_octo_engine_scores_like_lightevals_model(tiny_tokenizer, tmp_path):
    """The default engine and lighteval's TransformersModel on the same few-shot suite: same completions,
    same scores, and the octo engine reused the exemplar block."""
    shape = TinyLlamaShape(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, initializer_range=0.3
    )
    model = make_tiny_llama(shape, tiny_tokenizer, tmp_path / "m", seed=3)
    overrides = ["include=[arith]", "max_items=12", "generation.max_new_tokens=16", "model.batch_size=5"]
    fast = run("configs/eval/demo_fewshot.yaml", model, tmp_path / "octo", overrides=overrides)
    slow = run(
        "configs/eval/demo_fewshot.yaml",
        model,
        tmp_path / "lighteval",
        overrides=[*overrides, "model.engine=lighteval"],
    )
    a, b = _suite_details(tmp_path / "octo"), _suite_details(tmp_path / "lighteval")
    assert [r["completions"] for r in a["arith"]] == [r["completions"] for r in b["arith"]]
    assert len({json.dumps(r["completions"]) for r in a["arith"]}) > 1
    assert fast["tasks"]["arith"]["scores"] == slow["tasks"]["arith"]["scores"]
    assert fast["settings"]["model"]["engine"] == "octo" != slow["settings"]["model"]["engine"]


@pytest.mark.slow
def test_real_smollm2_fewshot_same_greedy_completions(tmp_path, benchmarks_root):
    """The real SmolLM2-135M (Instruct, dequantised from a 4-bit GGUF) on 8-shot GSM8K items: the octo engine
    and lighteval's transformers model write the same greedy completions and get the same score."""
    try:
        model = smollm2_path()
    except MissingAssetError as exc:
        pytest.skip(str(exc))
    overrides = ["include=[gsm8k]", "max_items=3", "tasks.gsm8k.max_new_tokens=48", "model.threads=2"]
    fast = run("configs/eval/smollm2_fewshot.yaml", model, tmp_path / "octo", overrides=overrides)
    slow = run(
        "configs/eval/smollm2_fewshot.yaml",
        model,
        tmp_path / "lev",
        overrides=[*overrides, "model.engine=lighteval"],
    )
    a, b = _suite_details(tmp_path / "octo")["gsm8k"], _suite_details(tmp_path / "lev")["gsm8k"]
    assert [r["completions"] for r in a] == [r["completions"] for r in b]
    assert all(r["prompt_tokens"] > 800 for r in a)
    assert fast["tasks"]["gsm8k"]["scores"] == slow["tasks"]["gsm8k"]["scores"]


def _layer_pair(batch=5, heads=2, length=7, dim=4):
    import torch
    from transformers.cache_utils import DynamicLayer

    from octo.growing_cache import adopt

    plain, grown = DynamicLayer(), DynamicLayer()
    k, v = torch.randn(batch, heads, length, dim), torch.randn(batch, heads, length, dim)
    plain.update(k, v)
    grown.update(k.clone(), v.clone())
    return plain, adopt(grown, room=3)  # a small room: outgrown and reallocated within the test


def _same(plain, grown):
    import torch

    assert torch.equal(plain.keys, grown.keys) and torch.equal(plain.values, grown.values)


def test_growing_layer_matches_dynamic_layer_step_by_step():
    import torch

    plain, grown = _layer_pair()
    buffer = grown._buffers[0]
    for step in range(8):
        if step == 3:
            index = torch.tensor([0, 2, 4])
            plain.batch_select_indices(index)
            grown.batch_select_indices(index)
        if step == 5:
            plain.keys, plain.values = plain.keys[:, :, 2:], plain.values[:, :, 2:]
            grown.drop_front(2)
        k, v = torch.randn(plain.keys.shape[0], 2, 1, 4), torch.randn(plain.keys.shape[0], 2, 1, 4)
        out_plain, out_grown = plain.update(k, v), grown.update(k, v)
        assert all(torch.equal(a, b) for a, b in zip(out_plain, out_grown))
        _same(plain, grown)
        if step == 1:  # within the room, the step wrote into the same buffer: no copy of the cache
            assert grown._buffers[0].data_ptr() == buffer.data_ptr()


def test_growing_layer_takes_a_merged_cache():
    """A merge assigns keys/values directly (continuous batching); the next update starts a fresh buffer."""
    import torch

    plain, grown = _layer_pair()
    extra_k, extra_v = torch.randn(2, 2, 7, 4), torch.randn(2, 2, 7, 4)
    for layer in (plain, grown):
        layer.keys, layer.values = torch.cat([layer.keys, extra_k]), torch.cat([layer.values, extra_v])
    k, v = torch.randn(7, 2, 1, 4), torch.randn(7, 2, 1, 4)
    plain.update(k, v)
    grown.update(k, v)
    _same(plain, grown)
    assert grown.keys is grown._key_view


@pytest.mark.parametrize("refill", [False, True])
def test_engine_tokens_are_the_same_with_the_growing_cache(lively, refill):
    """Greedy and seeded sampled completions, with stop strings (rows leave, front columns are cut) and refills
    (caches merge): token for token the same with the in-place cache as with transformers' DynamicCache."""
    import torch

    model, tok, _ = lively
    prompts = fewshot_prompts()
    ids = [tok(p)["input_ids"] for p in prompts]
    text = tok.decode(reference(model, tok, prompts[0], 30), skip_special_tokens=True)
    stop = text[len(text) // 3 : len(text) // 3 + 2]  # ends one row early: rows leave mid-batch
    runs = {}
    for grow in (False, True):
        engine = Generator(
            model, tok, max_rows=2 if refill else 4, min_prefix=8, refill=refill, grow_cache=grow
        )
        greedy = engine.generate(ids, 1, 30, [tok.eos_token_id], stop=[stop])
        assert engine.last_stats["refills"] >= int(refill)
        torch.manual_seed(1)
        sampled = engine.generate(ids, 2, 20, [tok.eos_token_id], sampling=Sampling(1.0, 0.9, 0))
        runs[grow] = (greedy, sampled, engine.last_stats["steps"])
    assert runs[True] == runs[False]
    lengths = {len(o[0]) for o in runs[True][0]}
    assert len(lengths) > 1  # rows finished at different steps, so rows left the cache mid-batch
