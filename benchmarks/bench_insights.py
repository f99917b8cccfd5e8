"""Measure the change detector: false-alarm rate on flat series and power on planted changes.

Series are generated as in tests/test_insights.py (56 days, weekday seasonality in volume and
rate, binomial conversions). A false alarm is any change reported on a flat series; a hit is a
change of the planted direction reported within one day of the planted day.

Usage: ``python benchmarks/bench_insights.py [--runs 400]``; writes
``benchmarks/results/insights.json`` and prints a Markdown table for docs/insights.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convlib.insights import detect_changes  # noqa: E402
from tests.test_insights import series  # noqa: E402

VOLUMES = (25, 100, 300, 700)
EFFECTS = (0.8, 0.7, 0.6)  # rate after / rate before


def false_alarms(runs: int) -> dict[str, float]:
    out = {}
    for volume in VOLUMES:
        for rate in (0.03, 0.10):
            alarms = sum(
                bool(detect_changes(series(np.random.default_rng(seed), volume=volume,
                                           rate=rate), None))
                for seed in range(runs)
            )  # fmt: skip
            out[f"volume {volume}/day, rate {rate:.0%}"] = alarms / runs
    return out


def power(runs: int) -> dict[str, float]:
    out = {}
    for volume in VOLUMES:
        for effect in EFFECTS:
            hits = 0
            for seed in range(runs):
                rng = np.random.default_rng(100_000 + seed)
                day = int(rng.integers(12, 44))
                found = detect_changes(
                    series(rng, volume=volume, change_day=day, rate_factor=effect), None
                )
                planted = dt.date(2026, 3, 2) + dt.timedelta(days=day)
                hits += any(
                    c.direction == "drop"
                    and abs((dt.date.fromisoformat(c.date) - planted).days) <= 1
                    for c in found
                )
            out[f"volume {volume}/day, drop {1 - effect:.0%}"] = hits / runs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    began = time.perf_counter()
    results = {
        "runs": args.runs,
        "false_alarm_rate": false_alarms(args.runs),
        "power_within_one_day": power(max(args.runs // 4, 50)),
    }
    results["seconds"] = time.perf_counter() - began
    out = ROOT / "benchmarks" / "results" / "insights.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
