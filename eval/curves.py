"""Curves of an RL run measured in steps, not rows: what the readiness verdict reads.

A native run logs training accuracy at every step; a run made elsewhere often has only a validation accuracy
every N steps. Both are a ``Curve``: the points of one metrics key, their steps, and how many items each point
scored (completions per step for training accuracy, ``val/<bench>/n`` for a validation point), so the noise
test can use the binomial standard error of the points a window averages.

On a dense curve (one point per step) every window here is exactly the row window of before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from octo.layout import parse_val_key, val_key

TRAIN_CURVE = "accuracy"


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows that carry ``key`` (rollout metrics are absent on some steps)."""
    steps, values = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if is_number(value):
            steps.append(float(row.get("step", i)))
            values.append(float(value))
    return steps, values


@dataclass
class Curve:
    key: str
    steps: list[float]
    values: list[float]
    sizes: list[float | None]  # items behind each point (None: not logged)

    @property
    def label(self) -> str:
        parsed = parse_val_key(self.key)
        if self.key == TRAIN_CURVE:
            return "training accuracy"
        if parsed:
            sizes = {s for s in self.sizes if s}
            n = f", n={int(next(iter(sizes)))}" if len(sizes) == 1 else ""
            return f"validation {parsed[0]}{n}"
        return self.key


def resolve_curve_key(rows: list[dict], requested: str | None) -> str | None:
    """The metrics key a verdict reads: ``requested`` ('accuracy', 'reward_mean', 'val/<bench>' or any key), or
    by default training accuracy where logged, else the validation benchmark with the most points."""
    if requested and requested != "auto":
        if requested.startswith("val/") and parse_val_key(requested) is None:
            requested = val_key(requested[len("val/") :])
        return requested
    if any(is_number(row.get(TRAIN_CURVE)) for row in rows):
        return TRAIN_CURVE
    counts: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            parsed = parse_val_key(key)
            if parsed and parsed[1] == "acc" and is_number(value):
                counts[key] = counts.get(key, 0) + 1
    return max(sorted(counts), key=counts.__getitem__) if counts else None


def curve(rows: list[dict], key: str) -> Curve:
    parsed = parse_val_key(key)
    # A binomial SE needs a proportion: training accuracy (completions per step) or a validation accuracy.
    size_key = val_key(parsed[0], "n") if parsed and parsed[1] == "acc" else None
    if key == TRAIN_CURVE:
        size_key = "completions"
    steps, values, sizes = [], [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if is_number(value):
            steps.append(float(row.get("step", i)))
            values.append(float(value))
            size = row.get(size_key) if size_key else None
            sizes.append(float(size) if is_number(size) and size > 0 else None)
    return Curve(key, steps, values, sizes)


def step_window(steps: list[float], window: int) -> float:
    """The averaging window in steps: ``window``, at most a fifth of the run's span, at least one step."""
    if len(steps) < 2:
        return 1.0
    gaps = sorted(b - a for a, b in zip(steps, steps[1:]) if b > a) or [1.0]
    span = steps[-1] - steps[0] + gaps[len(gaps) // 2]
    return float(max(1, min(window, math.floor(span / 5))))


def first_window(steps: list[float], width: float) -> list[int]:
    """Indices of the points in the first ``width`` steps (always at least the first point)."""
    return [i for i, s in enumerate(steps) if s < steps[0] + width] or [0]


def last_window(steps: list[float], width: float) -> list[int]:
    return [i for i, s in enumerate(steps) if s > steps[-1] - width] or [len(steps) - 1]


def centred_windows(steps: list[float], width: float) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of a centred moving window of ``width`` steps (shorter at the ends)."""
    half = width // 2
    out, lo, hi = [], 0, 0
    for s in steps:
        while lo < len(steps) and steps[lo] < s - half:
            lo += 1
        while hi < len(steps) and steps[hi] < s - half + width:
            hi += 1
        out.append((lo, hi))
    return out


def rolling_mean_steps(steps: list[float], values: list[float], width: float) -> list[float]:
    prefix = [0.0]
    for value in values:
        prefix.append(prefix[-1] + value)
    return [(prefix[hi] - prefix[lo]) / (hi - lo) for lo, hi in centred_windows(steps, width)]


def mean_at(values: list[float], idx: list[int]) -> float:
    return sum(values[i] for i in idx) / len(idx)


def window_items(c: Curve, idx: list[int]) -> float | None:
    """Items the points ``idx`` scored together (points without a count take the curve's mean count)."""
    known = [s for s in c.sizes if s]
    if not known:
        return None
    mean = sum(known) / len(known)
    return sum(c.sizes[i] or mean for i in idx)


def binomial_se(p: float, items: float | None) -> float | None:
    if not items:
        return None
    return math.sqrt(max(p * (1 - p), 0.0) / items)


def window_stats(c: Curve, window: int) -> dict:
    """Start / final / peak means of a curve over windows in steps, with the binomial SE of each window."""
    width = step_window(c.steps, window)
    start_i, final_i = first_window(c.steps, width), last_window(c.steps, width)
    start, final = mean_at(c.values, start_i), mean_at(c.values, final_i)
    ranges = centred_windows(c.steps, width)
    smooth = rolling_mean_steps(c.steps, c.values, width)
    peak_i = max(range(len(smooth)), key=smooth.__getitem__)
    out = {
        "start": start,
        "final": final,
        "peak": max(start, smooth[peak_i]),
        "peak_step": c.steps[peak_i] if smooth[peak_i] >= start else c.steps[0],
        "points": len(c.values),
        "width": width,
    }
    peak_idx = list(range(*ranges[peak_i])) if smooth[peak_i] >= start else start_i
    se = {
        "start": binomial_se(start, window_items(c, start_i)),
        "final": binomial_se(final, window_items(c, final_i)),
        "peak": binomial_se(out["peak"], window_items(c, peak_idx)),
    }
    if all(v is not None for v in se.values()):
        out["se"] = se
    return out


def start_final(rows: list[dict], key: str, window: int) -> tuple[float, float] | None:
    """Means of ``key`` over the first and last ``window`` steps, or None where the key is never logged."""
    steps, values = series(rows, key)
    if not values:
        return None
    width = step_window(steps, window)
    return mean_at(values, first_window(steps, width)), mean_at(values, last_window(steps, width))
