"""The dashboard as business users meet it: served by Voilà, drawn in headless Chromium, offline."""

from __future__ import annotations

import json
import time

import pytest

import convlib
from convlib.countries import country_label
from convlib.periods import resolve_preset

from .browser import ARTIFACTS, chromium_or_skip, chromium_page, screenshot, voila_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def visible_rows(page) -> list[list[str]]:
    """The text of the DataTable rows that SlickGrid has drawn (it draws the visible ones)."""
    return page.evaluate(
        r"""() => {
        const rows = [];
        const walk = (root) => {
          for (const el of root.querySelectorAll('*')) {
            if (el.classList && el.classList.contains('slick-row')) {
              // SlickGrid places rows and cells absolutely: order by position, not DOM order
              const column = (c) => Number([...c.classList].find(k => /^l\d+$/.test(k)).slice(1));
              const cells = [...el.querySelectorAll('.slick-cell')]
                .sort((a, b) => column(a) - column(b));
              rows.push([parseFloat(el.style.top) || 0, cells.map(c => c.textContent.trim())]);
            }
            if (el.shadowRoot) walk(el.shadowRoot);
          }
        };
        walk(document);
        return rows.sort((a, b) => a[0] - b[0]).map(r => r[1]);
      }"""
    )


def test_dashboard_in_chromium(sample_dir):
    chromium_or_skip()
    source = convlib.open_source(sample_dir)
    first, last = source.data_range()
    start, end = resolve_preset("last-90-days", last, first)
    expected = source.metrics(start, end, breakdown="country", granularity="week")
    expected = expected.assign(series=expected["country"].map(country_label))
    expected = expected.sort_values(["period", "series"]).reset_index(drop=True)

    with voila_dashboard(sample_dir) as url, chromium_page() as (page, watch):
        began = time.monotonic()
        page.goto(url)
        page.wait_for_selector("canvas", timeout=90_000)
        page.wait_for_selector(".convlib-headline", timeout=30_000)
        first_chart_s = time.monotonic() - began
        time.sleep(1.0)  # let BokehJS finish painting before the picture
        screenshot(page, "dashboard-initial")
        assert page.locator(".convlib-footer").inner_text().startswith("Data as of")

        page.get_by_role("button", name="Country", exact=True).click()
        page.get_by_role("button", name="Table", exact=True).click()
        page.wait_for_function(
            """() => document.body.innerHTML.length > 0 &&
                     [...document.querySelectorAll('.convlib-download')].length > 0""",
            timeout=30_000,
        )
        deadline = time.monotonic() + 30
        rows: list[list[str]] = []
        while time.monotonic() < deadline:
            rows = visible_rows(page)
            if rows and any("United Kingdom (GB)" in " ".join(r) for r in rows):
                break
            time.sleep(0.3)
        screenshot(page, "dashboard-table-by-country")
        assert rows, "the table drew no rows"
        for shown, (_, want) in zip(rows, expected.iterrows(), strict=False):
            period, series, rate, low, high, _mean, _median, delivered, converted, _p = shown
            assert high == f"{want['rate_ci_high'] * 100:.2f}%"
            assert period == want["period"].isoformat()
            assert series == want["series"]
            assert delivered == f"{int(want['delivered']):,}"
            assert converted == f"{int(want['converted']):,}"
            assert rate == f"{want['conversion_rate'] * 100:.2f}%"
            assert low == f"{want['rate_ci_low'] * 100:.2f}%"

        assert watch.external == [], f"requests left the machine: {watch.external}"
        assert watch.errors == [], f"page errors: {watch.errors}"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dashboard-timing.json").write_text(
        json.dumps({"request_to_first_chart_s": round(first_chart_s, 2)}) + "\n"
    )
