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
    BucketPlan,
    local_midnight_us,
    parse_date,
    parse_tz,
    plan_buckets,
    previous_period,
    slot_length_us,
    us_to_local_date,
)
from convlib.sources import LoadedTable, load_tables, resolve_location

__all__ = ["FilterWarning", "Source", "open_source"]

Filters = Mapping[str, str | Iterable[str]]


class FilterWarning(UserWarning):
    """A filter value that matches no message in the source."""


def open_source(
    location: str | os.PathLike[str] | BaseBackend | None = None,
    *,
    source_tz: str | None = None,
    cache: bool = True,
) -> Source:
    """Open and validate a source: a folder (Parquet/CSV), a DuckDB file, an Ibis URL or backend.

    ``source_tz`` is the zone of timestamps that carry no offset (default UTC). With no
    ``location``, the bundled sample in ``data/sample`` is opened. ``cache=True`` (for
    interactive use) builds compact tables in the backend on the first question so that later
    questions are fast; ``cache=False`` (one-shot runs) answers each question from the raw tables.
    """
    tz = parse_tz(source_tz)
    con, raw, description = resolve_location(location)
    tables = load_tables(con, raw, tz)
    return Source(con, tables["messages"], tables["conversions"], description, tz, cache=cache)


class Source:
    """An opened, validated source; answers metric and data-quality questions."""

    def __init__(
        self,
        con: BaseBackend,
        messages: LoadedTable,
        conversions: LoadedTable,
        description: str,
        source_tz: ZoneInfo,
        *,
        cache: bool = True,
    ) -> None:
        self.con = con
        self.messages = messages.table
        self.conversions = conversions.table
        self.description = description
        self.source_tz = source_tz
        self.cache = cache
        self._loaded = {"messages": messages, "conversions": conversions}
        self._plans: dict[tuple[Any, ...], BucketPlan] = {}
        self._slot_tables: dict[int, ir.Table] = {}
        self._slot_lengths: dict[tuple[str, int, int], int] = {}
        self._dimension_values: dict[str, list[str]] = {}
        self._tables: dict[int, tuple[ir.Table, ir.Table]] = {}
        self._quality: dict[str, dict[str, dict[str, int]]] = {}

    def __repr__(self) -> str:
        return f"Source({self.description!r})"

    # -- what the source holds ----------------------------------------------------------------
    @cached_property
    def facts(self) -> ir.Table:
        """Per-message facts of in-scope messages (see ``convlib.engine``); materialized when
        the source caches."""
        facts = engine.in_scope_facts(self.messages, self.conversions)
        return facts.cache() if self.cache else facts

    def _cached_tables(self, slot_us: int) -> tuple[ir.Table, ir.Table]:
        """The ``cells`` and ``converted`` tables for a slot length, built once."""
        if slot_us not in self._tables:
            self._tables[slot_us] = (
                engine.cells(self.facts, slot_us).cache(),
                engine.converted_facts(self.facts, slot_us).cache(),
            )
        return self._tables[slot_us]

    @property
    def as_of_us(self) -> int | None:
        """The latest timestamp anywhere in the source, in microseconds (None when empty)."""
        spans = [
            *self._loaded["messages"].spans.values(),
            *self._loaded["conversions"].spans.values(),
        ]
        latest = [high for _, high in spans if high is not None]
        return max(latest) if latest else None

    @property
    def message_count(self) -> int:
        """Rows in the messages table, duplicates included."""
        return self._loaded["messages"].rows

    def data_range(self, tz: str | None = None) -> tuple[dt.date, dt.date] | None:
        """First and last local delivery date in the source, or None when nothing was delivered."""
        zone = parse_tz(tz)
        lo, hi = self._loaded["messages"].spans["delivered_us"]
        if lo is None or hi is None:
            return None
        return us_to_local_date(lo, zone), us_to_local_date(hi, zone)

    def as_of(self, tz: str | None = None) -> dt.datetime | None:
        """The data's as-of time in ``tz`` (default UTC)."""
        if self.as_of_us is None:
            return None
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=self.as_of_us)
        return moment.astimezone(parse_tz(tz))

    def dimension_values(self, dimension: str) -> list[str]:
        """Every value of ``channel``, ``country`` or ``campaign`` in the messages, sorted."""
        if dimension not in BREAKDOWNS:
            raise ContractError(f"unknown dimension {dimension!r}: use one of {BREAKDOWNS}")
        if dimension not in self._dimension_values:
            frame = self.con.execute(self.messages.select(dimension).distinct())
            self._dimension_values[dimension] = sorted(str(v) for v in frame[dimension])
        return list(self._dimension_values[dimension])

    # -- questions -----------------------------------------------------------------------------
    def metrics(
        self,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
        *,
        breakdown: str | None = None,
        granularity: str | Granularity | None = "day",
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
        (inclusive) in ``tz``; by default all the data. ``granularity=None`` gives one row per
        breakdown value for the whole period (labelled ``start``): the selection's totals.
        """
        query = self._query(start, end, breakdown, granularity, window, filters, tz, as_of)
        if query is None:
            return finish_metrics(pd.DataFrame(), parse_breakdown(breakdown), {}, 0, None)
        plan, window_w, breakdown_b, filter_lists, as_of_value = query
        expression = self._rollup(plan, window_w, breakdown_b, filter_lists)
        rollup = self.con.to_pyarrow(expression).to_pandas()
        return finish_metrics(rollup, breakdown_b, plan.ends_us, window_w.microseconds, as_of_value)

    def cross_totals(
        self,
        start: str | dt.date,
        end: str | dt.date,
        dimensions: tuple[str, ...],
        *,
        window: str | Window = DEFAULT_WINDOW,
        filters: Filters | None = None,
        tz: str | None = None,
    ) -> pd.DataFrame:
        """Delivered and converted for each combination of several dimensions over a period."""
        for dimension in dimensions:
            parse_breakdown(dimension)
        query = self._query(start, end, None, None, window, filters, tz, None)
        if query is None:
            return pd.DataFrame(columns=[*dimensions, "delivered", "converted"])
        plan, window_w, _, filter_lists, _ = query
        expression = self._rollup(plan, window_w, tuple(dimensions), filter_lists)
        frame = self.con.to_pyarrow(expression).to_pandas()
        return frame[[*dimensions, "delivered", "converted"]]

    def time_distribution(
        self,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
        *,
        breakdown: str | None = None,
        window: str | Window = DEFAULT_WINDOW,
        filters: Filters | None = None,
        tz: str | None = None,
    ) -> pd.DataFrame:
        """Conversion-time quartiles and p90 (seconds) and the share of converted messages that
        converted within 1 h, 6 h and 24 h, per breakdown value; then the 5%..95% quantiles
        (``q5_s`` .. ``q95_s``) that draw its ECDF."""
        query = self._query(start, end, breakdown, None, window, filters, tz, None)
        columns = ["converted", "q25_s", "q50_s", "q75_s", "q90_s",
                   "within_1h", "within_6h", "within_24h"]  # fmt: skip
        breakdown_b = parse_breakdown(breakdown)
        if query is None:
            return pd.DataFrame(columns=([breakdown_b] if breakdown_b else []) + columns)
        plan, window_w, breakdown_b, filter_lists, _ = query
        slots = self._slot_table(plan)
        if self.cache:
            converted = self._cached_tables(plan.slot_us)[1]
        else:
            facts = engine.in_scope_facts(self.messages, self.conversions, self._span_us(plan))
            converted = engine.converted_facts(facts, plan.slot_us)
        expression = engine.delay_distribution(
            converted, slots, plan.slot_lo, plan.slot_hi, window_w.microseconds, breakdown_b,
            filter_lists,
        )  # fmt: skip
        frame = self.con.to_pyarrow(expression).to_pandas()
        for column in [c for c in frame.columns if c.endswith("_us")]:
            frame[column.removesuffix("_us") + "_s"] = frame.pop(column).astype(float) / 1e6
        for label, seconds in (("1h", 3600), ("6h", 21600), ("24h", 86400)):
            frame[f"within_{label}"] = frame.pop(f"within_{seconds}s").astype(float)
        keys = [breakdown_b] if breakdown_b else []
        ecdf = sorted(
            (c for c in frame.columns if c.startswith("q") and c not in columns),
            key=lambda c: int(c[1:-2]),
        )
        frame = frame[keys + columns + ecdf]
        return frame.sort_values(keys).reset_index(drop=True) if keys else frame

    def _slot_length(self, zone: ZoneInfo, first_year: int, last_year: int) -> int:
        """The slot length for a zone over whole calendar years (the offsets seldom change)."""
        key = (zone.key, first_year, last_year)
        if key not in self._slot_lengths:
            lo_us = local_midnight_us(dt.date(first_year, 1, 1), zone)
            hi_us = local_midnight_us(dt.date(last_year + 1, 1, 1), zone)
            self._slot_lengths[key] = slot_length_us(zone, lo_us, hi_us)
        return self._slot_lengths[key]

    def _slot_table(self, plan: BucketPlan) -> ir.Table:
        """The plan's slot-to-period map as an engine table, registered once per plan."""
        if id(plan) not in self._slot_tables:
            self._slot_tables[id(plan)] = ibis.memtable(plan.slots)
        return self._slot_tables[id(plan)]

    def summary(
        self,
        start: str | dt.date,
        end: str | dt.date,
        *,
        window: str | Window = DEFAULT_WINDOW,
        filters: Filters | None = None,
        tz: str | None = None,
    ) -> pd.DataFrame:
        """Totals of a period and of the period of equal length before it, in one query.

        Two rows at most (no row for a period with no data), labelled by their first day.
        """
        first, last = parse_date(start, "start"), parse_date(end, "end")
        if first is None or last is None:
            raise ContractError("a summary needs a start and an end date")
        before, _ = previous_period(first, last)
        query = self._query(before, last, None, None, window, filters, tz, None, cuts=(first,))
        if query is None:
            return finish_metrics(pd.DataFrame(), None, {}, 0, None)
        plan, window_w, _, filter_lists, as_of_value = query
        rollup = self.con.to_pyarrow(self._rollup(plan, window_w, None, filter_lists)).to_pandas()
        return finish_metrics(rollup, None, plan.ends_us, window_w.microseconds, as_of_value)

    def _span_us(self, plan: BucketPlan) -> tuple[int, int]:
        return plan.slot_lo * plan.slot_us, plan.slot_hi * plan.slot_us

    def _rollup(
        self,
        plan: BucketPlan,
        window_w: Window,
        breakdown: str | tuple[str, ...] | None,
        filter_lists: dict[str, list[str]],
    ) -> ir.Table:
        slots = self._slot_table(plan)
        bounds = (plan.slot_lo, plan.slot_hi, window_w.microseconds, breakdown, filter_lists)
        if self.cache:
            cell_table, converted_table = self._cached_tables(plan.slot_us)
            return engine.rollup_cached(cell_table, converted_table, slots, *bounds)
        facts = engine.in_scope_facts(self.messages, self.conversions, self._span_us(plan))
        return engine.rollup_direct(facts, slots, plan.slot_us, *bounds)

    def _query(
        self,
        start: str | dt.date | None,
        end: str | dt.date | None,
        breakdown: str | None,
        granularity: str | Granularity | None,
        window: str | Window,
        filters: Filters | None,
        tz: str | None,
        as_of: str | dt.datetime | None,
        cuts: tuple[dt.date, ...] = (),
    ) -> tuple[BucketPlan, Window, str | None, dict[str, list[str]], int | None] | None:
        """Validate the parameters; None when the source has no in-scope message at all."""
        zone = parse_tz(tz)
        window_w = parse_window(window)
        granularity_g = None if granularity is None else parse_granularity(granularity)
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
        key = (start_d, end_d, zone.key, granularity_g, cuts)
        if key not in self._plans:
            slot_us = self._slot_length(zone, start_d.year, end_d.year)
            self._plans[key] = plan_buckets(start_d, end_d, zone, granularity_g, slot_us, cuts)
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
            unknown = self._unknown_values(dimension, chosen)
            if unknown:
                warnings.warn(
                    f"{dimension} {', '.join(map(repr, unknown))} matches no message in "
                    f"{self.description}",
                    FilterWarning,
                    stacklevel=3,
                )
            lists[dimension] = chosen
        return lists

    def _unknown_values(self, dimension: str, chosen: list[str]) -> list[str]:
        """The chosen values that no message has (one small query, remembered)."""
        if dimension in self._dimension_values:
            known = set(self._dimension_values[dimension])
        else:
            column = self.messages[dimension]
            found = self.con.execute(
                self.messages.filter(column.isin(chosen)).select(column).distinct()
            )
            known = set(found[dimension].astype(str))
        return [v for v in chosen if v not in known]

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

    @cached_property
    def _message_quality(self) -> dict[str, int]:
        row = self.con.execute(engine.message_quality(self.messages)).iloc[0]
        total = self.message_count
        return {
            "total": total,
            "in_scope": _int(row["in_scope"]),
            "not_delivered": _int(row["not_delivered"]),
            "tracking_off": _int(row["tracking_off"]),
            "duplicate_message_id": total - _int(row["kept"]),
        }

    @cached_property
    def _conversion_status(self) -> ir.Table:
        status = engine.conversion_status(self.messages, self.conversions)
        return status.cache() if self.cache else status

    def _compute_quality(self, window: Window) -> dict[str, dict[str, int]]:
        row = self.con.execute(
            engine.conversion_quality(self._conversion_status, window.microseconds)
        ).iloc[0]
        converted = _int(row["converted_messages"])
        return {
            "messages": dict(self._message_quality),
            "conversions": {
                "total": _int(row["total"]),
                "counted": converted,
                "unknown_message": _int(row["unknown_message"]),
                "message_not_in_scope": _int(row["message_not_in_scope"]),
                "before_delivery": _int(row["before_delivery"]),
                "after_window": _int(row["after_window"]),
                "repeat": _int(row["qualifying"]) - converted,
            },
        }


def _int(value: Any) -> int:
    return 0 if value is None or value != value else int(value)
