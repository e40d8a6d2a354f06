"""``octo readiness runs/<study>``: the RL-readiness table and plots that compare a study's checkpoints.

Reads what the other stages wrote (nothing is recomputed):

    midtrain/<arm>/metrics.jsonl            step, tokens, loss, lr, tokens_per_s
    rl/<arm>/metrics.jsonl                  one row per RL step (docs/rl.md)
    eval/<arm>/<suite>/results.json         the checkpoint before RL   (eval.runner format)
    eval/<arm>-rl/<suite>/results.json      the checkpoint after RL

and writes ``readiness.md/.csv/.json/.html`` and ``plots/*.png`` at the study root: one row per arm (the base
model and each mid-training arm). Suites are classified by what they ran: n > 1 samples -> pass@k; otherwise
any few-shot task -> few-shot; otherwise zero-shot. Missing pieces (an arm without RL, a suite not run) leave
empty cells and a note. The verdict rules are in ``rules.verdict`` (and docs/readiness.md).

Modules: ``options`` (ReadinessOptions), ``rules`` (RL summary and verdict), ``table`` (rows from the study
folder), ``render`` (markdown and the HTML page's tables), ``html_page`` (the self-contained page), ``plots``
and ``curve_plots`` (matplotlib, imported only when drawing), ``build`` (build_readiness), ``cli`` (argparse).
"""

from .build import build_readiness
from .cli import main
from .options import ReadinessOptions
from .plots import RL_PLOTS, arm_colors, make_plots, probe_scatter
from .render import markdown_tables, render_html, render_markdown
from .rules import rl_summary, verdict
from .table import build_rows, columns_of, discover_arms, load_evals, suite_kind

__all__ = [
    "RL_PLOTS",
    "ReadinessOptions",
    "arm_colors",
    "build_readiness",
    "build_rows",
    "columns_of",
    "discover_arms",
    "load_evals",
    "main",
    "make_plots",
    "markdown_tables",
    "probe_scatter",
    "render_html",
    "render_markdown",
    "rl_summary",
    "suite_kind",
    "verdict",
]
