"""The options of ``octo readiness`` (and a study's ``readiness:`` mapping): row order, windows, thresholds."""

from __future__ import annotations

from pydantic import Field

from octo.config import StrictModel


class ReadinessOptions(StrictModel):
    arms: list[str] | None = Field(
        None,
        description="row order (default: baseline first, then the study manifest's arm order, then sorted)",
    )
    baseline: str = Field("base", description="the arm that is the base model (first row, plotted black)")
    arm_notes: dict[str, str] = Field(
        default_factory=dict, description="arm -> what that model is, shown under the table's title"
    )
    window: int = Field(
        20,
        gt=0,
        description="RL steps averaged for start/final/peak values (at most a fifth of the run's steps)",
    )
    curve: str | None = Field(
        None,
        description="the curve verdicts read: 'accuracy' (training), 'reward_mean', 'val/<benchmark>' or any "
        "metrics key (default: an imported arm's mapping, else training accuracy, else validation accuracy)",
    )
    noise_z: float = Field(
        2.0,
        ge=0,
        description="a gain or a drop must also exceed this many standard errors of the window means",
    )
    plot_task: str | None = Field(
        None, description="<suite>/<task> of the dashed base lines (default: first few-shot)"
    )
    # verdict thresholds (see ``verdict``)
    min_gain: float = Field(0.05, description="RL accuracy gain (final - start) below this: not ready")
    collapse_frac: float = Field(
        0.5, description="falling back by this fraction of the rise after a peak: unstable"
    )
    collapse_abs: float = Field(0.05, description="...and by at least this much accuracy")
    runaway_len_ratio: float = Field(2.0, description="final/start response length at or above this...")
    runaway_clip: float = Field(
        0.3, description="...with this share of responses at the length limit: unstable"
    )
    max_clip: float = Field(
        0.5, description="final share of responses at the length limit above this: pathology"
    )
    max_repetition: float = Field(
        0.3, description="final share of repetitive responses above this: pathology"
    )
    max_multi_boxed: float = Field(
        0.3, description="final share of responses with 2+ boxes above this: pathology"
    )
    max_zero_std: float = Field(
        0.95, description="final share of groups without reward variance above this: no signal"
    )
