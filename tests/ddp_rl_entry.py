"""``torchrun ... tests/ddp_rl_entry.py RECIPE.yaml``: the project's GRPO run, with rollouts made comparable.

Sampling draws from one RNG stream per process, so 1 and 2 processes would sample different completions
and their loss curves could not be compared. Here each completion is sampled on its own, seeded by
(optimizer step, its row in the global rollout batch): the same rows get the same completions whatever the
number of processes, while TRL's sharding, reward gathering, group advantages, loss and gradient
all-reduce run unchanged. A test-only device: ``rl.run`` itself samples as usual. The project's rollout
engine (``octo.generation``, one prefill per prompt group) is switched off here so that TRL's ``generate``
path, which this seeding wraps, makes every rollout.
"""

from __future__ import annotations

import copy
import os
import sys

import torch
from transformers import GenerationMixin, TrainerCallback

from rl import load, run
from rl.trainer import OctoGRPOTrainer

STEP = {"global": 0}


class TrackStep(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            print(f"[ddp] world_size {args.world_size}", flush=True)

    def on_step_begin(self, args, state, control, **kwargs):
        STEP["global"] = state.global_step


def seeded_generate(original):
    def generate(self, input_ids=None, attention_mask=None, stopping_criteria=None, **kwargs):
        rank = int(os.environ.get("RANK", "0"))
        width, pad = input_ids.shape[1], self.generation_config.pad_token_id
        rows = []
        for i in range(input_ids.shape[0]):
            ids = input_ids[i : i + 1, attention_mask[i].bool()]  # the prompt without its left padding
            criteria = []
            for c in stopping_criteria or []:
                c = copy.copy(c)
                if hasattr(c, "prompt_length"):
                    c.prompt_length = ids.shape[1]
                criteria.append(c)
            torch.manual_seed(1_000_003 * STEP["global"] + rank * input_ids.shape[0] + i)
            out = original(self, input_ids=ids, attention_mask=torch.ones_like(ids),
                           stopping_criteria=criteria or None, **kwargs)[0]  # fmt: skip
            rows.append(torch.cat([torch.full((width - ids.shape[1],), pad), out]))
        longest = max(len(r) for r in rows)
        return torch.stack([torch.cat([r, torch.full((longest - len(r),), pad)]) for r in rows])

    return generate


if __name__ == "__main__":
    GenerationMixin.generate = seeded_generate(GenerationMixin.generate)
    OctoGRPOTrainer._engine_applies = lambda self, *args, **kwargs: False
    print(run(load(sys.argv[1], sys.argv[2:]), callbacks=[TrackStep()]))
