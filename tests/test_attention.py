"""octo.attention.grouped_sdpa: grouped-query attention with a mask on CPU gives the same logits and greedy
completions as transformers' sdpa (which expands the KV heads), and the model's setting is restored."""

from __future__ import annotations

import pytest

from octo.attention import NAME, grouped_sdpa
from octo.generation import Generator
from octo.tiny import TinyLlamaShape, make_tiny_llama


@pytest.fixture(scope="module")
def grouped(tiny_tokenizer, tmp_path_factory):
    """A random Llama with 4 query heads over 2 KV heads (grouped-query attention, as SmolLM2's 9 over 3)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = TinyLlamaShape(
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=128,
        initializer_range=0.3,
    )
    path = make_tiny_llama(shape, tiny_tokenizer, tmp_path_factory.mktemp("gqa"), seed=5)
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()
    return model, AutoTokenizer.from_pretrained(path)


def test_grouped_sdpa_equals_sdpa_with_a_padding_mask(grouped):
    import torch

    model, tok = grouped
    tok.padding_side = "left"
    enc = tok(["Question: What is 2 + 3?\nAnswer:", "7"], return_tensors="pt", padding=True)
    assert not bool(enc["attention_mask"].all())  # the short row is padded: a mask is passed
    with torch.no_grad():
        want = model(**enc).logits
        with grouped_sdpa(model):
            assert model.config._attn_implementation == NAME
            got = model(**enc).logits
    assert model.config._attn_implementation == "sdpa"
    real = enc["attention_mask"].bool()
    assert torch.allclose(got[real], want[real], atol=1e-5)


def test_engine_on_a_grouped_model_equals_generate_and_restores_on_error(grouped):
    """The engine runs grouped_sdpa inside: on the grouped-query model its greedy ids equal per-prompt generate's."""
    import torch

    model, tok = grouped
    texts = ["Question: What is 1 + 1?\nAnswer:", "Name a cat.", "2-1"]
    prompts = [tok(p)["input_ids"] for p in texts]
    got = Generator(model, tok, max_rows=2).generate(prompts, 1, 12, [tok.eos_token_id])
    assert model.config._attn_implementation == "sdpa"
    for ids, (row,) in zip(prompts, got):
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id
            )
        assert row == out[0, len(ids) :].tolist()
    with pytest.raises(RuntimeError), grouped_sdpa(model):
        raise RuntimeError("interrupted")
    assert model.config._attn_implementation == "sdpa"
