"""The analyst's entry point: :func:`open_source` and the :class:`Source` it returns."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend

from convlib import engine
from convlib.contract import (
    BREAKDOWNS,
    DEFAULT_WINDOW,
    ContractError,
    Granularity,
    Window,
    parse_breakdown,
    parse_granularity,
    parse_window,
)
from convlib.metrics import finish_metrics
from convlib.periods import (
    SLOT_US,
    BucketPlan,
    parse_date,
    parse_tz,
    plan_buckets,
    us_to_local_date,
)
from convlib.sources import load_tables, resolve_location

__all__ = ["FilterWarning", "Source", "open_source"]

Filters = Mapping[str, str | Iterable[str]]


class FilterWarning(UserWarning):
    """A filter value that matches no message in the source."""


def open_source(
    location: str | os.PathLike[str] | BaseBackend | None = None,
    *,
    source_tz: str | None = None,
) -> Source:
    """Open and validate a source: a folder (Parquet/CSV), a DuckDB file, an Ibis URL or backend.

    ``source_tz`` is the zone of timestamps that carry no offset (default UTC). With no
    ``location``, the bundled sample in ``data/sample`` is opened.
    """
    tz = parse_tz(source_tz)
    con, raw, description = resolve_location(location)
    tables = load_tables(con, raw, tz)
    return Source(con, tables["messages"], tables["conversions"], description, tz)


class Source:
    """An opened, validated source; answers metric and data-quality questions.

    Per-message facts are materialized in the backend on the first question, so later
    questions (a dashboard changing filters) scan one compact table instead of re-joining.
    """

    def __init__(
        self,
        con: BaseBackend,
        messages: ir.Table,
        conversions: ir.Table,
        description: str,
        source_tz: ZoneInfo,
    ) -> None:
        self.con = con
        self.messages = messages
        self.conversions = conversions
        self.description = description
        self.source_tz = source_tz
        self._plans: dict[tuple[Any, ...], BucketPlan] = {}
        self._quality: dict[str, dict[str, dict[str, int]]] = {}

    def __repr__(self) -> str:
        return f"Source({self.description!r})"

    # -- cached facts -------------------------------------------------------------------------
    @cached_property
    def facts(self) -> ir.Table:
        """Per-message facts of in-scope messages, materialized once (see ``convlib.engine``)."""
        return engine.in_scope_facts(self.messages, self.conversions).order_by("slot").cache()

    @cached_property
    def as_of_us(self) -> int | None:
        """The latest timestamp anywhere in the source, in microseconds (None when empty)."""
        m, c = self.messages, self.conversions
        latest = self.con.execute(
            m.aggregate(a=m.sent_us.max(), b=m.delivered_us.max()).cross_join(
                c.aggregate(c=c.converted_us.max())
            )
        ).iloc[0]
        values = [int(v) for v in latest.tolist() if v is not None and v == v]
        return max(values) if values else None

    @cached_property
    def _slot_range(self) -> tuple[int, int] | None:
        f = self.facts
        row = self.con.execute(f.aggregate(lo=f.slot.min(), hi=f.slot.max())).iloc[0]
        if row["lo"] is None or row["lo"] != row["lo"]:
            return None
        return int(row["lo"]), int(row["hi"])

    def dimension_values(self, dimension: str) -> list[str]:
        """Every value of ``channel``, ``country`` or ``campaign`` in the messages, sorted."""
        return list(self._dimension_values[dimension])

    @cached_property
    def _dimension_values(self) -> dict[str, tuple[str, ...]]:
        values = {}
        for dimension in BREAKDOWNS:
            column = self.messages[dimension]
            frame = self.con.execute(self.messages.select(column).distinct())
            values[dimension] = tuple(sorted(str(v) for v in frame[dimension].tolist()))
        return values

    def data_range(self, tz: str | None = None) -> tuple[dt.date, dt.date] | None:
        """First and last local delivery date of in-scope messages, or None with none."""
        zone = parse_tz(tz)
        if self._slot_range is None:
            return None
        lo, hi = self._slot_range
        return us_to_local_date(lo * SLOT_US, zone), us_to_local_date(hi * SLOT_US, zone)

    def as_of(self, tz: str | None = None) -> dt.datetime | None:
        """The data's as-of time in ``tz`` (default UTC)."""
        if self.as_of_us is None:
            return None
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=self.as_of_us)
        return moment.astimezone(parse_tz(tz))

    # -- questions -----------------------------------------------------------------------------
    def metrics(
        self,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
        *,
        breakdown: str | None = None,
        granularity: str | Granularity = "day",
        window: str | Window = DEFAULT_WINDOW,
        filters: Filters | None = None,
        tz: str | None = None,
        as_of: str | dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Conversion metrics per period (and breakdown value), as the data contract defines them.

        Returns one row per (period[, breakdown]) with columns ``period`` (date), the breakdown,
        ``delivered``, ``converted`` (int), ``conversion_rate``, ``rate_ci_low``, ``rate_ci_high``,
        ``conversion_time_mean_s``, ``conversion_time_median_s`` (float) and ``provisional``
        (bool). Groups with no in-scope message have no row. ``start``/``end`` are local dates
        (inclusive) in ``tz``; by default all the data.
        """
        query = self._query(start, end, breakdown, granularity, window, filters, tz, as_of)
        if query is None:
            return finish_metrics(pd.DataFrame(), parse_breakdown(breakdown), {}, 0, None)
        plan, window_w, breakdown_b, filter_lists, as_of_value = query
        slots = ibis.memtable(plan.slots)
        expression = engine.rollup(
            self.facts,
            slots,
            plan.slot_lo,
            plan.slot_hi,
            window_w.microseconds,
            breakdown_b,
            filter_lists,
        )
        rollup = self.con.to_pyarrow(expression).to_pandas()
        return finish_metrics(
            rollup, breakdown_b, plan.ends_us, window_w.microseconds, as_of_value
        )

    def _query(
        self,
        start: str | dt.date | None,
        end: str | dt.date | None,
        breakdown: str | None,
        granularity: str | Granularity,
        window: str | Window,
        filters: Filters | None,
        tz: str | None,
        as_of: str | dt.datetime | None,
    ) -> tuple[BucketPlan, Window, str | None, dict[str, list[str]], int | None] | None:
        """Validate the parameters; None when the source has no in-scope message at all."""
        zone = parse_tz(tz)
        window_w = parse_window(window)
        granularity_g = parse_granularity(granularity)
        breakdown_b = parse_breakdown(breakdown)
        start_d, end_d = parse_date(start, "start"), parse_date(end, "end")
        if start_d and end_d and end_d < start_d:
            raise ContractError(f"end {end_d.isoformat()} is before start {start_d.isoformat()}")
        filter_lists = self._filters(filters)
        as_of_value = self._as_of_us(as_of)
        span = self.data_range(zone.key)
        if span is None:
            return None
        start_d = start_d or span[0]
        end_d = end_d or max(span[1], start_d)
        key = (start_d, end_d, zone.key, granularity_g)
        if key not in self._plans:
            self._plans[key] = plan_buckets(start_d, end_d, zone, granularity_g)
        return self._plans[key], window_w, breakdown_b, filter_lists, as_of_value

    def _filters(self, filters: Filters | None) -> dict[str, list[str]]:
        lists: dict[str, list[str]] = {}
        for dimension, values in (filters or {}).items():
            if dimension not in BREAKDOWNS:
                raise ContractError(
                    f"unknown filter {dimension!r}: use one of {', '.join(BREAKDOWNS)}"
                )
            chosen = [values] if isinstance(values, str) else [str(v) for v in values]
            if not chosen:
                continue
            known = set(self._dimension_values[dimension])
            unknown = [v for v in chosen if v not in known]
            if unknown:
                warnings.warn(
                    f"{dimension} {', '.join(map(repr, unknown))} matches no message in "
                    f"{self.description}",
                    FilterWarning,
                    stacklevel=3,
                )
            lists[dimension] = chosen
        return lists

    def _as_of_us(self, as_of: str | dt.datetime | None) -> int | None:
        if as_of is None or as_of == "":
            return self.as_of_us
        if isinstance(as_of, str):
            try:
                moment = dt.datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ContractError(
                    f"as-of {as_of!r} is not a timestamp: use ISO 8601, e.g. 2026-06-30T23:59:59Z"
                ) from None
        else:
            moment = as_of
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def quality(self, window: str | Window = DEFAULT_WINDOW) -> dict[str, Any]:
        """Data-quality counts for a window: every message and conversion row accounted for."""
        window_w = parse_window(window)
        if window_w.label not in self._quality:
            self._quality[window_w.label] = self._compute_quality(window_w)
        counts = self._quality[window_w.label]
        return {"window": window_w.label, **{k: dict(v) for k, v in counts.items()}}

    def _compute_quality(self, window: Window) -> dict[str, dict[str, int]]:
        messages = self.con.execute(engine.message_quality(self.messages)).iloc[0]
        conversions = self.con.execute(
            engine.conversion_quality(self.messages, self.conversions, window.microseconds)
        ).iloc[0]
        f = self.facts
        converted = int(
            self.con.execute(f.aggregate(n=(f.delay_us <= window.microseconds).sum())).iloc[0]["n"]
            or 0
        )
        qualifying = _int(conversions["qualifying"])
        return {
            "messages": {
                "total": _int(messages["total"]),
                "in_scope": _int(messages["in_scope"]),
                "not_delivered": _int(messages["not_delivered"]),
                "tracking_off": _int(messages["tracking_off"]),
                "duplicate_message_id": _int(messages["total"]) - _int(messages["kept"]),
            },
            "conversions": {
                "total": _int(conversions["total"]),
                "counted": converted,
                "unknown_message": _int(conversions["unknown_message"]),
                "message_not_in_scope": _int(conversions["message_not_in_scope"]),
                "before_delivery": _int(conversions["before_delivery"]),
                "after_window": _int(conversions["after_window"]),
                "repeat": qualifying - converted,
            },
        }


def _int(value: Any) -> int:
    return 0 if value is None or value != value else int(value)

