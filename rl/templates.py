"""Prompt templates for R1-Zero-style RL from a base model.

``qa`` is the OctoThinker default ("Question: {q}\\nAnswer:"); ``orz`` is the Open-Reasoner-Zero style
User/Assistant conversation that asks for a ``\\boxed{}`` answer; ``chat`` renders the tokenizer's own chat
template. All three give plain strings, so the CPU and vLLM paths tokenize and stop the same way.
"""

from __future__ import annotations

QA_TEMPLATE = "Question: {question}\nAnswer:"

ORZ_TEMPLATE = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process step by step and then gives the User the final "
    "answer, written inside \\boxed{{}}.\n"
    "User: {question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n"
    "Assistant:"
)


def render(name: str, question: str, tokenizer=None, system_prompt: str | None = None) -> str:
    """The prompt text for one question under template ``name``."""
    if name == "qa":
        return QA_TEMPLATE.format(question=question)
    if name == "orz":
        return ORZ_TEMPLATE.format(question=question)
    if name == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "template.name=chat needs a tokenizer with a chat template (this model's tokenizer has none; "
                "use template.name=qa or orz)"
            )
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": question})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The trainer tokenizes the prompt with the tokenizer's special tokens; do not add BOS twice.
        bos = tokenizer.bos_token
        if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
            text = text[len(bos) :]
        return text
    raise ValueError(f"unknown template '{name}' (known: qa, orz, chat)")
