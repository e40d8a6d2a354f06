"""The verdict rules: an RL run's start / final / peak summary, and the verdict with its reason."""

from __future__ import annotations

import math

from octo.layout import parse_val_key, val_key

from ..curves import curve, resolve_curve_key, series, start_final, window_stats
from .options import ReadinessOptions


def rl_summary(rows: list[dict], options: ReadinessOptions, curve_key: str | None = None) -> dict:
    """Start / final / peak values of one RL run's verdict curve (means over ``window`` steps), and its
    pathology ratios. The curve is ``curve_key`` (else ``options.curve``, else training accuracy where logged,
    else the validation benchmark with the most points); windows are in steps, so sparse curves work too."""
    out: dict = {"rl_steps": len(rows)}
    key = resolve_curve_key(rows, curve_key or options.curve)
    got = curve(rows, key) if key else None
    if got is not None and got.values:
        stats = window_stats(got, options.window)
        out.update(
            rl_curve=got.key,
            rl_curve_label=got.label,
            rl_curve_points=stats["points"],
            rl_acc_start=stats["start"],
            rl_acc_final=stats["final"],
            rl_acc_peak=stats["peak"],
            rl_peak_step=stats["peak_step"],
            rl_gain=stats["final"] - stats["start"],
        )
        if "se" in stats:  # binomial SE of the window means (completions per step, or validation set size)
            out["rl_acc_se"] = stats["se"]
    elif key:
        out["rl_curve"] = key
    bench = (parse_val_key(key) or (None,))[0] if key else None
    for field, name, val_field in (
        ("response_len_mean", "len", "response_len"),
        ("correct_len_mean", "correct_len", "correct_len"),
    ):
        ends = start_final(rows, field, options.window)
        if ends is None and bench:  # a validation-only run: its validation lengths
            ends = start_final(rows, val_key(bench, val_field), options.window)
        if ends is not None:
            start, final = ends
            out[f"{name}_start"], out[f"{name}_final"] = start, final
            out[f"{name}_trend"] = final / start - 1 if start > 0 else None
    for field, name in (
        ("clip_ratio", "clip_final"),
        ("repetition_ratio", "repetition_final"),
        ("multi_boxed_ratio", "multi_boxed_final"),
        ("boxed_first_ratio", "boxed_first_final"),
        ("no_answer_ratio", "no_answer_final"),
        ("frac_zero_std_groups", "zero_std_final"),
    ):
        ends = start_final(rows, field, options.window)
        if ends is not None:
            out[name] = ends[1]
    for k in sorted({k for row in rows for k in row if (parse_val_key(k) or ("", ""))[1] == "acc"}):
        _, values = series(rows, k)
        if values:
            name = parse_val_key(k)[0]
            out[f"val_acc_start/{name}"], out[f"val_acc_final/{name}"] = values[0], values[-1]
            out[f"val_acc_peak/{name}"] = max(values)
    return out


def verdict(summary: dict, options: ReadinessOptions) -> tuple[str, str]:
    """(verdict, reason) from an RL summary. Rules, first match wins:

    1. no RL accuracy (of the arm's verdict curve ``rl_curve``: training or validation accuracy) -> "n/a"
    2. unstable, collapse: accuracy rose to a peak at least ``min_gain`` above the start, then fell back by
       at least max(``collapse_abs``, ``collapse_frac`` x the rise)
    (every difference must also exceed ``noise_z`` standard errors of the window means (windows in steps),
    from the completions per step or the validation set size)
    3. unstable, runaway length: final/start mean length (else correct-response length) >=
       ``runaway_len_ratio`` and the final clip ratio >= ``runaway_clip``
    4. not ready, no learning signal: no gain, and more than ``max_zero_std`` of the groups had no reward variance
       not ready, no gain: final - start < ``min_gain`` (or within noise)
    5. not ready, pathologies: final clip > ``max_clip``, repetition > ``max_repetition``, multi-boxed >
       ``max_multi_boxed`` or zero-variance groups > ``max_zero_std``
    6. ready
    """
    if "rl_acc_start" not in summary:
        key = summary.get("rl_curve") or "accuracy"
        return "n/a", f"the RL metrics have no {key} values" if summary.get("rl_steps") else "no RL run"
    start, final, peak = summary["rl_acc_start"], summary["rl_acc_final"], summary["rl_acc_peak"]
    rise, drop = peak - start, peak - final
    se = summary.get("rl_acc_se") or {}
    # Differences smaller than noise_z standard errors of the two window means are noise, not signal.
    noise = {
        pair: options.noise_z * math.hypot(se.get(pair[0], 0.0), se.get(pair[1], 0.0))
        for pair in (("start", "peak"), ("peak", "final"), ("start", "final"))
    }
    if rise >= max(options.min_gain, noise["start", "peak"]) and drop >= max(
        options.collapse_abs, options.collapse_frac * rise, noise["peak", "final"]
    ):
        return "unstable", (
            f"collapse: accuracy peaked at {peak:.2f} (step {summary['rl_peak_step']:.0f}) and fell to {final:.2f}"
        )
    len_start, len_final = summary.get("len_start"), summary.get("len_final")
    if not (len_start and len_final):  # no mean response length logged: the correct-response length
        len_start, len_final = summary.get("correct_len_start"), summary.get("correct_len_final")
    clip = summary.get("clip_final")
    if len_start and len_final and clip is not None:
        if len_final / len_start >= options.runaway_len_ratio and clip >= options.runaway_clip:
            return "unstable", (
                f"runaway length: {len_start:.0f} -> {len_final:.0f} tokens ({len_final / len_start:.1f}x), "
                f"{clip:.0%} of responses at the limit"
            )
    gain = final - start
    needed = max(options.min_gain, noise["start", "final"])
    zero_std = summary.get("zero_std_final")
    if gain < needed and zero_std is not None and zero_std > options.max_zero_std:
        return "not ready", (
            f"no learning signal: {zero_std:.0%} of groups without reward variance, accuracy {start:.2f} -> {final:.2f}"
        )
    if gain < needed:
        return (
            "not ready",
            # Three decimals: at two, a gain just under the bar reads "+0.05 < +0.05".
            f"no gain: accuracy {start:.3f} -> {final:.3f} ({gain:+.3f}, needs {needed:+.3f})",
        )
    problems = []
    for key, limit, label in (
        ("clip_final", options.max_clip, "at the length limit"),
        ("repetition_final", options.max_repetition, "repetitive"),
        ("multi_boxed_final", options.max_multi_boxed, "with 2+ boxes"),
    ):
        value = summary.get(key)
        if value is not None and value > limit:
            problems.append(f"{value:.0%} of responses {label}")
    if zero_std is not None and zero_std > options.max_zero_std:
        problems.append(f"{zero_std:.0%} of groups without reward variance")
    if problems:
        return "not ready", "pathologies: " + ", ".join(problems)
    trend = summary.get("len_trend")
    length = (
        f", length {len_start:.0f} -> {len_final:.0f}"
        if len_start and len_final and trend is not None
        else ""
    )
    return "ready", f"accuracy {start:.2f} -> {final:.2f} ({gain:+.2f}, peak {peak:.2f}){length}"
