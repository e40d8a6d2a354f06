"""Greedy zero-shot validation on held-out benchmark subsets, run every N RL steps.

Uses the RL prompt template and stop strings and the same scorer as the reward, so ``val/<name>/acc`` is the
greedy counterpart of the training accuracy. Generation is ``octo.generation.Generator``, as in the evaluation
stage's zero-shot suites.
"""

from __future__ import annotations

import torch

from octo.generation import Generator, Sampling

from .rewards import judge
from .stopping import cut_at_stop


def eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    return ids if tokenizer.eos_token_id in ids else [tokenizer.eos_token_id, *ids]


class Validator:
    def __init__(self, sets: dict[str, list[dict]], prompts: dict[str, list[str]], tokenizer, *, stop_strings,
                 max_new_tokens: int, batch_size: int, require_boxed: bool):  # fmt: skip
        self.sets, self.prompts, self.tokenizer = sets, prompts, tokenizer
        self.stop_strings, self.max_new_tokens, self.batch_size = stop_strings, max_new_tokens, batch_size
        self.require_boxed = require_boxed

    @torch.no_grad()
    def generate(self, model, prompts: list[str]) -> list[list[int]]:
        """Greedy completions through the engine the evaluation stage uses (``octo.generation``): rows leave the
        batch at EOS or a stop string, and each is cut before its stop string."""
        tok = self.tokenizer
        ids = [tok(p)["input_ids"] for p in prompts]
        engine = Generator(model, tok, max_rows=self.batch_size)
        outs = engine.generate(
            ids, 1, self.max_new_tokens, eos_ids(model, tok), list(self.stop_strings), Sampling()
        )
        return [cut_at_stop(samples[0], tok, self.stop_strings)[0] for samples in outs]

    def __call__(self, model) -> dict:
        was_training = model.training
        model.eval()
        results = {}
        try:
            for name, items in self.sets.items():
                completions = self.generate(model, self.prompts[name])
                texts = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
                correct = [judge(t, x["answer"], self.require_boxed).correct for t, x in zip(texts, items)]
                lengths = [len(c) for c in completions]
                right = [n for n, ok in zip(lengths, correct) if ok]
                results[f"val/{name}/acc"] = sum(correct) / len(items)
                results[f"val/{name}/correct_len"] = sum(right) / len(right) if right else None
                results[f"val/{name}/response_len"] = sum(lengths) / len(lengths)
                results[f"val/{name}/n"] = len(items)  # the readiness noise test: binomial SE of this point
        finally:
            model.train(was_training)
        return results
