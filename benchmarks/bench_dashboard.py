"""Benchmark the dashboard: kernel time of a control change, and page request to first chart.

1. In the controller (no browser): open a source, build the dashboard, then apply a sequence
   of control changes (breakdown, granularity, filters, window, metric, period) and record the
   kernel time of each refresh (``ConversionDashboard.timings_ms``): median, p90, max.
2. In headless Chromium: serve the dashboard with Voilà (preheated kernel), wait until the
   pool is filled, then time page request -> first drawn chart, several times.

Usage: ``python benchmarks/bench_dashboard.py [--source DIR] [--browser-source DIR]``.
Writes ``benchmarks/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHANGES = [
    ("w_breakdown", "country"), ("w_granularity", "day"), ("w_breakdown", "campaign"),
    ("w_granularity", "week"), ("w_breakdown", "none"), ("w_window", "24h"),
    ("w_breakdown", "channel"), ("w_country", ["Netherlands (NL)"]), ("w_metric", "time_mean"),
    ("w_country", []), ("w_window", "7d"), ("w_metric", "rate"), ("w_granularity", "month"),
    ("w_channel", ["SMS", "WhatsApp Business"]), ("w_preset", "last-30-days"),
    ("w_channel", []), ("w_preset", "last-quarter"), ("w_granularity", "week"),
    ("w_view", "table"), ("w_view", "chart"), ("w_tz", "Europe/Amsterdam"), ("w_tz", "UTC"),
]  # fmt: skip


def controller(folder: Path) -> dict[str, float]:
    import convlib
    from convlib.dashboard import ConversionDashboard

    began = time.perf_counter()
    source = convlib.open_source(folder)
    board = ConversionDashboard(source)
    built = time.perf_counter() - began
    board.timings_ms.clear()
    for name, value in CHANGES:
        getattr(board, name).value = value
        assert board.w_status.value == "", board.w_status.value
    times = np.array(board.timings_ms)
    return {
        "build_s": built,
        "changes": len(times),
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "max_ms": float(times.max()),
    }


def browser(folder: Path | None, runs: int = 3) -> dict[str, float]:
    from tests.browser import chromium_page, voila_dashboard

    times = []
    with voila_dashboard(folder) as url:
        for _ in range(runs):
            time.sleep(25)  # let Voilà refill its pool of preheated kernels
            with chromium_page() as (page, watch):
                began = time.monotonic()
                page.goto(url)
                page.wait_for_selector(".convlib-headline", timeout=120_000)
                page.wait_for_selector("canvas", timeout=120_000)
                times.append(time.monotonic() - began)
                assert not watch.external and not watch.errors, (watch.external, watch.errors)
    return {"request_to_chart_median_s": statistics.median(times), "runs": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT / "data" / "bench" / "10m"))
    parser.add_argument("--sample", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    results = {
        "controller_10m": controller(Path(args.source)),
        "controller_sample": controller(Path(args.sample)),
    }
    if not args.skip_browser:
        results["browser_sample"] = browser(Path(args.sample))
        results["browser_10m"] = browser(Path(args.source), runs=2)
    out = ROOT / "benchmarks" / "results" / "dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
