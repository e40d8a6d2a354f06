"""Stop strings for transformers generation (TRL's CPU path has none) and the cut that follows them.

A base model prompted with "Question: ...\\nAnswer:" keeps writing the next "Question:". TRL 1.16 does not
pass a tokenizer to ``generate()``, so ``stop_strings`` fails there, and a stop string is usually several
tokens. Two pieces fix that:

* ``StopOnStrings``: a stopping criterion that decodes the last few *generated* tokens of each row and stops
  the row once any stop string appears (the prompt itself is never searched);
* ``cut_at_stop``: cuts a completion's token ids before the token where a stop string begins, so the
  reward, the logged text and the loss mask all end there (what vLLM's ``stop`` does on GPU).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from transformers import StoppingCriteria, StoppingCriteriaList


class StopOnStrings(StoppingCriteria):
    def __init__(self, tokenizer, stop_strings: list[str], prompt_length: int):
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.prompt_length = prompt_length
        # every token decodes to at least one character, so a stop string of n characters spans <= n tokens
        self.window = max(len(s) for s in self.stop_strings) + 1

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        texts = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        hits = [any(s in t for s in self.stop_strings) for t in texts]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


@contextlib.contextmanager
def stop_generate_on(model, tokenizer, stop_strings: list[str]):
    """Within the block, ``model.generate`` also stops each row at the first generated stop string."""
    if not stop_strings:
        yield model
        return
    original = model.generate

    @functools.wraps(original)
    def generate(*args, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        criteria = StoppingCriteriaList(kwargs.pop("stopping_criteria", None) or [])
        criteria.append(StopOnStrings(tokenizer, stop_strings, input_ids.shape[1]))
        return original(*args, stopping_criteria=criteria, **kwargs)

    model.generate = generate  # an instance attribute shadows the method only inside this block
    try:
        yield model
    finally:
        del model.generate


def cut_at_stop(ids: list[int], tokenizer, stop_strings: list[str]) -> tuple[list[int], bool]:
    """Cut ``ids`` before the first stop string in their text; returns (ids, stopped).

    The cut falls on the last token boundary at or before the stop string's first character. A completion
    that starts with a stop string keeps its first token (an empty completion has no last token to
    classify as finished or clipped).
    """
    if not stop_strings or not ids:
        return ids, False
    decode = functools.partial(tokenizer.decode, skip_special_tokens=True)
    text = decode(ids)
    starts = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    if not starts:
        return ids, False
    first = min(starts)
    # smallest k whose decoded prefix reaches past the stop string's first character (binary search)
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(decode(ids[:mid])) > first:
            hi = mid
        else:
            lo = mid + 1
    keep = max(lo - 1, 1)
    return ids[:keep], True
