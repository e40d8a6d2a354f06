"""readiness.html opened in a real headless Chromium: no console error, no external request, every image
decodes, every table has its rows, the verdicts come first, each arm keeps one colour, nothing scrolls
sideways at 1280 px. A screenshot is saved in the test's tmp folder."""

from __future__ import annotations

import os

import pytest
from browser_helpers import Browser, chromium
from test_readiness import study  # noqa: F401  (the fixture: a study folder with five arms)

from eval.readiness import arm_colors, build_readiness

ARMS = ["base", "control", "mathweb", "mathqa", "mathqa_instr"]

# `make test` installs chromium and sets OCTO_REQUIRE_BROWSER: there a missing browser is a failure
if chromium() is None and os.environ.get("OCTO_REQUIRE_BROWSER"):
    raise RuntimeError("chromium not found at /usr/bin/chromium: run `make setup-browser`")
pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium not installed (make setup-browser)")

LAYOUT = """(() => {
  const heads = [...document.querySelectorAll('h2')].map(h => h.textContent);
  const tables = [...document.querySelectorAll('table')].map(t => ({
    id: t.id, rows: t.tBodies[0] ? t.tBodies[0].rows.length : 0,
    cells: [...t.querySelectorAll('tbody td')].filter(td => td.textContent.trim()).length}));
  const images = [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight,
    shown: i.width, src: i.src.slice(0, 21)}));
  const swatches = [...document.querySelectorAll('#verdicts .swatch')].map(s =>
    [s.parentElement.textContent.trim(), getComputedStyle(s).backgroundColor]);
  const order = ['verdicts-title', 'details-0'].map(id => document.getElementById(id).getBoundingClientRect().top);
  const firstPlot = document.images[0].getBoundingClientRect().top;
  return {heads, tables, images, swatches, order, firstPlot,
          scrollWidth: document.documentElement.scrollWidth, bodyFont: getComputedStyle(document.body).fontSize};
})()"""


def rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_report_in_headless_chromium(study, tmp_path):  # noqa: F811
    build_readiness(study, arms=ARMS)
    page = study / "readiness.html"
    with Browser(width=1280) as browser:
        browser.open(page)
        layout = browser.eval(LAYOUT)
        shot = browser.screenshot(tmp_path / "readiness.png")
        errors, requests = browser.errors, browser.requests
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests  # self-contained
    assert layout["heads"][:3] == ["Verdicts", "Plots", "Detailed tables"]
    verdicts_top, details_top = layout["order"]
    assert verdicts_top < layout["firstPlot"] < details_top  # verdicts, then plots, then the tables

    assert len(layout["images"]) == 5
    for image in layout["images"]:
        assert image["w"] > 0 and image["h"] > 0, image  # decoded
        # inline PNG, shown at its own size (not scaled down to unreadable text)
        assert image["src"] == "data:image/png;base64" and image["shown"] == image["w"], image
    tables = {t["id"]: t for t in layout["tables"]}
    assert set(tables) == {"verdicts", "details-0", "details-1", "details-2"}
    for table in tables.values():
        assert table["rows"] == len(ARMS) and table["cells"] >= len(ARMS), table

    colors = arm_colors(ARMS, "base")
    assert layout["swatches"] == [[arm, rgb(colors[arm])] for arm in ARMS]
    assert len(set(colors.values())) == len(ARMS)
    assert layout["scrollWidth"] <= 1280  # readable at 1280 px: no sideways scrolling
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:4] == b"\x89PNG"


def test_a_broken_page_fails_the_check(tmp_path):
    """The checks can fail: a script error, a console error and an image that does not decode are all seen."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><img src='data:image/png;base64,AAAA'><script>console.error('boom');"
                    "undefined_fn();</script></body></html>")  # fmt: skip
    with Browser(width=1280) as browser:
        browser.open(page)
        widths = browser.eval("[...document.images].map(i => i.naturalWidth)")
        errors = browser.errors
    assert widths == [0]
    assert any("boom" in e for e in errors) and any("undefined_fn" in e for e in errors)
