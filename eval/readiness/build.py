"""``build_readiness``: read a study folder, write readiness.md/.csv/.json/.html and plots/*.png."""

from __future__ import annotations

from pathlib import Path

from octo.config import parse_config
from octo.errors import InputError, MissingInputError

from .options import ReadinessOptions
from .plots import make_plots
from .render import readiness_json, render_html, render_markdown, write_csv
from .table import build_rows, columns_of, imported_baseline


def build_readiness(study_dir: str | Path, **options) -> Path:
    """Write readiness.md/.csv/.json/.html and plots/*.png at ``study_dir``; return the path of readiness.md.

    ``options``: the fields of ``ReadinessOptions`` (arms, baseline, window, plot_task, verdict thresholds).
    """
    study = Path(study_dir)
    if not study.is_dir():
        raise MissingInputError(f"study folder not found: {study}")
    if "baseline" not in options and (imported := imported_baseline(study)):
        options = {**options, "baseline": imported}
    opts = parse_config(options, ReadinessOptions, source="build_readiness options")
    rows, curves = build_rows(study, opts)
    if not rows:
        raise InputError(
            f"{study}: no arms found (expected midtrain/<arm>/, rl/<arm>/ or eval/<model>/ folders)"
        )
    plots = make_plots(study, rows, curves, opts)
    columns = columns_of(rows)
    write_csv(study / "readiness.csv", rows, columns)
    (study / "readiness.json").write_text(readiness_json(study, rows, columns, curves, plots, opts))
    (study / "readiness.html").write_text(render_html(study, rows, curves, plots, opts))
    md = study / "readiness.md"
    md.write_text(render_markdown(study, rows, curves, plots, opts.arm_notes))
    return md
