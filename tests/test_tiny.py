import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from octo.config import load_config
from octo.tiny import TinyModelConfig, build_from_config


def test_tokenizer_splits_digits_and_adds_bos(tiny_tokenizer):
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    ids = tok("12345")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 6  # BOS + one token per digit
    text = "Question: What is 12 + 7?\nAnswer: \\boxed{19}"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.eos_token == "<|end_of_text|>" and tok.pad_token == "<|pad|>"


def test_tiny_llama_loads_and_runs(tiny_model, tiny_tokenizer):
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    assert model.config.vocab_size == len(tok) and model.config.num_hidden_layers == 2
    assert model.generation_config.do_sample is True
    batch = tok(["What is 1 + 1?", "Hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and logits.shape[-1] == len(tok)


def test_model_from_yaml_with_override(tmp_path, tiny_tokenizer):
    path = tmp_path / "m.yaml"
    path.write_text(
        f"tokenizer: {tiny_tokenizer}\nmodel:\n  hidden_size: 32\n  num_heads: 2\n  num_layers: 1\n  intermediate_size: 64\n"
    )
    cfg = load_config(path, TinyModelConfig, ["model.num_layers=3"])
    out = build_from_config(cfg, tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 32
    again = AutoModelForCausalLM.from_pretrained(str(build_from_config(cfg, tmp_path / "model2")))
    assert torch.equal(model.model.embed_tokens.weight, again.model.embed_tokens.weight)  # seeded


def test_bad_shape_is_clear(tmp_path, tiny_tokenizer):
    path = tmp_path / "m.yaml"
    path.write_text(f"tokenizer: {tiny_tokenizer}\nmodel:\n  hidden_size: 30\n  num_heads: 4\n")
    with pytest.raises(ValueError, match="divisible"):
        build_from_config(load_config(path, TinyModelConfig), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        build_from_config(TinyModelConfig(tokenizer=str(tmp_path / "nowhere")), tmp_path / "y")
