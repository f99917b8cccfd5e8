"""Benchmark `convlib report` end to end on the bundled sample: a monthly report, by channel.

Runs the command as a scheduler would (a fresh process: validation, Papermill, nbconvert) and
reports wall seconds per run. Usage: ``python benchmarks/bench_report.py [--runs 3]``; writes
``benchmarks/results/report.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", default=str(ROOT / "data" / "sample"))
    args = parser.parse_args()
    convlib = Path(sys.executable).parent / "convlib"
    times = []
    with tempfile.TemporaryDirectory() as out:
        for run in range(args.runs):
            began = time.perf_counter()
            subprocess.run(
                [str(convlib), "report", "--source", args.source, "--period", "last-month",
                 "--breakdown", "channel", "-o", f"{out}/r{run}.html"],
                check=True, capture_output=True,
            )  # fmt: skip
            times.append(time.perf_counter() - began)
        size = Path(f"{out}/r0.html").stat().st_size
    results = {"runs_s": times, "median_s": statistics.median(times), "html_bytes": size}
    target = ROOT / "benchmarks" / "results" / "report.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
