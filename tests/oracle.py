"""An obviously-correct, slow pandas implementation of the data contract, for comparison only.

It shares no code with convlib: it works row by row with Python datetimes and zoneinfo.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from zoneinfo import ZoneInfo

import pandas as pd

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval from the quadratic in p: (p_hat - p)^2 = z^2 p (1 - p) / n."""
    p_hat = k / n
    a = 1 + Z * Z / n
    b = -(2 * p_hat + Z * Z / n)
    c = p_hat * p_hat
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def bucket(day: dt.date, granularity: str) -> dt.date:
    if granularity == "day":
        return day
    if granularity == "week":
        return day - dt.timedelta(days=day.isoweekday() - 1)
    return dt.date(day.year, day.month, 1)


def bucket_end(label: dt.date, granularity: str) -> dt.date:
    """First day after the bucket."""
    if granularity == "day":
        return label + dt.timedelta(days=1)
    if granularity == "week":
        return label + dt.timedelta(days=7)
    return dt.date(label.year + (label.month == 12), label.month % 12 + 1, 1)


def oracle_metrics(
    messages: pd.DataFrame,
    conversions: pd.DataFrame,
    *,
    window_s: float,
    tz: str = "UTC",
    granularity: str = "day",
    breakdown: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    filters: dict[str, list[str]] | None = None,
    as_of: dt.datetime | None = None,
) -> pd.DataFrame:
    """Messages/conversions hold aware datetimes (or None). Returns the contract's columns."""
    zone = ZoneInfo(tz)
    rows = messages.to_dict("records")
    # First row per id by sent_at; a tie goes to the row delivered first (undelivered last).
    rows.sort(key=lambda r: (r["sent_at"], r["delivered_at"] is None, r["delivered_at"] or 0))
    kept: dict[str, dict] = {}
    for row in rows:
        kept.setdefault(row["message_id"], row)
    if as_of is None:
        stamps = [r["sent_at"] for r in rows] + [
            r["delivered_at"] for r in rows if r["delivered_at"]
        ]
        stamps += list(conversions["converted_at"])
        as_of = max(stamps)
    by_id: dict[str, list[dt.datetime]] = {}
    for conv in conversions.to_dict("records"):
        by_id.setdefault(conv["message_id"], []).append(conv["converted_at"])
    all_days = [
        r["delivered_at"].astimezone(zone).date() for r in rows if r["delivered_at"] is not None
    ]
    if not all_days:
        return pd.DataFrame()
    start = start or min(all_days)
    end = end or max(all_days)
    groups: dict[tuple, list] = {}
    for row in kept.values():
        tracking = row.get("conversion_tracking")
        if row["delivered_at"] is None or tracking is False:
            continue
        day = row["delivered_at"].astimezone(zone).date()
        if not start <= day <= end:
            continue
        if any(row[d] not in values for d, values in (filters or {}).items()):
            continue
        delays = [
            (c - row["delivered_at"]).total_seconds() for c in by_id.get(row["message_id"], [])
        ]
        qualifying = [d for d in delays if 0 <= d <= window_s]
        key = (bucket(day, granularity),) + ((row[breakdown] or "",) if breakdown else ())
        groups.setdefault(key, []).append(min(qualifying) if qualifying else None)
    out = []
    for key in sorted(groups):
        times = [t for t in groups[key] if t is not None]
        n, k = len(groups[key]), len(times)
        low, high = wilson(k, n)
        label = key[0]
        end_day = min(bucket_end(label, granularity), end + dt.timedelta(days=1))
        end_moment = dt.datetime(end_day.year, end_day.month, end_day.day, tzinfo=zone)
        record = {"period": label}
        if breakdown:
            record[breakdown] = key[1]
        record.update(
            delivered=n,
            converted=k,
            conversion_rate=k / n,
            rate_ci_low=low,
            rate_ci_high=high,
            conversion_time_mean_s=statistics.fmean(times) if times else math.nan,
            conversion_time_median_s=statistics.median(times) if times else math.nan,
            provisional=end_moment + dt.timedelta(seconds=window_s) > as_of,
        )
        out.append(record)
    return pd.DataFrame(out)
