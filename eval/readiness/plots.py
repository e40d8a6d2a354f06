"""The study's plots (``plots/*.png``): RL curves, pass@k, mid-training loss, probe vs outcome; one colour per
arm in all of them and in the HTML page. matplotlib is imported only when plots are drawn."""

from __future__ import annotations

from pathlib import Path

from ..curves import is_number
from .curve_plots import draw_arm
from .options import ReadinessOptions
from .table import natural_key


def arm_colors(arms: list[str], baseline: str | None) -> dict[str, str]:
    """One colour per arm, the same in every plot and in the HTML verdict list (the baseline in black).

    Up to 10 arms get matplotlib's default cycle (tab10); more get tab20, so a sweep's 12 arms stay distinct."""
    import matplotlib
    from matplotlib.colors import to_hex

    palette = matplotlib.colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {
        arm: "#000000" if arm == baseline else to_hex(palette(i % palette.N)) for i, arm in enumerate(arms)
    }


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
    base_task = options.plot_task or next(iter(sorted(curves["base_scores"], key=natural_key)), None)
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
                if is_number(r.get(key)) and is_number(r.get(x_key))
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
