"""Insights: what changed, what under-performs, and why, each backed by a test of significance.

Pure statistics on metric frames (``detect_changes``, ``compare_periods``, ``decompose``,
``underperformers``), and :func:`insights` to run them all on a source for a selection.
Every choice is documented in ``docs/insights.md`` with the measured power and false-alarm rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from convlib.contract import ContractError, parse_breakdown
from convlib.periods import parse_date, previous_period
from convlib.source import Filters, Source, open_source

__all__ = [
    "Change",
    "Comparison",
    "Underperformer",
    "benchmark_table",
    "compare_periods",
    "decompose",
    "detect_changes",
    "insights",
    "load_benchmark",
    "underperformers",
]

ALPHA = 0.05  # family-wise error for changes; false discovery rate for under-performers
MIN_SEGMENT_DAYS = 5  # a level must hold this many days on each side of a change
MIN_RELATIVE_CHANGE = 0.15  # smaller shifts are not news, however significant
VOLUME_HELD = 0.15  # volume within ±15% of before: the change is recipient behaviour
MIN_DAILY_DELIVERED = 20  # days with fewer deliveries carry too little to place a change


# -- change detection ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """A shift of a daily conversion rate to a new level."""

    series: str
    date: str  # the first day at the new level
    direction: str  # "drop" or "rise"
    rate_before: float
    rate_after: float
    p_value: float
    volume_before: float  # mean delivered per day
    volume_after: float
    explanation: str


def _weekday_factors(days: pd.DatetimeIndex, delivered: np.ndarray, converted: np.ndarray):
    """Each weekday's rate relative to the series' rate (1.0 when a weekday has no data)."""
    weekday = days.weekday.to_numpy()
    overall = converted.sum() / max(delivered.sum(), 1)
    factors = np.ones(7)
    for w in range(7):
        n = delivered[weekday == w].sum()
        if n > 0 and overall > 0:
            # shrink towards 1 so that a few days cannot invent a weekday pattern
            k = converted[weekday == w].sum()
            factors[w] = (k + 50 * overall) / (n * overall + 50 * overall)
    return factors[weekday]


def _poisson_ll(k: np.ndarray, expected: np.ndarray) -> float:
    mask = expected > 0
    k, expected = k[mask], expected[mask]
    return float(np.sum(k * np.log(np.where(k > 0, expected, 1.0)) - expected))


def _best_split(k: np.ndarray, e: np.ndarray) -> tuple[int, float]:
    """The split (first index of the second segment) with the largest likelihood ratio."""
    best, best_lr = -1, 0.0
    null = _segment_ll(k, e)
    for split in range(MIN_SEGMENT_DAYS, len(k) - MIN_SEGMENT_DAYS + 1):
        lr = 2.0 * (_segment_ll(k[:split], e[:split]) + _segment_ll(k[split:], e[split:]) - null)
        if lr > best_lr:
            best, best_lr = split, lr
    return best, best_lr


def _segment_ll(k: np.ndarray, e: np.ndarray) -> float:
    """Poisson log-likelihood of one level: k_d ~ Poisson(level * e_d), level at its MLE."""
    total_e = e.sum()
    if total_e <= 0:
        return 0.0
    level = k.sum() / total_e
    return _poisson_ll(k, level * e)


def _dispersion(k: np.ndarray, e: np.ndarray, split: int) -> float:
    """Pearson overdispersion of the two-level model (at least 1): quasi-likelihood scaling."""
    fitted = np.concatenate(
        [e[:split] * k[:split].sum() / max(e[:split].sum(), 1e-12),
         e[split:] * k[split:].sum() / max(e[split:].sum(), 1e-12)]
    )  # fmt: skip
    mask = fitted > 0
    chi2 = float(np.sum((k[mask] - fitted[mask]) ** 2 / fitted[mask]))
    return max(1.0, chi2 / max(mask.sum() - 2, 1))


def detect_changes(
    daily: pd.DataFrame, series_column: str | None, *, series_scanned: int | None = None
) -> list[Change]:
    """Find days where a daily conversion rate shifts to a new level, in each series.

    ``daily`` has one row per (period, series) with ``delivered``, ``converted`` and
    ``provisional``. Provisional days and days with fewer than ``MIN_DAILY_DELIVERED``
    deliveries are left out. The model: converted_d ~ Poisson(level * delivered_d * weekday_d),
    one level before and one after a split; the likelihood-ratio test of one split against none
    is Bonferroni-corrected for every split position and every series scanned, and scaled for
    overdispersion. A change in volume alone leaves the rate, and so the test, unmoved.
    """
    if daily.empty:
        return []
    final = daily[~daily["provisional"].astype(bool)]
    groups = final.groupby(series_column) if series_column else [("All messages", final)]
    groups = [(name, rows) for name, rows in groups]
    scanned = series_scanned or len(groups)
    found: list[Change] = []
    for name, rows in groups:
        found += _changes_in_series(str(name), rows, scanned)
    return sorted(found, key=lambda c: c.p_value)


def _changes_in_series(name: str, rows: pd.DataFrame, scanned: int) -> list[Change]:
    rows = rows.sort_values("period")
    days = pd.DatetimeIndex(pd.to_datetime(rows["period"]))
    full = pd.date_range(days.min(), days.max(), freq="D") if len(days) else days
    frame = rows.set_index(days)[["delivered", "converted"]].reindex(full, fill_value=0)
    frame = frame[frame["delivered"] >= MIN_DAILY_DELIVERED]
    if len(frame) < 2 * MIN_SEGMENT_DAYS:
        return []
    n = frame["delivered"].to_numpy(dtype=float)
    k = frame["converted"].to_numpy(dtype=float)
    expected = n * _weekday_factors(frame.index, n, k)
    positions = len(frame) - 2 * MIN_SEGMENT_DAYS + 1
    split, lr = _best_split(k, expected)
    if split < 0:
        return []
    lr /= _dispersion(k, expected, split)
    p_value = min(1.0, float(stats.chi2.sf(lr, 1)) * positions * scanned)
    before = slice(0, split)
    after = slice(split, len(frame))
    rate_before = k[before].sum() / n[before].sum()
    rate_after = k[after].sum() / n[after].sum()
    if p_value >= ALPHA or rate_before == 0:
        return []
    if abs(rate_after / rate_before - 1) < MIN_RELATIVE_CHANGE:
        return []
    volume_before, volume_after = n[before].mean(), n[after].mean()
    direction = "drop" if rate_after < rate_before else "rise"
    date = frame.index[split].date()
    return [
        Change(
            series=name, date=date.isoformat(), direction=direction,
            rate_before=float(rate_before), rate_after=float(rate_after), p_value=p_value,
            volume_before=float(volume_before), volume_after=float(volume_after),
            explanation=_explain(direction, volume_before, volume_after),
        )
    ]  # fmt: skip


def _explain(direction: str, volume_before: float, volume_after: float) -> str:
    moved = volume_after / volume_before - 1 if volume_before else 0.0
    verb = "fell" if direction == "drop" else "rose"
    if abs(moved) <= VOLUME_HELD:
        return (
            f"conversion rate {verb} while volume held ({moved:+.0%}): "
            "recipient behaviour, not delivery"
        )
    trend = "fell" if moved < 0 else "rose"
    return (
        f"conversion rate {verb} and volume {trend} with it ({moved:+.0%}): check delivery, "
        "targeting or traffic before recipient behaviour"
    )


# -- period comparison and decomposition ----------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One breakdown value, this period against the previous one."""

    series: str
    rate: float | None
    previous_rate: float | None
    change: float | None  # absolute, in rate units (0.01 = one percentage point)
    relative_change: float | None
    p_value: float | None  # two-proportion z-test
    delivered: int
    previous_delivered: int
    time_mean_s: float | None
    previous_time_mean_s: float | None


def _two_proportion_p(k1: float, n1: float, k0: float, n0: float) -> float | None:
    if n1 <= 0 or n0 <= 0:
        return None
    pooled = (k1 + k0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        return 1.0
    z = (k1 / n1 - k0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return float(2 * stats.norm.sf(abs(z)))


def compare_periods(
    current: pd.DataFrame, previous: pd.DataFrame, series_column: str | None
) -> list[Comparison]:
    """Per breakdown value: rates, change, two-proportion p-value, conversion-time change."""
    key = series_column or "series"
    cur = current.assign(series="All messages") if not series_column else current
    pre = previous.assign(series="All messages") if not series_column else previous
    cur, pre = cur.set_index(key), pre.set_index(key)
    out = []
    for value in sorted(set(cur.index) | set(pre.index)):
        c = cur.loc[value] if value in cur.index else None
        p = pre.loc[value] if value in pre.index else None
        rate = float(c["conversion_rate"]) if c is not None else None
        before = float(p["conversion_rate"]) if p is not None else None
        change = rate - before if rate is not None and before is not None else None
        out.append(
            Comparison(
                series=str(value), rate=rate, previous_rate=before, change=change,
                relative_change=change / before if change is not None and before else None,
                p_value=_two_proportion_p(c["converted"], c["delivered"], p["converted"],
                                          p["delivered"]) if c is not None and p is not None
                else None,
                delivered=int(c["delivered"]) if c is not None else 0,
                previous_delivered=int(p["delivered"]) if p is not None else 0,
                time_mean_s=_num(c["conversion_time_mean_s"]) if c is not None else None,
                previous_time_mean_s=_num(p["conversion_time_mean_s"]) if p is not None else None,
            )
        )  # fmt: skip
    return out


def _num(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def decompose(current: pd.DataFrame, previous: pd.DataFrame, series_column: str) -> dict:
    """Split the change of the overall rate into a mix effect and a rate effect.

    Overall rate = sum over values of share x rate. Mix effect = sum (share1 - share0) x rate0:
    what the change of the delivered mix alone would have done; rate effect = sum share1 x
    (rate1 - rate0): what the changes of the rates within values did. The two add up exactly to
    the total change. A value present in one period only counts entirely as mix.
    """
    values = sorted(set(current[series_column]) | set(previous[series_column]))
    cur = current.set_index(series_column)
    pre = previous.set_index(series_column)
    n1, n0 = cur["delivered"].sum(), pre["delivered"].sum()
    mix = rate = 0.0
    parts = []
    for v in values:
        s1 = cur.loc[v, "delivered"] / n1 if v in cur.index and n1 else 0.0
        s0 = pre.loc[v, "delivered"] / n0 if v in pre.index and n0 else 0.0
        r1 = cur.loc[v, "converted"] / cur.loc[v, "delivered"] if v in cur.index else None
        r0 = pre.loc[v, "converted"] / pre.loc[v, "delivered"] if v in pre.index else None
        r0_eff = r0 if r0 is not None else r1
        r1_eff = r1 if r1 is not None else r0
        m = (s1 - s0) * r0_eff
        r = s1 * (r1_eff - r0_eff)
        mix, rate = mix + m, rate + r
        parts.append({"series": str(v), "share": s1, "previous_share": s0, "mix_effect": m,
                      "rate_effect": r})  # fmt: skip
    total1 = cur["converted"].sum() / n1 if n1 else 0.0
    total0 = pre["converted"].sum() / n0 if n0 else 0.0
    return {
        "rate": total1, "previous_rate": total0, "change": total1 - total0,
        "mix_effect": mix, "rate_effect": rate, "by_series": parts,
    }  # fmt: skip


# -- benchmarks -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Underperformer:
    """A series significantly below its benchmark rate."""

    series: str
    rate: float
    benchmark: float
    delivered: int
    converted: int
    p_value: float  # one-sided exact binomial, rate below benchmark
    q_value: float  # Benjamini-Hochberg adjusted


def load_benchmark(path: str | Path) -> pd.DataFrame:
    """Read a benchmark CSV: ``channel``, optional ``country`` or ``campaign``,
    ``conversion_rate`` (a fraction, or a percentage with ``%``)."""
    location = Path(path)
    try:
        frame = pd.read_csv(location, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ContractError(f"{location}: cannot read the benchmark: {exc}") from None
    for column in ("channel", "conversion_rate"):
        if column not in frame.columns:
            raise ContractError(f"{location}: required column {column!r} is missing")
    text = frame["conversion_rate"].str.strip()
    rates = pd.to_numeric(text.str.rstrip("%"), errors="coerce")
    rates = rates.where(~text.str.endswith("%"), rates / 100)
    bad = rates.isna() | (rates < 0) | (rates > 1)
    if bad.any():
        example = frame.loc[bad.idxmax(), "conversion_rate"]
        raise ContractError(
            f"{location}: column 'conversion_rate' has a value that is not a rate, e.g. {example!r}"
        )
    return frame.assign(conversion_rate=rates)


def _benchmark_rates(cells: pd.DataFrame, table: pd.DataFrame) -> pd.Series:
    """The benchmark of each (…, channel, country[, campaign]) cell from a benchmark table."""
    keys = ["channel"] + [c for c in ("country", "campaign") if c in table.columns]
    specific = table[[*keys, "conversion_rate"]]
    merged = cells.merge(specific, on=keys, how="left")
    if len(keys) > 1:  # fall back to a channel-wide row where one is given
        wide = table[(table[keys[1:]] == "").all(axis=1)][["channel", "conversion_rate"]]
        merged = merged.merge(wide.rename(columns={"conversion_rate": "wide"}), on="channel",
                              how="left")  # fmt: skip
        merged["conversion_rate"] = merged["conversion_rate"].fillna(merged["wide"])
    return merged["conversion_rate"]


def benchmark_table(cells: pd.DataFrame, series_column: str, benchmark: pd.Series) -> pd.DataFrame:
    """Per series: delivered, converted, rate, delivered-weighted benchmark, one-sided p and
    Benjamini-Hochberg q, and whether it is significantly below (the funnel plot's points)."""
    frame = cells.assign(benchmark=benchmark.to_numpy()).dropna(subset=["benchmark"])
    frame = frame.assign(expected=frame["benchmark"] * frame["delivered"])
    per = frame.groupby(series_column).agg(
        delivered=("delivered", "sum"), converted=("converted", "sum"), expected=("expected", "sum")
    )
    per = per[per["delivered"] > 0]
    if per.empty:
        return per.assign(rate=[], benchmark=[], p=[], q=[], below=[])
    per["rate"] = per["converted"] / per["delivered"]
    per["benchmark"] = per["expected"] / per["delivered"]
    per["p"] = stats.binom.cdf(per["converted"], per["delivered"], per["benchmark"].clip(0, 1))
    per["q"] = _benjamini_hochberg(per["p"].to_numpy())
    per["below"] = (per["q"] <= ALPHA) & (per["converted"] < per["expected"])
    return per


def underperformers(
    cells: pd.DataFrame, series_column: str, benchmark: pd.Series
) -> list[Underperformer]:
    """Series whose rate is significantly below the delivered-weighted benchmark of their cells.

    ``cells`` holds delivered and converted per (series, channel, country[, ...]); ``benchmark``
    the benchmark rate of each cell. One-sided exact binomial test per series, then
    Benjamini-Hochberg at a 5% false discovery rate over the series tested.
    """
    per = benchmark_table(cells, series_column, benchmark)
    return underperformers_from(per)


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    ranked = p[order] * len(p) / (np.arange(len(p)) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(0, 1)
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


# -- all of it for a selection -------------------------------------------------------------------
def insights(
    source: Source,
    start: str | dt.date,
    end: str | dt.date,
    *,
    breakdown: str | None = "campaign",
    filters: Filters | None = None,
    window: str = "7d",
    tz: str | None = None,
    benchmark: str | Path | pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Changes, under-performers, the period comparison with its decomposition, and the
    conversion-time distribution, for one selection. JSON-ready."""
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first is None or last is None:
        raise ContractError("insights need a start and an end date")
    series = parse_breakdown(breakdown)
    common = {"window": window, "filters": filters, "tz": tz}
    daily = source.metrics(first, last, breakdown=series, granularity="day", **common)
    current = source.metrics(first, last, breakdown=series, granularity=None, **common)
    before = previous_period(first, last)
    previous = source.metrics(*before, breakdown=series, granularity=None, **common)
    comparison = compare_periods(current, previous, series)
    decomposition = decompose(current, previous, series) if series else None
    table = _benchmark_frame(source, first, last, series, benchmark, common)
    under = [] if table.empty else underperformers_from(table)
    times = source.time_distribution(first, last, breakdown=series, **common)
    return {
        "selection": {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "breakdown": series,
            "filters": dict(filters or {}),
            "window": window,
            "tz": tz or "UTC",
            "previous": [d.isoformat() for d in before],
            "benchmark": _benchmark_label(benchmark),
        },
        "changes": [asdict(c) for c in detect_changes(daily, series)],
        "underperformers": [asdict(u) for u in under],
        "comparison": [asdict(c) for c in comparison],
        "decomposition": decomposition,
        "conversion_time": _records(times),
        "benchmark_table": _records(table.reset_index()) if not table.empty else [],
    }


def _benchmark_label(benchmark: str | Path | pd.DataFrame | None) -> str:
    if benchmark is None:
        return "default: each series' channel x country rate over the preceding 90 days"
    return str(benchmark) if isinstance(benchmark, str | Path) else "table"


def underperformers_from(table: pd.DataFrame) -> list[Underperformer]:
    """The significantly-below rows of a :func:`benchmark_table`, most significant first."""
    below = table[table["below"]].sort_values("q")
    return [
        Underperformer(
            series=str(name), rate=float(r.rate), benchmark=float(r.benchmark),
            delivered=int(r.delivered), converted=int(r.converted), p_value=float(r.p),
            q_value=float(r.q),
        )
        for name, r in below.iterrows()
    ]  # fmt: skip


def _benchmark_frame(
    source: Source,
    first: dt.date,
    last: dt.date,
    series: str | None,
    benchmark: str | Path | pd.DataFrame | None,
    common: dict[str, Any],
) -> pd.DataFrame:
    if not series:
        return pd.DataFrame()
    keys = tuple(dict.fromkeys((series, "channel", "country", "campaign")))
    cells = source.cross_totals(first, last, keys, **common)
    if cells.empty:
        return pd.DataFrame()
    if benchmark is None:
        start90, end90 = first - dt.timedelta(days=90), first - dt.timedelta(days=1)
        table = source.cross_totals(start90, end90, ("channel", "country"), **{
            **common, "filters": {}
        })  # fmt: skip
        table = table.assign(conversion_rate=table["converted"] / table["delivered"])
    else:
        table = benchmark if isinstance(benchmark, pd.DataFrame) else load_benchmark(benchmark)
    return benchmark_table(cells, series, _benchmark_rates(cells, table))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def sentences(found: dict[str, Any], limit: int = 8) -> list[str]:
    """Each finding as one line in plain words."""
    lines = []
    for c in found["changes"][:limit]:
        day = dt.date.fromisoformat(c["date"]).strftime("%d %b %Y")
        lines.append(
            f"{c['series']}: conversion rate {'fell' if c['direction'] == 'drop' else 'rose'} "
            f"from {c['rate_before']:.1%} to {c['rate_after']:.1%} on {day}; "
            f"{c['explanation'].split(': ', 1)[-1]} (p = {c['p_value']:.1g})"
        )
    for u in found["underperformers"][:limit]:
        lines.append(
            f"{u['series']} converts at {u['rate']:.2%} against a benchmark of "
            f"{u['benchmark']:.2%} on {u['delivered']:,} delivered (q = {u['q_value']:.1g})"
        )
    d = found.get("decomposition")
    if d:
        lines.append(
            f"Overall rate {d['previous_rate']:.2%} → {d['rate']:.2%} ({d['change'] * 100:+.2f} pp"
            f" against {found['selection']['previous'][0]} – {found['selection']['previous'][1]})"
            f": mix of {found['selection']['breakdown']}s {d['mix_effect'] * 100:+.2f} pp, "
            f"rates within them {d['rate_effect'] * 100:+.2f} pp"
        )
    return lines


# -- command line ---------------------------------------------------------------------------------
def _cmd_insights(args: argparse.Namespace) -> int:
    source = open_source(args.source, source_tz=args.source_tz)
    if args.format not in ("json", "table"):
        raise ContractError(f"unknown format {args.format!r}: use json or table")
    from convlib.cli import _emit, _filters

    filters = _filters(args)
    found = insights(
        source, args.start, args.end, breakdown=args.breakdown, filters=filters,
        window=args.window, tz=args.tz, benchmark=args.benchmark,
    )  # fmt: skip
    if args.format == "json":
        text = json.dumps(found, indent=2, default=str) + "\n"
    else:
        text = "\n".join(f"- {line}" for line in sentences(found, limit=50)) + "\n"
    _emit(text, args.output)
    return 0
