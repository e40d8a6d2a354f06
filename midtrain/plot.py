"""The loss-and-LR plot of a run (``metrics.png``), from its ``metrics.jsonl`` rows."""

from __future__ import annotations

from pathlib import Path


def plot_metrics(rows: list[dict], out: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    tokens = [r["tokens"] / 1e6 for r in rows]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(7, 5), height_ratios=(3, 1.4))
    ax_loss.plot(tokens, [r["loss"] for r in rows], lw=1.2)
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    ax_lr.plot(tokens, [r["lr"] for r in rows], color="tab:orange", lw=1.2)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("tokens (M)")
    ax_lr.grid(alpha=0.3)
    # mark stage changes
    for prev, row in zip(rows, rows[1:]):
        if row.get("stage") != prev.get("stage"):
            for ax in (ax_loss, ax_lr):
                ax.axvline(prev["tokens"] / 1e6, color="grey", ls="--", lw=0.8)
    if title:
        ax_loss.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
