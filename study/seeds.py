"""``octo study seeds DIR...``: the readiness numbers of the same study run with several seeds, as mean ± sd.

Each DIR is a study folder with a ``readiness.json`` (e.g. ``runs/demo``, ``runs/demo-s1``, ``runs/demo-s2``
from ``make demo ARGS="seed=1 out_dir=runs/demo-s1"``). A difference between arms is worth reading when it is
larger than these seed-to-seed spreads.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

# readiness.json column (prefix match) -> header
COLUMNS = {
    "zeroshot_pre/": "0-shot before RL",
    "passk_pre/": "pass@1 before RL",
    "rl_acc_start": "RL acc start",
    "rl_acc_final": "RL acc final",
    "rl_gain": "RL gain",
    "passk_post/": "pass@1 after RL",
    "zeroshot_post/": "0-shot after RL",
    "zero_std_final": "zero-std groups",
}


def _pick(columns: list[str], prefix: str) -> str | None:
    """The first column with this prefix (for pass@k: its pass@1)."""
    matches = [
        c
        for c in columns
        if c.startswith(prefix) and (not prefix.startswith("passk") or c.endswith("pass@1"))
    ]
    return matches[0] if matches else None


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def aggregate(folders: list[Path]) -> str:
    tables = [json.loads((f / "readiness.json").read_text()) for f in folders]
    columns = tables[0]["columns"]
    picked = {header: _pick(columns, prefix) for prefix, header in COLUMNS.items()}
    picked = {h: c for h, c in picked.items() if c}
    # The RL effect on held-out sampled accuracy, paired within each seed: its spread is what says whether RL
    # helped, and it is smaller than the spreads of the before and after columns.
    paired = ("pass@1 before RL", "pass@1 after RL")
    has_effect = all(h in picked for h in paired)
    arms = [row["arm"] for row in tables[0]["rows"]]
    lines = [
        f"Seeds: {len(folders)} ({', '.join(str(f) for f in folders)}); cells are mean ± sd over seeds.",
        "",
        "| arm | "
        + " | ".join(f"{h} ({c.split('/', 1)[-1]})" if "/" in c else h for h, c in picked.items())
        + (" | RL effect on pass@1 (after - before)" if has_effect else "")
        + " | verdicts |",
        "|---" * (len(picked) + 2 + has_effect) + "|",
    ]
    for arm in arms:
        rows = [next((r for r in t["rows"] if r["arm"] == arm), None) for t in tables]
        rows = [r for r in rows if r is not None]
        cells = [_cell([r[c] for r in rows if isinstance(r.get(c), (int, float))]) for c in picked.values()]
        if has_effect:
            before, after = (picked[h] for h in paired)
            both = [r for r in rows if all(isinstance(r.get(c), (int, float)) for c in (before, after))]
            cells.append(_cell([r[after] - r[before] for r in both]))
        verdicts = Counter(r.get("verdict", "") for r in rows)
        lines.append(
            f"| {arm} | "
            + " | ".join(cells)
            + " | "
            + ", ".join(f"{v} x{n}" for v, n in verdicts.items())
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="octo study seeds", description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "readiness.json").is_file()]
    if missing:
        parser.error(f"no readiness.json in: {', '.join(missing)}")
    text = aggregate(args.folders)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0
