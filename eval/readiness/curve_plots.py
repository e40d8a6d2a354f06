"""Drawing one arm's RL curves on a matplotlib axis: dense training curves as a rolling mean in steps, sparse
curves (validation every N steps, or a run logged every N steps) as markers joined by a line."""

from __future__ import annotations

from octo.layout import parse_val_key, val_key

from ..curves import rolling_mean_steps, series, step_window

SPARSE = 60  # at most this many points: draw every point with a marker


def draw_series(ax, steps, values, *, color, label, window: int, **style) -> None:
    if len(values) <= SPARSE:
        ax.plot(steps, values, marker="o", markersize=4, linewidth=1.2, color=color, label=label, **style)
    else:
        smooth = rolling_mean_steps(steps, values, step_window(steps, window))
        ax.plot(steps, smooth, color=color, label=label, **style)


def val_keys(rows: list[dict], field: str = "acc") -> list[str]:
    return sorted({k for r in rows for k in r if (parse_val_key(k) or ("", ""))[1] == field})


def draw_arm(ax, rows: list[dict], key: str, *, color, arm: str, window: int, with_validation: bool) -> bool:
    """Draw ``key`` of one arm (its training curve), and its validation curves when asked; True if drawn.
    An arm that logged only validation points is drawn from those (solid, labelled with the arm)."""
    drawn = False
    steps, values = series(rows, key)
    if values:
        draw_series(ax, steps, values, color=color, label=arm, window=window)
        drawn = True
    if not with_validation or (drawn and key != "accuracy"):  # lengths: validation only for val-only arms
        return drawn
    field = {"accuracy": "acc", "response_len_mean": "response_len", "correct_len_mean": "correct_len"}[key]
    for i, vkey in enumerate(val_keys(rows, "acc")):
        bench = parse_val_key(vkey)[0]
        v_steps, v_values = series(rows, val_key(bench, field))
        if not v_values:
            continue
        label = f"{arm} (val {bench})" if drawn or i else arm
        style = {"linestyle": ":" if drawn else "-", "alpha": 0.8}
        ax.plot(v_steps, v_values, marker="o", markersize=4, linewidth=1, color=color, label=label, **style)
        drawn = True
    return drawn
