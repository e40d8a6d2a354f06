"""``octo probe validate RUNS_DIR``: how well the readiness probe's score ranks the arms' realised RL outcomes.

RUNS_DIR is one study folder or a folder of study folders (one per seed, e.g. ``runs/probe_sweep/s0``). For
each arm it reads ``probe/<arm>/probe.json`` (the prediction, written before RL) and the readiness rows of the
same folder (``eval.readiness.build_rows``: the realised outcome). Outcomes: (a) the final RL accuracy and (b)
the RL gain on held-out sampled pass@1 (the first sampled suite, after minus before RL). Predictors: the probe's
fixed score, a combination of its signals fitted leave-one-arm-out (ridge; no arm is predicted by a fit that saw
it), the probe's pass@1 alone, and the naive ones (few-shot and 0-shot greedy accuracy before RL). Spearman and
Kendall are computed on arm means over seeds, with percentile bootstrap intervals over arms, and separately per
seed (the spread). The probe's compute is reported as a share of the RL generation it predicts.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from octo.errors import InputError, MissingInputError
from octo.jsonl import read_json, read_jsonl
from octo.layout import PROBE_FILE, StudyLayout

from .readiness import ReadinessOptions, arm_colors, build_rows, probe_scatter

FITTED_SIGNALS = ("pass_at_1", "pass_at_G", "learnable_fraction", "final_boxed_rate", "reference_loss")
OUTCOMES = {"rl_acc_final": "final RL accuracy", "heldout_gain": "RL gain on held-out sampled pass@1"}
NAIVE = {"fewshot_pre": "few-shot accuracy before RL", "zeroshot_pre": "0-shot greedy accuracy before RL"}
RIDGE = 1e-3  # keeps the leave-one-arm-out fit defined with fewer arms than signals


def study_roots(runs: Path) -> list[Path]:
    """RUNS_DIR itself when it holds probe/, else each child folder that does (a seed each)."""
    if not runs.is_dir():
        raise MissingInputError(f"runs folder not found: {runs}")
    if (runs / "probe").is_dir():
        return [runs]
    roots = sorted(p for p in runs.iterdir() if (p / "probe").is_dir())
    if not roots:
        raise InputError(f"{runs}: no probe/ folder in it or in any child folder (run the study with probe:)")
    return roots


def _first(row: dict, prefix: str, suffix: str = "") -> float | None:
    keys = sorted(k for k in row if k.startswith(prefix) and k.endswith(suffix) and row[k] is not None)
    return row[keys[0]] if keys else None


def _rl_generated(root: Path, arm: str) -> float | None:
    path = StudyLayout(root).rl_metrics(arm)
    rows = list(read_jsonl(path)) if path.is_file() else []
    tokens = [r["response_len_mean"] * r["completions"] for r in rows if r.get("response_len_mean") is not None
              and r.get("completions")]  # fmt: skip
    return float(sum(tokens)) if tokens else None


def arm_records(root: Path) -> list[dict]:
    """One record per probed arm of one study folder: its probe signals and realised outcomes."""
    layout, records = StudyLayout(root), []
    rows = {r["arm"]: r for r in build_rows(root, ReadinessOptions())[0]}
    for probe_dir in sorted((root / "probe").iterdir()):
        arm = probe_dir.name
        if not (probe_dir / PROBE_FILE).is_file() or arm not in rows:
            continue
        probe, row = read_json(layout.probe_file(arm)), rows[arm]
        pre, post = _first(row, "passk_pre/", "/pass@1"), _first(row, "passk_post/", "/pass@1")
        records.append({
            "seed_dir": root.name, "arm": arm, "score": probe["prediction"]["score"],
            "verdict": probe["prediction"]["verdict"], **{s: probe["signals"].get(s) for s in FITTED_SIGNALS},
            "rl_acc_final": row.get("rl_acc_final"),
            "heldout_gain": post - pre if pre is not None and post is not None else None,
            "fewshot_pre": _first(row, "fewshot/"), "zeroshot_pre": _first(row, "zeroshot_pre/"),
            "probe_tokens": probe["budget"]["spent_tokens"], "rl_budget_tokens": probe["budget"]["rl_generation_tokens"],
            "rl_generated_tokens": _rl_generated(root, arm),
        })  # fmt: skip
    return records


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the average ranks (ties share a rank), as scipy.stats.spearmanr."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    return float((rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry)))


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b from the pairwise sign matrices (ties in either variable corrected), as scipy.stats.kendalltau;
    a few arms make the O(n^2) matrices cheap, and a bootstrap calls this thousands of times."""
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    return float((sx * sy).sum() / math.sqrt(np.abs(sx).sum() * np.abs(sy).sum()))


def rank_correlations(x, y) -> dict:
    """Spearman and Kendall (tau-b) of paired values; None where undefined (under 3 pairs, or a constant side)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": None, "kendall": None}
    return {"spearman": _spearman(x, y), "kendall": _kendall_tau_b(x, y)}


def bootstrap_intervals(x: list[float], y: list[float], draws: int = 1000, seed: int = 0) -> dict:
    """95% percentile intervals of both correlations, resampling arms with replacement (undefined draws skipped)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    got: dict[str, list[float]] = {"spearman": [], "kendall": []}
    for _ in range(draws if len(x) >= 3 else 0):
        pick = rng.integers(0, len(x), len(x))
        for name, value in rank_correlations(x[pick], y[pick]).items():
            if value is not None:
                got[name].append(value)
    return {name: [round(float(np.percentile(v, 2.5)), 6), round(float(np.percentile(v, 97.5)), 6)] if v else None
            for name, v in got.items()}  # fmt: skip


def arm_means(records: list[dict], key: str) -> dict[str, float]:
    """Each arm's mean of ``key`` over its seeds (seeds without the value left out)."""
    values: dict[str, list[float]] = {}
    for r in records:
        if r.get(key) is not None:
            values.setdefault(r["arm"], []).append(float(r[key]))
    return {arm: float(np.mean(v)) for arm, v in values.items()}


def leave_one_arm_out(records: list[dict], outcome: str) -> dict[str, float]:
    """Each arm's outcome predicted by a ridge fit of the probe's signals on the *other* arms (arm means)."""
    signals = {s: arm_means(records, s) for s in FITTED_SIGNALS}
    target = arm_means(records, outcome)
    arms = [a for a in target if all(a in signals[s] for s in FITTED_SIGNALS)]
    features = np.array([[1.0] + [signals[s][a] for s in FITTED_SIGNALS] for a in arms])
    y = np.array([target[a] for a in arms])
    out = {}
    for i, arm in enumerate(arms):
        keep = [j for j in range(len(arms)) if j != i]
        if len(keep) < 2:
            continue
        a, b = features[keep], y[keep]
        weights = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ b)
        out[arm] = float(features[i] @ weights)
    return out


def _per_seed(records: list[dict], predictor: str, outcome: str) -> dict:
    rhos = []
    for seed in sorted({r["seed_dir"] for r in records}):
        pairs = [(r[predictor], r[outcome]) for r in records
                 if r["seed_dir"] == seed and r.get(predictor) is not None and r.get(outcome) is not None]  # fmt: skip
        rho = rank_correlations([p for p, _ in pairs], [o for _, o in pairs])["spearman"]
        if rho is not None:
            rhos.append(rho)
    if not rhos:
        return {"seeds": 0}
    return {"seeds": len(rhos), "spearman_min": min(rhos), "spearman_max": max(rhos),
            "spearman_sd": float(np.std(rhos, ddof=1)) if len(rhos) > 1 else 0.0}  # fmt: skip


def predictor_row(
    records: list[dict], name: str, predicted: dict[str, float], outcome: str, per_seed_key=None
):
    target = arm_means(records, outcome)
    arms = [a for a in predicted if a in target]
    x, y = [predicted[a] for a in arms], [target[a] for a in arms]
    row = {"predictor": name, "arms": len(arms), **rank_correlations(x, y), "ci95": bootstrap_intervals(x, y)}
    row["per_seed"] = _per_seed(records, per_seed_key, outcome) if per_seed_key else {"seeds": 0}
    return row


def validate(runs: str | Path) -> dict:
    """The validation report of RUNS_DIR (see the module docstring); also written as probe_validation.json/.md."""
    roots = study_roots(Path(runs))
    records = [r for root in roots for r in arm_records(root)]
    if not records:
        raise InputError(f"{runs}: no arm has both a probe.json and readiness inputs")
    tables = {}
    for outcome, label in OUTCOMES.items():
        rows = [
            predictor_row(
                records, "probe score (fixed weights)", arm_means(records, "score"), outcome, "score"
            ),
            predictor_row(
                records,
                "probe signals, ridge fitted leave-one-arm-out",
                leave_one_arm_out(records, outcome),
                outcome,
            ),  # fmt: skip
            predictor_row(
                records, "probe pass@1 alone", arm_means(records, "pass_at_1"), outcome, "pass_at_1"
            ),
        ]
        rows += [
            predictor_row(records, text, arm_means(records, key), outcome, key) for key, text in NAIVE.items()
        ]
        tables[outcome] = {"label": label, "rows": rows}
    probe_tokens = sum(r["probe_tokens"] for r in records)
    actual = [r["rl_generated_tokens"] for r in records]
    compute = {
        "probe_generated_tokens": probe_tokens,
        "share_of_rl_budget": probe_tokens / sum(r["rl_budget_tokens"] for r in records),
        "share_of_rl_generated": probe_tokens / sum(actual) if all(a for a in actual) else None,
    }
    return {"runs": str(runs), "seed_dirs": [p.name for p in roots], "arms": sorted({r["arm"] for r in records}),
            "records": records, "tables": tables, "compute": compute,
            "note": "the fitted predictor's weights never see the arm they predict (leave-one-arm-out ridge on "
                    "arm means); the fixed score uses preset weights and no RL outcome"}  # fmt: skip


def _num(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict) -> str:
    lines = [f"# Probe validation: {report['runs']}", "",
             f"{len(report['arms'])} arms x {len(report['seed_dirs'])} seed folder(s). Correlations are over arm "
             "means; 95% intervals bootstrap the arms; per-seed: Spearman within each seed (min..max, sd).",
             f"Note: {report['note']}.", ""]  # fmt: skip
    for table in report["tables"].values():
        lines += [f"## vs {table['label']}", "",
                  "| predictor | arms | Spearman | 95% CI | Kendall | 95% CI | per-seed Spearman |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for row in table["rows"]:
            ci = {k: (f"[{v[0]:.2f}, {v[1]:.2f}]" if v else "") for k, v in row["ci95"].items()}
            seeds = row["per_seed"]
            spread = (f"{seeds['spearman_min']:.2f}..{seeds['spearman_max']:.2f} (sd {seeds['spearman_sd']:.2f})"
                      if seeds["seeds"] else "")  # fmt: skip
            lines.append(f"| {row['predictor']} | {row['arms']} | {_num(row['spearman'])} | {ci['spearman']} | "
                         f"{_num(row['kendall'])} | {ci['kendall']} | {spread} |")  # fmt: skip
        lines.append("")
    c = report["compute"]
    actual = f", {c['share_of_rl_generated']:.2%} of what RL generated" if c["share_of_rl_generated"] else ""
    lines.append(f"Probe compute: {c['probe_generated_tokens']} generated tokens, "
                 f"{c['share_of_rl_budget']:.2%} of the RL generation budget{actual}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_scatter(report: dict, path: Path) -> Path:
    """probe_vs_rl.png: probe score against final RL accuracy, one point per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["arm"], r["score"], r["rl_acc_final"]) for r in report["records"]]
    fig = probe_scatter(plt, points, arm_colors(report["arms"], None))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="octo probe validate", description=__doc__)
    parser.add_argument("runs", help="a study folder, or a folder of study folders (one per seed)")
    args = parser.parse_args(argv)
    report = validate(args.runs)
    out = Path(args.runs)
    (out / "probe_validation.json").write_text(json.dumps(report, indent=2) + "\n")
    text = render_markdown(report)
    (out / "probe_validation.md").write_text(
        text + "\n![probe score vs final RL accuracy](probe_vs_rl.png)\n"
    )
    write_scatter(report, out / "probe_vs_rl.png")
    print(text + f"written: {out / 'probe_validation.md'} (+ .json)")
    return 0
