"""The study's overall progress line: ``step 7/27 · 4 min elapsed · ~6 min left``.

The time left starts from the dry run's estimate of each remaining step (``study.estimate``) and is corrected
by what was measured: a stage whose steps ran took ``ratio(stage)`` times their estimate, so its remaining
estimates are scaled by that ratio; a stage not measured yet uses the ratio of all steps run so far (the
estimate counts FLOPs only, and small models spend most of their time elsewhere). Steps without an estimate (corpus building, the tokenizer, the table) count
at the mean measured time of their stage, once one has run. Cached steps (already complete) say nothing about
speed and are left out of the correction. With several workers, steps finish out of plan order, and the time
left is the remaining work divided by the workers (optimistic: it assumes they are never idle).
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
    workers: int = 1
    started: float = field(default_factory=time.time)
    finished_steps: set[int] = field(default_factory=set)
    measured: dict[str, float] = field(default_factory=dict)  # stage -> seconds of estimated steps that ran
    estimated: dict[str, float] = field(default_factory=dict)  # stage -> their estimates
    by_stage: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, steps, compute, workers: int = 1) -> Progress:
        return cls([s.stage for s in steps], [s.estimate.seconds(compute) for s in steps], workers)

    @property
    def done(self) -> int:
        return len(self.finished_steps)

    def finished(self, index: int, seconds: float, cached: bool) -> None:
        """Step ``index`` (0-based) finished after ``seconds``."""
        self.finished_steps.add(index)
        if cached:
            return
        stage = self.stages[index]
        if self.estimates[index] > 0:
            self.measured[stage] = self.measured.get(stage, 0.0) + seconds
            self.estimated[stage] = self.estimated.get(stage, 0.0) + self.estimates[index]
        self.by_stage.setdefault(self.stages[index], []).append(seconds)

    def ratio(self, stage: str | None = None) -> float:
        """Measured / estimated time of the stage's steps run so far; of all stages when it has none (1 before any)."""
        if stage in self.estimated:
            return self.measured[stage] / self.estimated[stage]
        estimated = sum(self.estimated.values())
        return sum(self.measured.values()) / estimated if estimated > 0 else 1.0

    def left(self) -> float:
        total = 0.0
        for i, (stage, estimate) in enumerate(zip(self.stages, self.estimates)):
            if i in self.finished_steps:
                continue
            if estimate > 0:
                total += estimate * self.ratio(stage)
            elif self.by_stage.get(stage):
                total += sum(self.by_stage[stage]) / len(self.by_stage[stage])
        return total / self.workers

    def elapsed(self) -> float:
        return time.time() - self.started

    def line(self) -> str:
        text = f"step {self.done}/{len(self.stages)} · {minutes(self.elapsed())} elapsed"
        if self.done < len(self.stages):
            text += f" · ~{minutes(self.left())} left"
        return text
