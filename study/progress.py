"""The study's overall progress line: ``step 7/27 · 4 min elapsed · ~6 min left``.

The time left starts from the dry run's estimate of each remaining step (``study.estimate``) and is corrected
by what was measured: the estimated steps that ran so far took ``ratio`` times their estimate, so the remaining
estimates are scaled by that ratio. Steps without an estimate (corpus building, the tokenizer, the table) count
at the mean measured time of their stage, once one has run. Cached steps (already complete) say nothing about
speed and are left out of the correction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def minutes(seconds: float) -> str:
    """'45 s', '4 min', '1.5 h': short, for a progress line."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Progress:
    """Planned steps (stage and estimated seconds, in order) and what has been measured so far."""

    stages: list[str]
    estimates: list[float]
    started: float = field(default_factory=time.time)
    done: int = 0
    measured: float = 0.0  # seconds of steps that had an estimate and really ran
    estimated: float = 0.0  # their estimates
    by_stage: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, steps, compute) -> Progress:
        return cls([s.stage for s in steps], [s.estimate.seconds(compute) for s in steps])

    def finished(self, index: int, seconds: float, cached: bool) -> None:
        """Step ``index`` (0-based) finished after ``seconds``."""
        self.done = index + 1
        if cached:
            return
        if self.estimates[index] > 0:
            self.measured += seconds
            self.estimated += self.estimates[index]
        self.by_stage.setdefault(self.stages[index], []).append(seconds)

    @property
    def ratio(self) -> float:
        """Measured / estimated time of the steps run so far (1 before any)."""
        return self.measured / self.estimated if self.estimated > 0 else 1.0

    def left(self) -> float:
        total = 0.0
        for stage, estimate in zip(self.stages[self.done :], self.estimates[self.done :]):
            if estimate > 0:
                total += estimate * self.ratio
            elif self.by_stage.get(stage):
                total += sum(self.by_stage[stage]) / len(self.by_stage[stage])
        return total

    def elapsed(self) -> float:
        return time.time() - self.started

    def line(self) -> str:
        text = f"step {self.done}/{len(self.stages)} · {minutes(self.elapsed())} elapsed"
        if self.done < len(self.stages):
            text += f" · ~{minutes(self.left())} left"
        return text
