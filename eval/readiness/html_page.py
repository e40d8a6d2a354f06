"""``readiness.html``: the page a researcher sends to a colleague, self-contained (no external assets).

Order: the verdicts (one line per arm, with its colour), then the plots (inline PNGs), then the detailed
tables, the missing pieces and the verdict rules. Each arm keeps one colour in the verdict list and every
plot (``eval.readiness.arm_colors``). Readable at 1280 px: the page never scrolls sideways; a table wider
than the page scrolls inside its own box. Tested in a real headless Chromium (tests/test_readiness_browser.py).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:24px 32px;
  max-width:1216px;color:#222;line-height:1.4}
h1{margin:0 0 4px}h2{margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.ready{background:#d9f2d9}.unstable{background:#fde7c8}.not-ready{background:#f8d0d0}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.verdict{font-weight:600;white-space:nowrap}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(880px,1fr));gap:16px}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:13px;color:#555}
pre{white-space:pre-wrap;font-size:12px;background:#f8f8f8;padding:8px}
"""


def _css_class(verdict: str) -> str:
    return verdict.replace(" ", "-").replace("/", "")


def _table(head: list[str], cells: list[list[str]], classes: list[str], table_id: str) -> str:
    out = [f"<div class='scroll'><table id='{table_id}'><thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row, css in zip(cells, classes):
        tds = "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in row)
        out.append(f"<tr class='{css}'>{tds}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def verdict_table(rows: list[dict], colors: dict[str, str]) -> str:
    """One line per arm: colour, verdict, reason and the RL accuracy it rests on."""
    out = ["<div class='scroll'><table id='verdicts'><thead><tr>"]
    out += [f"<th>{h}</th>" for h in ("arm", "verdict", "reason", "RL accuracy start → final", "gain")]
    out.append("</tr></thead><tbody>")
    for row in rows:
        arm, color = html.escape(row["arm"]), colors.get(row["arm"], "#888888")
        start, final = row.get("rl_acc_start"), row.get("rl_acc_final")
        acc = f"{start:.2f} → {final:.2f}" if start is not None and final is not None else ""
        gain = f"{row['rl_gain']:+.2f}" if row.get("rl_gain") is not None else ""
        out.append(
            f"<tr class='{_css_class(row['verdict'])}'><td><span class='swatch' style='background:{color}' "
            f"data-color='{color}'></span>{arm}</td><td class='verdict'>{html.escape(row['verdict'])}</td>"
            f"<td>{html.escape(row['reason'])}</td><td>{acc}</td><td>{gain}</td></tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def render_page(
    title: str,
    rows: list[dict],
    tables: list[tuple[str, list[str], list[list[str]]]],
    plots: list[Path],
    colors: dict[str, str],
    rules: str,
    thresholds: str,
    arm_notes: dict[str, str] | None = None,
) -> str:
    """The whole page. ``tables``: (title, header, cells) with one cells row per entry of ``rows``;
    ``arm_notes``: what each model is (for example which checkpoint a 'base' arm really is)."""
    classes = [_css_class(row["verdict"]) for row in rows]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>RL readiness: {html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>RL readiness: {html.escape(title)}</h1>",
        f"<p class='sub'>{len(rows)} arms · verdicts first, then the plots, then the detailed tables</p>",
        *(
            ["<ul class='arm-notes'>"]
            + [f"<li><b>{html.escape(a)}</b>: {html.escape(n)}</li>" for a, n in (arm_notes or {}).items()]
            + ["</ul>"]
            if arm_notes
            else []
        ),
        "<h2 id='verdicts-title'>Verdicts</h2>",
        verdict_table(rows, colors),
    ]
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>")
        for plot in plots:
            data = base64.b64encode(plot.read_bytes()).decode()
            name = html.escape(plot.stem)
            parts.append(
                f"<figure><img alt='{name}' src='data:image/png;base64,{data}'><figcaption>{name}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("<h2>Detailed tables</h2>")
    for i, (table_title, head, cells) in enumerate(tables):
        parts.append(f"<h3>{html.escape(table_title)}</h3>" + _table(head, cells, classes, f"details-{i}"))
    notes = [(row["arm"], row["notes"]) for row in rows if row.get("notes")]
    if notes:
        parts.append(
            "<h2>Missing pieces</h2><ul>"
            + "".join(f"<li>{html.escape(a)}: {html.escape(n)}</li>" for a, n in notes)
            + "</ul>"
        )
    parts.append(
        f"<h2>Verdict rules</h2><pre>{html.escape(rules)}</pre><p>Thresholds: {html.escape(thresholds)}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)
