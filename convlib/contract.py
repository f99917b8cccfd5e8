"""The data contract in code: windows, granularities, breakdowns, columns and the error type.

Everything here mirrors ``DATA_CONTRACT.md`` (summarised in ``docs/contract.md``); unknown values
are rejected with a one-line :class:`ContractError` rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BREAKDOWNS",
    "DEFAULT_WINDOW",
    "GRANULARITIES",
    "METRIC_COLUMNS",
    "WINDOWS",
    "ColumnSpec",
    "ContractError",
    "Granularity",
    "Window",
    "parse_breakdown",
    "parse_granularity",
    "parse_window",
]


class ContractError(ValueError):
    """Bad input or a bad parameter; the message is one line saying what, where and what to do."""


class Granularity(StrEnum):
    """How delivery dates are grouped into periods."""

    DAY = "day"
    WEEK = "week"  # ISO week, starting Monday
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Window:
    """A measurement window: a conversion counts when 0 <= converted_at - delivered_at <= window."""

    label: str
    seconds: int

    @property
    def microseconds(self) -> int:
        """The window length in microseconds, the engine's unit for delays."""
        return self.seconds * 1_000_000

    def __str__(self) -> str:
        return self.label


_UNIT_SECONDS = {"h": 3_600, "d": 86_400}
WINDOWS: tuple[str, ...] = ("1h", "6h", "12h", "24h", "3d", "7d", "14d", "30d")
DEFAULT_WINDOW = "7d"
GRANULARITIES: tuple[str, ...] = tuple(g.value for g in Granularity)
BREAKDOWNS: tuple[str, ...] = ("channel", "country", "campaign")

# The columns of `convlib metrics`, in order; the breakdown column goes after `period`.
METRIC_COLUMNS: tuple[str, ...] = (
    "period",
    "delivered",
    "converted",
    "conversion_rate",
    "rate_ci_low",
    "rate_ci_high",
    "conversion_time_mean_s",
    "conversion_time_median_s",
    "provisional",
)


def parse_window(value: str | Window) -> Window:
    """Parse a window label such as ``7d``; only the contract's windows are accepted."""
    if isinstance(value, Window):
        return value
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+)([hd])", text)
    if text not in WINDOWS or match is None:
        raise ContractError(f"unknown window {value!r}: use one of {', '.join(WINDOWS)}")
    return Window(text, int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_granularity(value: str | Granularity) -> Granularity:
    """Parse ``day``, ``week`` or ``month``."""
    try:
        return Granularity(str(value).strip().lower())
    except ValueError:
        raise ContractError(
            f"unknown granularity {value!r}: use one of {', '.join(GRANULARITIES)}"
        ) from None


def parse_breakdown(value: str | None) -> str | None:
    """Parse a breakdown dimension; ``None``, ``""`` and ``"none"`` mean no breakdown."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    text = str(value).strip().lower()
    if text not in BREAKDOWNS:
        raise ContractError(
            f"unknown breakdown {value!r}: use one of none, {', '.join(BREAKDOWNS)}"
        )
    return text


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One input column: its name, its kind and whether the contract requires it."""

    name: str
    kind: str  # "string", "timestamp" or "boolean"
    required: bool


MESSAGE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("message_id", "string", True),
    ColumnSpec("sent_at", "timestamp", True),
    ColumnSpec("delivered_at", "timestamp", False),
    ColumnSpec("channel", "string", True),
    ColumnSpec("country", "string", True),
    ColumnSpec("campaign", "string", False),
    ColumnSpec("conversion_tracking", "boolean", False),
)
CONVERSION_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("message_id", "string", True),
    ColumnSpec("converted_at", "timestamp", True),
)
TABLE_COLUMNS: dict[str, tuple[ColumnSpec, ...]] = {
    "messages": MESSAGE_COLUMNS,
    "conversions": CONVERSION_COLUMNS,
}
