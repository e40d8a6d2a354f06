"""SDPA attention that keeps grouped-query attention grouped when a mask is passed (CPU).

transformers' ``sdpa`` attention expands the key/value heads of a grouped-query model (``repeat_kv``: SmolLM2
has 3 KV heads for 9 query heads) whenever an attention mask is given, because on CUDA a mask with
``enable_gqa`` falls back to the math kernel. The generation engine always passes a mask (padded rows), so on
CPU every decode step copied the whole KV cache three times over, per layer. PyTorch's CPU kernel takes the mask
and ``enable_gqa=True`` together, with bit-identical outputs (tests/test_attention.py).

``grouped_sdpa(model)`` switches a model from ``sdpa`` to this function for the duration of a ``with`` block (and
back, also on error); any other attention implementation, device or ungrouped model is left as it is.
"""

from __future__ import annotations

from contextlib import contextmanager

NAME = "sdpa_grouped_cpu"


def sdpa_grouped_forward(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None, **kwargs
):
    """transformers' attention-function signature; (batch, q_len, heads, head_dim) output and no weights."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.device.type != "cpu" or groups == 1 or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    out = torch.nn.functional.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=bool(query.shape[2] > 1 and attention_mask is None and causal),
        enable_gqa=True,
    )
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, sdpa_grouped_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the same masks as sdpa


@contextmanager
def grouped_sdpa(model):
    """Within the block, ``model`` (and its sub-configs) runs ``sdpa_grouped_forward`` instead of ``sdpa``."""
    configs = [c for c in _configs(model.config) if getattr(c, "_attn_implementation", None) == "sdpa"]
    if not configs or model.device.type != "cpu":
        yield model
        return
    _register()
    for config in configs:
        config._attn_implementation = NAME
    try:
        yield model
    finally:
        for config in configs:
            config._attn_implementation = "sdpa"


def _configs(config) -> list:
    """The config and its sub-configs (text/vision parts of composite models)."""
    subs = [getattr(config, name, None) for name in getattr(config, "sub_configs", {}) or {}]
    return [config, *(c for c in subs if c is not None)]
