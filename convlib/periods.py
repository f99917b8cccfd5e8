"""Calendar logic: time zones, local dates, buckets (day / ISO week / month) and slots.

The engine places each delivery in a UTC *slot*: an hour since the epoch, or a half or quarter
hour for zones such as Asia/Kolkata or Asia/Kathmandu. The slot length is chosen so that every local
midnight of the report's zone is a slot boundary, so a slot belongs to exactly one local date.
Mapping slots to buckets happens here, in Python with ``zoneinfo``, so DST rules are the standard
library's, not an engine's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from convlib.contract import ContractError, Granularity

__all__ = [
    "PRESETS",
    "SLOT_LENGTHS_US",
    "BucketPlan",
    "bucket_start",
    "local_midnight_us",
    "offset_transitions",
    "parse_date",
    "parse_tz",
    "plan_buckets",
    "previous_period",
    "resolve_preset",
    "slot_length_us",
    "us_to_local_date",
]

MINUTE_US = 60 * 1_000_000
SLOT_LENGTHS_US = (60 * MINUTE_US, 30 * MINUTE_US, 15 * MINUTE_US)  # longest first
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_tz(name: str | None) -> ZoneInfo:
    """Return the IANA time zone ``name`` (default UTC); unknown names raise a ContractError."""
    text = "UTC" if name is None or str(name).strip() == "" else str(name).strip()
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ContractError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Amsterdam"
        ) from None


def parse_date(value: str | dt.date | None, what: str) -> dt.date | None:
    """Parse an ISO date (``YYYY-MM-DD``); ``what`` names the parameter in the error."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ContractError(f"{what} {value!r} is not a date: use YYYY-MM-DD") from None


def local_midnight_us(day: dt.date, tz: ZoneInfo) -> int:
    """Microseconds since the epoch of 00:00 local time on ``day``."""
    local = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return _to_us(local)


def _to_us(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_local_date(us: int, tz: ZoneInfo) -> dt.date:
    """The local date of an instant given in microseconds since the epoch."""
    return (_EPOCH + dt.timedelta(microseconds=us)).astimezone(tz).date()


def bucket_start(day: dt.date, granularity: Granularity) -> dt.date:
    """The label of the bucket holding ``day``: the day, its ISO week's Monday, or the 1st."""
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_bucket(label: dt.date, granularity: Granularity) -> dt.date:
    if granularity is Granularity.DAY:
        return label + dt.timedelta(days=1)
    if granularity is Granularity.WEEK:
        return label + dt.timedelta(days=7)
    return (label.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def slot_length_us(tz: ZoneInfo, lo_us: int, hi_us: int) -> int:
    """The longest slot (1 h, 30 min, 15 min) that divides every offset of ``tz`` in a span."""
    first, transitions = offset_transitions(tz, lo_us, hi_us)
    offsets = [first, *(offset for _, offset in transitions)]
    for length in SLOT_LENGTHS_US:
        if all(offset % length == 0 for offset in offsets):
            return length
    raise ContractError(f"time zone {tz.key} has an offset that is not a whole quarter hour")


@dataclass(frozen=True)
class BucketPlan:
    """The buckets of a period in a time zone, and the slots each one covers.

    ``slots`` maps every slot in ``[slot_lo, slot_hi)`` to its bucket label; ``ends_us`` gives
    each label's end instant (clipped to the end of the period), used to mark provisional buckets.
    """

    start: dt.date
    end: dt.date
    slot_us: int
    slot_lo: int
    slot_hi: int
    slots: pd.DataFrame  # columns: slot (int64), period (date)
    ends_us: dict[dt.date, int]


def plan_buckets(
    start: dt.date,
    end: dt.date,
    tz: ZoneInfo,
    granularity: Granularity | None,
    slot_us: int,
    cuts: tuple[dt.date, ...] = (),
) -> BucketPlan:
    """Cut ``start..end`` (local dates, inclusive) into buckets and map UTC slots onto them.

    With ``granularity=None`` the whole period is one bucket labelled ``start`` (totals), or
    one bucket per range that ``cuts`` starts (a period and the one before it in one query).
    """
    if end < start:
        raise ContractError(f"end {end.isoformat()} is before start {start.isoformat()}")
    labels: list[dt.date] = []
    bounds_us: list[int] = []
    period_end_us = local_midnight_us(end + dt.timedelta(days=1), tz)
    firsts = _buckets(start, end, granularity) if granularity else ((d, d) for d in (start, *cuts))
    for label, first_day in firsts:
        labels.append(label)
        bounds_us.append(local_midnight_us(first_day, tz))
    edges = [*bounds_us, period_end_us]
    # A bucket ends where the next one starts, or at the end of the period (clipped).
    ends_us = {label: edges[i + 1] for i, label in enumerate(labels)}
    for edge in edges:
        if edge % slot_us:
            raise ContractError(
                f"time zone {tz.key} has an offset that is not a whole quarter hour in this period"
            )
    slot_edges = np.asarray(edges, dtype=np.int64) // slot_us
    counts = np.diff(slot_edges)
    slots = pd.DataFrame(
        {
            "slot": np.arange(slot_edges[0], slot_edges[-1], dtype=np.int64),
            "period": np.repeat(np.asarray(labels, dtype="datetime64[D]"), counts),
        }
    )
    return BucketPlan(start, end, slot_us, int(slot_edges[0]), int(slot_edges[-1]), slots, ends_us)


def _buckets(
    start: dt.date, end: dt.date, granularity: Granularity
) -> Iterator[tuple[dt.date, dt.date]]:
    """Yield (label, first filtered day) for each bucket that holds a day of start..end."""
    label = bucket_start(start, granularity)
    first_day = start
    while first_day <= end:
        yield label, first_day
        label = _next_bucket(label, granularity)
        first_day = label


def offset_transitions(tz: ZoneInfo, lo_us: int, hi_us: int) -> tuple[int, list[tuple[int, int]]]:
    """UTC offsets of ``tz`` between two instants, for turning naive local times into UTC.

    Returns the offset in force at ``lo_us`` and a list of ``(wall_threshold_us, offset_us)``:
    a local wall time at or after the threshold uses the new offset. The threshold is the
    transition instant plus the larger of the two offsets, so a wall time that is ambiguous
    (autumn) or does not exist (spring) takes the offset from before the change, which is
    Python's ``fold=0`` rule.
    """
    second = 1_000_000
    hour = 3_600 * second
    lo_us = (lo_us // second) * second - 2 * 86_400 * second
    hi_us += 2 * 86_400 * second

    def offset_at(us: int) -> int:
        moment = _EPOCH + dt.timedelta(microseconds=us)
        delta = moment.astimezone(tz).utcoffset() or dt.timedelta(0)
        return int(delta.total_seconds() * second)

    first = offset_at(lo_us)
    transitions: list[tuple[int, int]] = []
    previous = first
    probe = lo_us
    while probe < hi_us:
        nxt = probe + hour
        current = offset_at(nxt)
        if current != previous:
            low, high = probe, nxt  # the offset changes in (low, high]: bisect to the second
            while high - low > second:
                mid = low + ((high - low) // second // 2) * second
                if offset_at(mid) == previous:
                    low = mid
                else:
                    high = mid
            transitions.append((high + max(previous, current), current))
            previous = current
        probe = nxt
    return first, transitions


PRESETS: dict[str, str] = {
    "last-7-days": "Last 7 days",
    "last-30-days": "Last 30 days",
    "last-90-days": "Last 90 days",
    "last-week": "Last week",
    "month-to-date": "This month",
    "last-month": "Last month",
    "quarter-to-date": "This quarter",
    "last-quarter": "Last quarter",
    "all": "All data",
}


def _quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def resolve_preset(
    name: str, anchor: dt.date, data_start: dt.date | None = None
) -> tuple[dt.date, dt.date]:
    """The local dates ``(start, end)`` of a named period relative to ``anchor`` (inclusive).

    ``anchor`` is "today" for the data: usually the local date of its as-of time. ``last-week``
    is the last complete ISO week before the anchor's week; ``last-month`` / ``last-quarter`` the
    last complete ones; ``*-to-date`` run from the start of the anchor's month/quarter to it.
    """
    key = name.strip().lower()
    if key.startswith("last-") and key.endswith("-days"):
        days = int(key.removeprefix("last-").removesuffix("-days"))
        return anchor - dt.timedelta(days=days - 1), anchor
    if key == "last-week":
        monday = anchor - dt.timedelta(days=anchor.weekday())
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    if key == "month-to-date":
        return anchor.replace(day=1), anchor
    if key == "last-month":
        first = anchor.replace(day=1)
        previous_end = first - dt.timedelta(days=1)
        return previous_end.replace(day=1), previous_end
    if key == "quarter-to-date":
        return _quarter_start(anchor), anchor
    if key == "last-quarter":
        end = _quarter_start(anchor) - dt.timedelta(days=1)
        return _quarter_start(end), end
    if key == "all":
        return (data_start or anchor), anchor
    choices = ", ".join(PRESETS)
    raise ContractError(f"unknown period {name!r}: use one of {choices}, or a start and end date")


def previous_period(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The period of equal length just before ``start..end``."""
    length = (end - start).days + 1
    return start - dt.timedelta(days=length), start - dt.timedelta(days=1)
