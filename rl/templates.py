"""Prompt templates for R1-Zero-style RL from a base model: the RL view of ``octo.templates``.

``qa`` is the OctoThinker default ("Question: {q}\\nAnswer:"); ``orz`` is the Open-Reasoner-Zero style
User/Assistant conversation that asks for a ``\\boxed{}`` answer; ``chat`` renders the tokenizer's own chat
template. The text and stop strings live in ``octo.templates``, the registry evaluation renders from too, so
an RL checkpoint is evaluated on the prompt it was trained on. All three give plain strings, so the CPU and
vLLM paths tokenize and stop the same way.
"""

from __future__ import annotations

from octo import templates
from octo.errors import ConfigError


def render(name: str, question: str, tokenizer=None, system_prompt: str | None = None) -> str:
    """The prompt text for one question under template ``name``."""
    if name not in templates.RL_TEMPLATES:
        raise ConfigError(f"unknown template '{name}' (known: {', '.join(templates.RL_TEMPLATES)})")
    return templates.render(name, question, tokenizer=tokenizer, system_prompt=system_prompt)
