"""Tiny-model factory: a small byte-level BPE tokenizer and a small Llama saved as normal HF folders.

Tests and the demo use these instead of downloading anything. The model's shape comes from YAML
(``configs/models/*.yaml``); its vocabulary comes from a given tokenizer folder (a trained BPE, the Llama-3
tokenizer via ``llama3``, or SmolLM2's via ``smollm2``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from octo import assets
from octo.config import StrictModel
from octo.errors import ConfigError, MissingInputError

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"


class TinyLlamaShape(StrictModel):
    hidden_size: int = Field(128, gt=0)
    num_layers: int = Field(2, gt=0)
    num_heads: int = Field(2, gt=0)
    num_kv_heads: int | None = Field(None, gt=0, description="defaults to num_heads")
    intermediate_size: int = Field(336, gt=0)
    max_position_embeddings: int = Field(1024, gt=0)
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02


class TinyModelConfig(StrictModel):
    """YAML schema of ``configs/models/*.yaml``."""

    tokenizer: str = Field(description="HF tokenizer folder, or 'llama3' / 'smollm2' for the offline ones")
    model: TinyLlamaShape = TinyLlamaShape()
    seed: int = 0


def train_bpe_tokenizer(
    texts: Iterable[str], out_dir: str | Path, vocab_size: int = 3072, individual_digits: bool = True
) -> Path:
    """Train a byte-level BPE (every digit its own token by default) and save it as an HF tokenizer folder.

    The tokenizer prepends ``<|begin_of_text|>`` like Llama-3's; ``<|end_of_text|>`` is EOS and ``<|pad|>`` pads.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if individual_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=4096,
    )
    out_dir = Path(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def resolve_tokenizer(spec: str) -> Path:
    """'llama3' / 'smollm2' name the offline tokenizers; anything else is a folder."""
    if spec == "llama3":
        return assets.llama3_tokenizer_path()
    if spec == "smollm2":
        return assets.smollm2_path()
    path = Path(spec)
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise MissingInputError(
            f"tokenizer '{spec}': no tokenizer.json in that folder (or use 'llama3' / 'smollm2')"
        )
    return path


def make_tiny_llama(shape: TinyLlamaShape, tokenizer: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """Create a randomly initialised LlamaForCausalLM with the vocabulary of ``tokenizer``; save model + tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(resolve_tokenizer(str(tokenizer))))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if shape.hidden_size % shape.num_heads:
        raise ConfigError(
            f"model.hidden_size ({shape.hidden_size}) must be divisible by model.num_heads ({shape.num_heads})"
        )
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads or shape.num_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        tie_word_embeddings=shape.tie_word_embeddings,
        initializer_range=shape.initializer_range,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    # Sampled evaluation (pass@k) needs do_sample in the saved config: lighteval never passes it itself.
    gen.do_sample, gen.temperature, gen.top_p, gen.top_k = True, 1.0, 1.0, 0
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def build_from_config(config: TinyModelConfig, out_dir: str | Path) -> Path:
    return make_tiny_llama(config.model, config.tokenizer, out_dir, seed=config.seed)
