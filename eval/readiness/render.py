"""The readiness table as files: the three markdown tables (readiness.md), readiness.csv, readiness.json and
the HTML page (its markup is ``html_page``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .html_page import render_page
from .options import ReadinessOptions
from .plots import arm_colors
from .rules import verdict
from .table import natural_key


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
    fewshot = sorted((k for k in keys if k.startswith("fewshot/")), key=natural_key)
    zero = sorted({k.split("/", 1)[1] for k in keys if k.startswith("zeroshot_")}, key=natural_key)
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
        "Verdict rules: see `eval/readiness/rules.py:verdict` and the project's docs/readiness.md.",
        "",
    ]
    return "\n".join(out)


def render_html(
    study: Path, rows: list[dict], curves: dict, plots: list[Path], options: ReadinessOptions
) -> str:
    """The self-contained HTML page (``html_page``): verdicts, then plots, then the detailed tables."""
    thresholds = json.dumps(options.model_dump(exclude={"arms", "arm_notes"}))
    colors = arm_colors([row["arm"] for row in rows], options.baseline)
    tables = markdown_tables(rows, curves)
    return render_page(study.name, rows, tables, plots, colors, verdict.__doc__ or "", thresholds,
                       arm_notes=options.arm_notes)  # fmt: skip


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """readiness.csv: one row per arm, every column (empty where an arm has no value)."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})


def readiness_json(
    study: Path,
    rows: list[dict],
    columns: list[str],
    curves: dict,
    plots: list[Path],
    options: ReadinessOptions,
) -> str:
    """readiness.json: the rows, the suites' kinds, the options used and the plots' paths."""
    payload = {
        "study": str(study),
        "columns": columns,
        "rows": [{k: row.get(k) for k in columns} for row in rows],
        "suites": curves["kinds"],
        "options": options.model_dump(),
        "plots": [f"plots/{p.name}" for p in plots],
    }
    return json.dumps(payload, indent=2) + "\n"
