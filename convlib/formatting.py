"""Rendering metric tables: the contract's CSV, JSON, and readable text for people."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

__all__ = ["format_duration", "format_rate", "to_csv", "to_json", "to_table"]


def format_duration(seconds: float | None) -> str:
    """A duration for people: ``45 s``, ``12.5 min``, ``4.2 h``, ``2.3 d``; ``–`` when missing."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3_600:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def format_rate(rate: float | None, digits: int = 2) -> str:
    """A rate as a percentage, ``–`` when missing."""
    if rate is None or (isinstance(rate, float) and math.isnan(rate)):
        return "–"
    return f"{rate * 100:.{digits}f}%"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def to_csv(frame: pd.DataFrame) -> str:
    """The contract's CSV: a header, then one line per row; empty cells for missing times."""
    lines = [",".join(frame.columns)]
    for row in frame.itertuples(index=False, name=None):
        lines.append(",".join(_csv_quote(_cell(v)) for v in row))
    return "\n".join(lines) + "\n"


def _csv_quote(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def to_json(frame: pd.DataFrame) -> str:
    """A JSON array of row objects with the contract's keys; missing values are null."""
    rows = [
        {column: _jsonable(value) for column, value in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]
    return json.dumps(rows, indent=2) + "\n"


def to_table(frame: pd.DataFrame) -> str:
    """An aligned text table for people: rates in percent with the interval, times in units."""
    if frame.empty:
        return "(no rows)\n"
    shown = pd.DataFrame({"period": frame["period"].map(str)})
    for column in frame.columns[1:]:
        if column in ("channel", "country", "campaign"):
            shown[column] = frame[column].map(lambda v: v or "(none)")
    shown["delivered"] = frame["delivered"].map("{:,}".format)
    shown["converted"] = frame["converted"].map("{:,}".format)
    shown["rate"] = frame["conversion_rate"].map(format_rate)
    shown["95% interval"] = [
        f"{format_rate(lo)} – {format_rate(hi)}"
        for lo, hi in zip(frame["rate_ci_low"], frame["rate_ci_high"], strict=True)
    ]
    shown["mean time"] = frame["conversion_time_mean_s"].map(format_duration)
    shown["median time"] = frame["conversion_time_median_s"].map(format_duration)
    shown["provisional"] = frame["provisional"].map(lambda p: "provisional" if p else "")
    return shown.to_string(index=False) + "\n"
