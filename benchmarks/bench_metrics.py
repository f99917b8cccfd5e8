"""Benchmark the metric engine on a large source (default: 10 M messages, ~1 M conversions).

Measures, for a quarter, daily, broken down by channel:

1. ``convlib metrics`` end to end in a fresh process (start-up, reading Parquet): wall time and
   peak memory (max RSS);
2. in one process: convlib (open + one question, no cache), a plain pandas implementation and a
   hand-written DuckDB SQL query of the same numbers (checked equal);
3. repeated questions with other filters on an already opened (caching) source.

Usage: ``python benchmarks/bench_metrics.py [--source DIR] [--messages N] [--repeat K]``.
Writes ``benchmarks/results/metrics.json`` and prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
START, END = "2026-04-01", "2026-06-30"
WINDOW_US = 7 * 86_400 * 1_000_000


def ensure_source(folder: Path, messages: int) -> None:
    if (folder / "messages.parquet").exists():
        return
    print(f"generating {messages:,} messages in {folder} ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "convlib.cli",
            "sample-data",
            "--messages",
            str(messages),
            "-o",
            str(folder),
        ],
        check=True,
    )


def cli_run(folder: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `convlib metrics` process."""
    command = [
        sys.executable,
        "-m",
        "convlib.cli",
        "metrics",
        "--source",
        str(folder),
        "--start",
        START,
        "--end",
        END,
        "--granularity",
        "day",
        "--breakdown",
        "channel",
    ]
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, check=True
    )
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def with_pandas(folder: Path) -> pd.DataFrame:
    """The same numbers, the way one would write them in plain pandas."""
    m = pd.read_parquet(folder / "messages.parquet")
    c = pd.read_parquet(folder / "conversions.parquet")
    m = m.sort_values(["sent_at", "delivered_at"], na_position="last", kind="stable")
    m = m.drop_duplicates("message_id", keep="first")
    m = m[m["delivered_at"].notna() & m["conversion_tracking"].fillna(True)]
    joined = c.merge(m[["message_id", "delivered_at"]], on="message_id")
    joined["delay_us"] = (joined["converted_at"] - joined["delivered_at"]).dt.total_seconds() * 1e6
    first = joined[joined["delay_us"] >= 0].groupby("message_id")["delay_us"].min()
    m = m.assign(delay_us=m["message_id"].map(first))
    m["period"] = m["delivered_at"].dt.tz_convert("UTC").dt.date
    period = (m["period"] >= pd.Timestamp(START).date()) & (m["period"] <= pd.Timestamp(END).date())
    m = m[period]
    m["converted_delay"] = m["delay_us"].where(m["delay_us"] <= WINDOW_US)
    grouped = m.groupby(["period", "channel"])
    out = grouped.agg(
        delivered=("message_id", "size"),
        converted=("converted_delay", "count"),
        delay_mean_us=("converted_delay", "mean"),
        delay_median_us=("converted_delay", "median"),
    )
    return out.reset_index()


HAND_SQL = """
WITH m AS (
    SELECT message_id, epoch_us(sent_at) AS sent_us, epoch_us(delivered_at) AS delivered_us,
           channel, coalesce(conversion_tracking, true) AS tracking
    FROM read_parquet('{folder}/messages.parquet')
), kept AS (
    SELECT * FROM m
    QUALIFY row_number() OVER (
        PARTITION BY message_id ORDER BY sent_us, delivered_us NULLS LAST) = 1
), in_scope AS (
    SELECT * FROM kept WHERE delivered_us IS NOT NULL AND tracking
), first_delay AS (
    SELECT c.message_id, min(epoch_us(c.converted_at) - i.delivered_us) AS delay_us
    FROM read_parquet('{folder}/conversions.parquet') AS c JOIN in_scope AS i USING (message_id)
    WHERE epoch_us(c.converted_at) >= i.delivered_us
    GROUP BY c.message_id
)
SELECT make_timestamp(i.delivered_us)::DATE AS period, i.channel,
       count(*) AS delivered,
       count(*) FILTER (WHERE d.delay_us <= {window}) AS converted,
       avg(d.delay_us) FILTER (WHERE d.delay_us <= {window}) AS delay_mean_us,
       median(d.delay_us) FILTER (WHERE d.delay_us <= {window}) AS delay_median_us
FROM in_scope AS i LEFT JOIN first_delay AS d USING (message_id)
WHERE make_timestamp(i.delivered_us)::DATE BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY ALL ORDER BY ALL
"""


def with_sql(folder: Path) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    sql = HAND_SQL.format(folder=folder, window=WINDOW_US, start=START, end=END)
    return con.execute(sql).arrow().read_all().to_pandas()


def with_convlib(folder: Path) -> pd.DataFrame:
    import convlib

    source = convlib.open_source(folder, cache=False)
    return source.metrics(START, END, breakdown="channel", granularity="day")


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    if "conversion_time_mean_s" in frame:
        frame["delay_mean_us"] = frame["conversion_time_mean_s"] * 1e6
        frame["delay_median_us"] = frame["conversion_time_median_s"] * 1e6
    frame["period"] = pd.to_datetime(frame["period"]).dt.date
    columns = ["period", "channel", "delivered", "converted", "delay_mean_us", "delay_median_us"]
    return frame[columns].sort_values(["period", "channel"]).reset_index(drop=True)


def timed(function, *args, repeat: int = 1):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def repeated_queries(folder: Path, repeat: int) -> dict[str, float]:
    import convlib

    source = convlib.open_source(folder)
    first, _ = timed(source.metrics, START, END)
    variants = [
        {"breakdown": "channel", "filters": {"country": ["NL"]}},
        {"breakdown": "country", "filters": {"channel": ["SMS", "RCS"]}},
        {"breakdown": "campaign", "filters": {}},
        {"breakdown": "channel", "filters": {}, "granularity": "week"},
        {"breakdown": None, "filters": {"campaign": ["spring-sale"]}},
        {"breakdown": "channel", "filters": {"country": ["DE", "FR"]}, "window": "24h"},
        {"breakdown": "country", "filters": {}, "tz": "Europe/Amsterdam"},
    ]
    times = []
    for i in range(repeat):
        kwargs = dict(variants[i % len(variants)])
        start = time.perf_counter()
        source.metrics(START, END, **{"granularity": "day", **kwargs})
        times.append(time.perf_counter() - start)
    return {
        "first_question_s": first,
        "repeated_median_ms": statistics.median(times) * 1000,
        "repeated_p90_ms": float(np.percentile(times, 90)) * 1000,
        "repeated_max_ms": max(times) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT / "data" / "bench" / "10m"))
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each one-shot measure")
    args = parser.parse_args()
    folder = Path(args.source).resolve()
    ensure_source(folder, args.messages)

    cli = [cli_run(folder) for _ in range(args.repeat)]
    convlib_s, ours = timed(with_convlib, folder, repeat=args.repeat)
    sql_s, theirs_sql = timed(with_sql, folder, repeat=args.repeat)
    pandas_s, theirs_pandas = timed(with_pandas, folder, repeat=1)
    ours_c = comparable(ours)
    for name, other in (("sql", theirs_sql), ("pandas", theirs_pandas)):
        pd.testing.assert_frame_equal(
            ours_c, comparable(other), check_dtype=False, obj=name, rtol=1e-9
        )
    repeated = repeated_queries(folder, repeat=40)
    results = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "messages": int(pd.read_parquet(folder / "messages.parquet", columns=["channel"]).shape[0]),
        "cli_end_to_end_s": statistics.median(t for t, _ in cli),
        "cli_peak_rss_mib": max(r for _, r in cli),
        "convlib_in_process_s": convlib_s,
        "hand_sql_s": sql_s,
        "pandas_s": pandas_s,
        "convlib_vs_sql": convlib_s / sql_s,
        "pandas_vs_convlib": pandas_s / convlib_s,
        **repeated,
        "rows": len(ours),
    }
    out = ROOT / "benchmarks" / "results" / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
