"""From engine rollups to the contract's metric table: rates, Wilson intervals, provisional."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from convlib.contract import METRIC_COLUMNS

__all__ = ["Z_95", "empty_metrics", "finish_metrics", "wilson_interval"]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(
    converted: np.ndarray | float, delivered: np.ndarray | float, z: float = Z_95
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of converted/delivered (vectorised); delivered must be > 0."""
    k = np.asarray(converted, dtype=float)
    n = np.asarray(delivered, dtype=float)
    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    # Clip float noise so that 0 <= low <= rate <= high <= 1 always holds.
    return np.clip(centre - half, 0.0, p), np.clip(centre + half, p, 1.0)


def _columns(breakdown: str | None) -> list[str]:
    columns = list(METRIC_COLUMNS)
    if breakdown:
        columns.insert(1, breakdown)
    return columns


def empty_metrics(breakdown: str | None) -> pd.DataFrame:
    """A metric table with no rows but the contract's columns and types."""
    return finish_metrics(pd.DataFrame(), breakdown, {}, 0, None)


def finish_metrics(
    rollup: pd.DataFrame,
    breakdown: str | None,
    bucket_ends_us: Mapping[dt.date, int],
    window_us: int,
    as_of_us: int | None,
) -> pd.DataFrame:
    """Add rates, intervals, times in seconds and provisional flags; sort as the contract says."""
    if rollup.empty:
        frame = pd.DataFrame({column: [] for column in _columns(breakdown)})
        return _typed(frame, breakdown)
    frame = rollup.copy()
    frame["period"] = pd.to_datetime(frame["period"]).dt.date
    delivered = frame["delivered"].to_numpy(dtype=float)
    converted = frame["converted"].to_numpy(dtype=float)
    frame["conversion_rate"] = converted / delivered
    frame["rate_ci_low"], frame["rate_ci_high"] = wilson_interval(converted, delivered)
    frame["conversion_time_mean_s"] = frame["delay_mean_us"].astype(float) / 1e6
    frame["conversion_time_median_s"] = frame["delay_median_us"].astype(float) / 1e6
    ends = frame["period"].map(bucket_ends_us).astype("int64")
    frame["provisional"] = (ends + window_us > as_of_us) if as_of_us is not None else False
    sort_keys = ["period"] + ([breakdown] if breakdown else [])
    frame = frame.sort_values(sort_keys, kind="stable").reset_index(drop=True)
    return _typed(frame[_columns(breakdown)], breakdown)


def _typed(frame: pd.DataFrame, breakdown: str | None) -> pd.DataFrame:
    types: dict[str, str] = {
        "delivered": "int64",
        "converted": "int64",
        "conversion_rate": "float64",
        "rate_ci_low": "float64",
        "rate_ci_high": "float64",
        "conversion_time_mean_s": "float64",
        "conversion_time_median_s": "float64",
        "provisional": "bool",
    }
    if breakdown:
        types[breakdown] = "str"
    frame = frame.astype(types)
    frame["period"] = frame["period"].astype("object")
    return frame
