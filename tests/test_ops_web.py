"""The operations dashboard (/ops) in real Chromium against a live server.

The live server's database holds the known data set of ``tests/ops_data.py``. A reviewer
signs in with a key; at 1280x800 and at 390x844 every chart must have been drawn with
data: its figure says how many points ``ops.js`` gave Chart.js (``data-rendered``), the
Chart.js instance holds that many values, and the canvas has painted pixels. The page
runs under the strict CSP (``script-src 'self'``; the vendored Chart.js), so a console
error (a CSP violation among them) fails the test. Screenshots go to
``test-artifacts/ops-1280.png`` and ``ops-390.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    DESKTOP,
    PHONE,
    accessibility_problems,
    chromium,
    live_server,
    overflowing,
    screenshot,
    staff_key,
)
from tests.ops_data import SEEDS, seed
from tests.requires import require_chromium

pytestmark = pytest.mark.browser
CHARTS = (
    "volume-reason",
    "volume-category",
    "outcomes",
    "trust",
    "grades-category",
    "grades-sku",
    "top-rate",
    "top-damage",
    "recovery",
    "sustainability",
    "workload",
    "queue-age",
    "agreement",
    "fraud-flags",
    "repeat-returners",
)
# Per chart: the data values Chart.js holds (non-zero ones, as ops.js counts them) and
# whether the canvas has painted pixels: read in the page, compared in the test.
CHART_STATE = """() => [...document.querySelectorAll('figure.chart')].map((fig) => {
  const canvas = fig.querySelector('canvas');
  const chart = window.Chart.getChart(canvas);
  const values = chart ? chart.data.datasets.flatMap((d) => d.data)
    .filter((v) => v !== 0 && v != null).length : 0;
  let painted = 0;
  if (canvas.width && canvas.height) {
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) painted++;
  }
  return {id: fig.dataset.chart, rendered: fig.dataset.rendered || '', values, painted,
          width: canvas.getBoundingClientRect().width};
})"""


def _watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
    )
    return errors


def _check_charts(page: Any, viewport: dict[str, int]) -> None:
    states = page.evaluate(CHART_STATE)
    assert [s["id"] for s in states] == list(CHARTS)
    for s in states:
        assert s["rendered"] == f"{s['values']} points", s
        assert s["values"] > 0, s
        assert s["painted"] > 100, s  # the canvas is not blank
        assert 0 < s["width"] <= viewport["width"], s


def test_every_chart_renders_with_data_on_desktop_and_phone(
    tmp_path: Path, tiny_model: Path
) -> None:
    require_chromium()
    with live_server(tmp_path / "server", tiny_model) as server:
        seed(server.database_url, datetime.now(UTC))
        key = staff_key(server, "reviewer")
        with chromium() as browser:
            for viewport, name in ((DESKTOP, "ops-1280"), (PHONE, "ops-390")):
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
                errors = _watch(page)
                page.goto(f"{server.base}/ops")
                page.wait_for_selector("#signin:not([hidden])")
                assert accessibility_problems(page) == []
                page.fill("#ops-key", key)
                page.click("#signin-submit")
                page.wait_for_selector('body[data-loaded="true"]')
                assert page.inner_text("#totals").count(str(len(SEEDS))) >= 1
                _check_charts(page, viewport)
                assert accessibility_problems(page) == []
                assert overflowing(page) == []
                screenshot(page, name)
                assert errors == []
                context.close()


def test_a_bad_filter_shows_the_code_and_sentence(tmp_path: Path, tiny_model: Path) -> None:
    require_chromium()
    with live_server(tmp_path / "server", tiny_model) as server:
        key = staff_key(server, "reviewer")
        with chromium() as browser:
            page = browser.new_page(viewport=DESKTOP)
            page.goto(f"{server.base}/ops")
            page.wait_for_selector("#signin:not([hidden])")
            page.fill("#ops-key", key)
            page.click("#signin-submit")
            page.wait_for_selector('body[data-loaded="true"]')
            page.fill("#f-from", "2026-03-05")
            page.fill("#f-to", "2026-03-01")
            page.click("#apply")
            page.wait_for_selector('body[data-loaded="error"]')
            assert "(invalid_range)" in page.inner_text("#filter-error")
