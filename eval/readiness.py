"""``octo readiness runs/<study>``: the RL-readiness table and plots that compare a study's checkpoints.

Reads what the other stages wrote (nothing is recomputed):

    midtrain/<arm>/metrics.jsonl            step, tokens, loss, lr, tokens_per_s
    rl/<arm>/metrics.jsonl                  one row per RL step (docs/rl.md)
    eval/<arm>/<suite>/results.json         the checkpoint before RL   (eval.runner format)
    eval/<arm>-rl/<suite>/results.json      the checkpoint after RL

and writes ``readiness.md/.csv/.json/.html`` and ``plots/*.png`` at the study root: one row per arm (the base
model and each mid-training arm). Suites are classified by what they ran: n > 1 samples -> pass@k; otherwise
any few-shot task -> few-shot; otherwise zero-shot. Missing pieces (an arm without RL, a suite not run) leave
empty cells and a note. The verdict rules are in ``verdict`` (and docs/readiness.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from pydantic import Field

from octo.config import StrictModel, parse_config
from octo.errors import InputError, MissingInputError
from octo.jsonl import read_json, read_jsonl
from octo.layout import RL_SUFFIX, StudyLayout, parse_val_key, val_key
from octo.manifest import read_manifest

from .curve_plots import draw_arm
from .curves import (
    curve,
    is_number,
    resolve_curve_key,
    series,
    start_final,
    window_stats,
)


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


# ------------------------------------------------------------------------------------------------- reading
_is_number = is_number


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


def suite_kind(results: dict) -> str:
    tasks = results.get("tasks", {}).values()
    if results.get("settings", {}).get("generation", {}).get("n", 1) > 1:
        return "passk"
    return "fewshot" if any(t.get("fewshot", 0) > 0 for t in tasks) else "zeroshot"


def _read_metrics(path: Path) -> list[dict]:
    return list(read_jsonl(path)) if path.is_file() else []


def _imported_baseline(study: Path) -> str | None:
    """The baseline an import mapping named, when the study has no 'base' arm of its own."""
    if StudyLayout(study).rl_dir("base").is_dir():
        return None
    for folder in sorted((study / "rl").glob("*/")):
        baseline = ((read_manifest(folder) or {}).get("readiness") or {}).get("baseline")
        if baseline:
            return baseline
    return None


def _mapped_curve(layout: StudyLayout, arm: str) -> str | None:
    """The verdict curve an imported arm's mapping chose (``octo runs import`` writes it in the manifest)."""
    manifest = read_manifest(layout.rl_dir(arm)) or {}
    return (manifest.get("readiness") or {}).get("curve")


def discover_arms(study: Path, options: ReadinessOptions) -> list[str]:
    found = set()
    for stage in ("midtrain", "rl"):
        if (study / stage).is_dir():
            found |= {p.name for p in (study / stage).iterdir() if p.is_dir()}
    if (study / "eval").is_dir():
        found |= {p.name.removesuffix(RL_SUFFIX) for p in (study / "eval").iterdir() if p.is_dir()}
    if options.arms:
        return list(options.arms)
    # A folder made by `octo study run` keeps the study's arm order (its manifest lists the arms).
    order = []
    manifest = StudyLayout(study).study_manifest()
    if manifest.is_file():
        arms = (json.loads(manifest.read_text()).get("config") or {}).get("arms") or {}
        order = [arm for arm in arms if arm in found]
    rest = sorted(found - set(order), key=lambda a: (a != options.baseline, a))
    return [a for a in rest if a == options.baseline] + order + [a for a in rest if a != options.baseline]


def load_evals(study: Path) -> dict[str, dict[str, dict]]:
    """{model folder name: {suite name: results}} for every complete results.json under eval/."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted((study / "eval").glob("*/*/results.json")):
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if results.get("complete"):
            out.setdefault(path.parent.parent.name, {})[path.parent.name] = results
    return out


# ------------------------------------------------------------------------------------------------- table
def build_rows(study: Path, options: ReadinessOptions) -> tuple[list[dict], dict]:
    """One flat row per arm, plus the curves the plots need."""
    arms = discover_arms(study, options)
    evals = load_evals(study)
    layout = StudyLayout(study)
    kinds: dict[str, str] = {}
    for suites in evals.values():
        for suite, results in suites.items():
            kinds.setdefault(suite, suite_kind(results))
    rows, curves = [], {"rl": {}, "midtrain": {}, "passk": {}, "base_scores": {}, "shots": {}, "probe": {}}
    for arm in arms:
        row: dict = {"arm": arm}
        notes = []
        pre, post = evals.get(arm, {}), evals.get(arm + RL_SUFFIX, {})
        for suite, kind in sorted(kinds.items()):
            for when, got in (("pre", pre), ("post", post)):
                if kind == "fewshot" and when == "post":
                    continue  # few-shot scores describe base checkpoints
                results = got.get(suite)
                if results is None:
                    model = arm + (RL_SUFFIX if when == "post" else "")
                    if kind != "fewshot" or when == "pre":
                        notes.append(f"eval/{model}/{suite} missing")
                    continue
                for task, entry in results["tasks"].items():
                    curves["shots"][f"{suite}/{task}"] = entry.get("fewshot", 0)
                    if kind == "fewshot":
                        row[f"fewshot/{suite}/{task}"] = entry["score"]
                        curves["base_scores"].setdefault(f"{suite}/{task}", {})[arm] = entry["score"]
                    elif kind == "zeroshot":
                        row[f"zeroshot_{when}/{suite}/{task}"] = entry["score"]
                    else:
                        passk = {
                            int(k.split("@")[1]): v["value"]
                            for k, v in entry["scores"].items()
                            if k.startswith("pass@")
                        }
                        for k, value in sorted(passk.items()):
                            row[f"passk_{when}/{suite}/{task}/pass@{k}"] = value
                        curves["passk"].setdefault(f"{suite}/{task}", {}).setdefault(arm, {})[when] = passk
        rl_rows = _read_metrics(layout.rl_metrics(arm))
        if rl_rows:
            row.update(rl_summary(rl_rows, options, options.curve or _mapped_curve(layout, arm)))
            curves["rl"][arm] = rl_rows
        else:
            notes.append(f"rl/{arm}/metrics.jsonl missing")
        if layout.probe_file(arm).is_file():  # the prediction made before RL, beside the realised outcome
            prediction = read_json(layout.probe_file(arm))["prediction"]
            row["probe_score"], row["probe_verdict"] = prediction["score"], prediction["verdict"]
            curves["probe"][arm] = prediction["score"]
        mid_rows = _read_metrics(layout.midtrain_metrics(arm))
        if mid_rows:
            curves["midtrain"][arm] = mid_rows
        row["verdict"], row["reason"] = verdict(row, options)
        row["notes"] = "; ".join(notes)
        rows.append(row)
    curves["kinds"] = kinds
    return rows, curves


def columns_of(rows: list[dict]) -> list[str]:
    order = ["arm", "verdict", "reason"]
    groups = ("fewshot/", "zeroshot_pre/", "zeroshot_post/", "rl_", "val_acc_", "len_", "correct_len_")
    rest = {k for row in rows for k in row} - set(order) - {"notes"}
    ratios = [
        "clip_final",
        "repetition_final",
        "multi_boxed_final",
        "boxed_first_final",
        "no_answer_final",
        "zero_std_final",
    ]
    ordered = []
    for prefix in groups:
        ordered += sorted((k for k in rest if k.startswith(prefix) and k not in ordered), key=_natural)
    ordered += [k for k in ratios if k in rest]
    ordered += sorted((k for k in rest if k.startswith("passk_pre/")), key=_natural)
    ordered += sorted((k for k in rest if k.startswith("passk_post/")), key=_natural)
    ordered += sorted(rest - set(ordered))
    return order + ordered + ["notes"]


def _natural(key: str):
    return [int(p) if p.isdigit() else p for p in key.replace("@", "/").split("/")]


def _fmt(value, digits: int = 2) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _curve_cell(row: dict) -> str:
    """The verdict curve and how many points it has (a validation curve is sparse)."""
    if "rl_curve_label" not in row:
        return row.get("rl_curve", "")
    return f"{row['rl_curve_label']} ({row['rl_curve_points']} pts)"


def _arrow(a, b, digits: int = 2) -> str:
    if a is None and b is None:
        return ""
    return f"{_fmt(a, digits) or '–'} → {_fmt(b, digits) or '–'}"


def _rl_cells(row: dict, width: int) -> list[str]:
    """One row of the RL dynamics table."""
    if "rl_steps" not in row:
        return [row["arm"]] + [""] * (width - 1)
    trend = row.get("len_trend")
    length = _arrow(row.get("len_start"), row.get("len_final"), 0)
    peak = (
        f"{_fmt(row.get('rl_acc_peak'))} ({_fmt(row.get('rl_peak_step'), 0)})" if "rl_acc_peak" in row else ""
    )
    return [
        row["arm"],
        str(row["rl_steps"]),
        _curve_cell(row),
        _arrow(row.get("rl_acc_start"), row.get("rl_acc_final")),
        peak,
        f"{row['rl_gain']:+.2f}" if "rl_gain" in row else "",
        f"{length} ({trend:+.0%})" if trend is not None else length,
        _arrow(row.get("correct_len_start"), row.get("correct_len_final"), 0),
    ] + [
        _fmt(row.get(k))
        for k in (
            "clip_final",
            "repetition_final",
            "multi_boxed_final",
            "boxed_first_final",
            "zero_std_final",
        )
    ]


def markdown_tables(rows: list[dict], curves: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) of the three tables: before RL, RL dynamics, after RL."""
    keys = {k for row in rows for k in row}
    fewshot = sorted((k for k in keys if k.startswith("fewshot/")), key=_natural)
    zero = sorted({k.split("/", 1)[1] for k in keys if k.startswith("zeroshot_")}, key=_natural)
    passk_tasks = sorted(curves["passk"])

    def kmax(task):
        return max(
            (k for arms in curves["passk"][task].values() for ks in arms.values() for k in ks), default=1
        )

    def label(key: str, group: list[str]) -> str:
        """'<task>' (or '<suite>/<task>' when two suites of a group share a task name) and its shot count."""
        suite, task = key.split("/", 1)
        clash = sum(k.split("/", 1)[1] == task for k in group) > 1
        return f"{key if clash else task} {curves['shots'].get(key, 0)}-shot"

    fewshot_keys = [k.split("/", 1)[1] for k in fewshot]
    base_head = ["arm"] + [label(k, fewshot_keys) for k in fewshot_keys] + [label(t, zero) for t in zero]
    base_head += [f"{label(t, passk_tasks)} pass@1 / pass@{kmax(t)}" for t in passk_tasks]
    base = []
    for row in rows:
        cells = (
            [row["arm"]]
            + [_fmt(row.get(k)) for k in fewshot]
            + [_fmt(row.get(f"zeroshot_pre/{t}")) for t in zero]
        )
        for t in passk_tasks:
            a, b = row.get(f"passk_pre/{t}/pass@1"), row.get(f"passk_pre/{t}/pass@{kmax(t)}")
            cells.append(f"{_fmt(a)} / {_fmt(b)}" if a is not None else "")
        base.append(cells)
    rl_head = [
        "arm", "steps", "curve", "accuracy start → final", "peak (step)", "gain", "length start → final (trend)",
        "correct length → final", "clip", "repetition", "multi-boxed", "boxed-first", "zero-std groups",
    ]  # fmt: skip
    rl = [_rl_cells(row, len(rl_head)) for row in rows]
    after_head = ["arm"] + [f"{label(t, zero)} before → after" for t in zero]
    after_head += [f"{label(t, passk_tasks)} pass@1 / pass@{kmax(t)} after" for t in passk_tasks]
    probed = bool(curves.get("probe"))
    after_head += (
        ["verdict curve"] + (["predicted before RL (probe score)"] if probed else []) + ["verdict", "reason"]
    )
    after = []
    for row in rows:
        cells = [row["arm"]] + [
            _arrow(row.get(f"zeroshot_pre/{t}"), row.get(f"zeroshot_post/{t}")) for t in zero
        ]
        for t in passk_tasks:
            a, b = row.get(f"passk_post/{t}/pass@1"), row.get(f"passk_post/{t}/pass@{kmax(t)}")
            cells.append(f"{_fmt(a)} / {_fmt(b)}" if a is not None else "")
        cells.append(row.get("rl_curve_label", ""))
        if probed:
            score = row.get("probe_score")
            cells.append(f"{row['probe_verdict']} ({score:.2f})" if score is not None else "")
        after.append(cells + [f"**{row['verdict']}**", row["reason"]])
    return [
        ("Before RL (base checkpoints)", base_head, base),
        ("RL dynamics", rl_head, rl),
        ("After RL and verdict", after_head, after),
    ]


def render_markdown(study: Path, rows: list[dict], curves: dict, plots: list[Path], arm_notes=None) -> str:
    out = [f"# RL readiness: {study.name}", ""]
    out += [f"- **{arm}**: {note}" for arm, note in (arm_notes or {}).items()] + ([""] if arm_notes else [])
    for title, head, cells in markdown_tables(rows, curves):
        out += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        out.append("")
    notes = [f"- {row['arm']}: {row['notes']}" for row in rows if row["notes"]]
    if notes:
        out += ["## Missing pieces", "", *notes, ""]
    if plots:
        out += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    out += [
        "Verdict rules: see `eval/readiness.py:verdict` and the project's docs/readiness.md.",
        "",
    ]
    return "\n".join(out)


def render_html(
    study: Path, rows: list[dict], curves: dict, plots: list[Path], options: ReadinessOptions
) -> str:
    """The self-contained HTML page (eval/readiness_html.py): verdicts, then plots, then the detailed tables."""
    from eval.readiness_html import render_page

    thresholds = json.dumps(options.model_dump(exclude={"arms", "arm_notes"}))
    colors = arm_colors([row["arm"] for row in rows], options.baseline)
    tables = markdown_tables(rows, curves)
    return render_page(study.name, rows, tables, plots, colors, verdict.__doc__ or "", thresholds,
                       arm_notes=options.arm_notes)  # fmt: skip


def arm_colors(arms: list[str], baseline: str | None) -> dict[str, str]:
    """One colour per arm, the same in every plot and in the HTML verdict list (the baseline in black)."""
    from matplotlib.colors import to_hex

    return {arm: "#000000" if arm == baseline else to_hex(f"C{i}") for i, arm in enumerate(arms)}


# ------------------------------------------------------------------------------------------------- plots
def make_plots(study: Path, rows: list[dict], curves: dict, options: ReadinessOptions) -> list[Path]:
    """The study's plots under ``plots/``: RL curves, pass@k, mid-training loss; one colour per arm in all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = study / "plots"
    folder.mkdir(exist_ok=True)
    arms = [row["arm"] for row in rows]
    colors = arm_colors(arms, options.baseline)
    figures = []
    if curves["rl"]:
        figures += _rl_figures(plt, arms, curves, colors, options)
    figures += _passk_figures(plt, arms, curves["passk"], colors)
    if curves["midtrain"]:
        figures.append((_midtrain_figure(plt, curves["midtrain"], colors), "midtrain_loss.png"))
    points = [
        (row["arm"], row["probe_score"], row.get("rl_acc_final")) for row in rows if "probe_score" in row
    ]
    if points:
        figures.append((probe_scatter(plt, points, colors), "probe_vs_rl.png"))
    written = []
    for fig, name in figures:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        written.append(folder / name)
    return written


RL_PLOTS = (  # metric, axis label, file, whether the few-shot base score is drawn as a dashed line
    ("accuracy", "accuracy (training: rolling mean)", "rl_accuracy.png", True),
    ("correct_len_mean", "correct-response length (tokens)", "rl_correct_length.png", False),
    ("response_len_mean", "mean response length (tokens)", "rl_length.png", False),
)


def _rl_figures(plt, arms: list[str], curves: dict, colors: dict, options: ReadinessOptions) -> list:
    base_task = options.plot_task or next(iter(sorted(curves["base_scores"], key=_natural)), None)
    figures = []
    for key, label, name, dashed in RL_PLOTS:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        drawn = False
        for arm in arms:
            rl_rows = curves["rl"].get(arm)
            if not rl_rows or not draw_arm(
                ax, rl_rows, key, color=colors[arm], arm=arm, window=options.window, with_validation=True
            ):
                continue
            drawn = True
            if dashed and base_task and arm in curves["base_scores"].get(base_task, {}):
                ax.axhline(
                    curves["base_scores"][base_task][arm], color=colors[arm], linestyle="--", linewidth=1
                )
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel("RL step")
        ax.set_ylabel(label)
        title = label
        if dashed:
            title += "\n(markers: validation accuracy and sparse curves" + (
                f"; dashed: few-shot base score on {base_task})" if base_task else ")"
            )
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        figures.append((fig, name))
    return figures


def _passk_figures(plt, arms: list[str], passk: dict, colors: dict) -> list:
    figures = []
    for task, per_arm in sorted(passk.items()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for arm in arms:
            for when, style in (("pre", "--"), ("post", "-")):
                points = per_arm.get(arm, {}).get(when)
                if points:
                    ks = sorted(points)
                    ax.plot(ks, [points[k] for k in ks], style, marker="o", color=colors[arm],
                            label=f"{arm} ({'after' if when == 'post' else 'before'} RL)")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.set_title(f"pass@k on {task} (dashed: before RL, solid: after RL)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        figures.append((fig, f"passk_{task.replace('/', '_')}.png"))
    return figures


def probe_scatter(plt, points: list[tuple[str, float, float | None]], colors: dict):
    """Probe score (before RL) against realised final RL accuracy: one point per (arm, seed) given."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    labelled = set()
    for arm, score, accuracy in points:
        if accuracy is None:
            continue
        ax.scatter(score, accuracy, color=colors.get(arm, "C7"), label=None if arm in labelled else arm, s=30)
        labelled.add(arm)
    ax.set_xlabel("probe score before RL")
    ax.set_ylabel("final RL accuracy")
    ax.set_title("readiness probe vs realised RL outcome")
    if labelled:
        ax.legend(fontsize=7, loc="best")
    return fig


def _midtrain_figure(plt, midtrain: dict, colors: dict):
    fig, (loss_ax, lr_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for arm, mid_rows in midtrain.items():
        x_key = "tokens" if any("tokens" in r for r in mid_rows) else "step"
        scale, x_label = (1e6, "tokens (millions)") if x_key == "tokens" else (1, "step")
        for ax, key in ((loss_ax, "loss"), (lr_ax, "lr")):
            points = [
                (r[x_key] / scale, r[key])
                for r in mid_rows
                if _is_number(r.get(key)) and _is_number(r.get(x_key))
            ]
            if points:
                ax.plot(*zip(*points), color=colors.get(arm, "gray"), label=arm,
                        marker="." if len(points) == 1 else None)  # fmt: skip
            ax.set_xlabel(x_label)
    loss_ax.set_ylabel("training loss")
    loss_ax.set_title("mid-training loss")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_title("mid-training learning rate")
    for ax in (loss_ax, lr_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------------------------------------- entry
def build_readiness(study_dir: str | Path, **options) -> Path:
    """Write readiness.md/.csv/.json/.html and plots/*.png at ``study_dir``; return the path of readiness.md.

    ``options``: the fields of ``ReadinessOptions`` (arms, baseline, window, plot_task, verdict thresholds).
    """
    study = Path(study_dir)
    if not study.is_dir():
        raise MissingInputError(f"study folder not found: {study}")
    if "baseline" not in options and (imported := _imported_baseline(study)):
        options = {**options, "baseline": imported}
    opts = parse_config(options, ReadinessOptions, source="build_readiness options")
    rows, curves = build_rows(study, opts)
    if not rows:
        raise InputError(
            f"{study}: no arms found (expected midtrain/<arm>/, rl/<arm>/ or eval/<model>/ folders)"
        )
    plots = make_plots(study, rows, curves, opts)
    columns = columns_of(rows)
    with (study / "readiness.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    payload = {
        "study": str(study),
        "columns": columns,
        "rows": [{k: row.get(k) for k in columns} for row in rows],
        "suites": curves["kinds"],
        "options": opts.model_dump(),
        "plots": [f"plots/{p.name}" for p in plots],
    }
    (study / "readiness.json").write_text(json.dumps(payload, indent=2) + "\n")
    (study / "readiness.html").write_text(render_html(study, rows, curves, plots, opts))
    md = study / "readiness.md"
    md.write_text(render_markdown(study, rows, curves, plots, opts.arm_notes))
    return md


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo readiness", description="the RL-readiness table of a study")
    parser.add_argument("study", help="runs/<study>")
    parser.add_argument(
        "--arms",
        help="comma-separated row order (default: baseline first, then the study's arm order, then sorted)",
    )
    parser.add_argument("--baseline", help="name of the base-model arm (default: base)")
    parser.add_argument("options", nargs="*", help="option overrides, e.g. min_gain=0.1 window=20")
    args, extra = parser.parse_known_args(argv)  # options may come before or after the flags
    options: dict = {}
    for item in [*args.options, *extra]:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"expected key=value, got {item!r}")
        options[key] = (
            json.loads(value) if value[:1] in "0123456789-[{" or value in ("true", "false") else value
        )
    if args.arms:
        options["arms"] = [a.strip() for a in args.arms.split(",") if a.strip()]
    if args.baseline:
        options["baseline"] = args.baseline
    try:
        md = build_readiness(args.study, **options)
    except (FileNotFoundError, ValueError) as exc:  # bad folder, bad option, unreadable metrics: say which
        print(f"octo readiness: {exc}", file=sys.stderr)
        return 2
    print(md.read_text())
    print(f"written: {md} (+ .csv .json .html, plots/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
