"""The learning rate at a step: warmup, stable, decay (linear, cosine or 1-sqrt) to a floor, then the floor.

``step`` counts optimizer steps already taken over the whole lineage (0 for the first update), the same
convention as nanotron's ``lr_lambda`` (``src/nanotron/helpers.py``) with ``lr_warmup_steps=warmup_steps``,
``lr_decay_starting_step=decay_start``, ``lr_decay_steps=decay_steps``, ``min_decay_lr=min_lr``. So a branch
run continues exactly the curve that its parent would have followed, on either backend. One difference:
without warmup nanotron's linear warmup style gives lr 0 at step 0; here (and in the generated nanotron config,
which then uses the 'constant' warmup style) the first step already uses the peak.
"""

from __future__ import annotations

import math


def lr_at(plan, step: int) -> float:
    """``plan`` is a ``midtrain.plan.Plan`` (only its schedule fields are read)."""
    peak, floor = plan.peak_lr, plan.min_lr
    if plan.warmup_steps and step <= plan.warmup_steps:
        return peak * step / plan.warmup_steps
    if step < plan.decay_start or plan.decay == "none":
        return peak
    if step < plan.decay_start + plan.decay_steps:
        progress = (step - plan.decay_start) / plan.decay_steps
        if plan.decay == "linear":
            factor = 1.0 - progress
        elif plan.decay == "cosine":
            factor = (1.0 + math.cos(math.pi * progress)) / 2.0
        else:  # 1-sqrt (Hägele et al., 2024)
            factor = 1.0 - math.sqrt(progress)
        return floor + (peak - floor) * factor
    return floor
