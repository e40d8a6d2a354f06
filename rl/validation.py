"""Greedy zero-shot validation on held-out benchmark subsets, run every N RL steps.

Uses the RL prompt template and stop strings and the same scorer as the reward, so ``val/<name>/acc`` is the
greedy counterpart of the training accuracy. Generation is transformers ``generate`` (also on GPU).
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from .rewards import judge
from .stopping import cut_at_stop, stop_generate_on


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
        tok = self.tokenizer
        eos = eos_ids(model, tok)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=False, eos_token_id=eos,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        )  # fmt: skip
        # the model's own generation config may hold sampling settings (do_sample, top_k=0) that greedy
        # decoding would merge in and warn about: swap it out for the duration
        side, tok.padding_side = tok.padding_side, "left"
        saved, model.generation_config = model.generation_config, config
        out: list[list[int]] = []
        try:
            for i in range(0, len(prompts), self.batch_size):
                enc = tok(prompts[i : i + self.batch_size], return_tensors="pt", padding=True).to(
                    model.device
                )
                with stop_generate_on(model, tok, self.stop_strings):
                    generated = model.generate(**enc, generation_config=config)
                for row in generated[:, enc["input_ids"].shape[1] :].tolist():
                    end = next((j for j, t in enumerate(row) if t in eos), None)
                    row = row if end is None else row[: end + 1]
                    while row and row[-1] == tok.pad_token_id and tok.pad_token_id not in eos:
                        row.pop()
                    out.append(cut_at_stop(row, tok, self.stop_strings)[0])
        finally:
            tok.padding_side = side
            model.generation_config = saved
        return out

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
