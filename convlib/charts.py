"""Bokeh views built from metric DataFrames: the spline chart, the volume bars and the table.

Figures are built once with a fixed pool of series slots; :func:`update_views` only replaces the
data of their ColumnDataSources (``source.data = {...}``), so a widget change never re-creates a
figure, never flickers and keeps the user's zoom. No data access happens here.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from bokeh.core.property.vectorization import value
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    CustomJSTickFormatter,
    DataTable,
    DatetimeTickFormatter,
    HoverTool,
    HTMLTemplateFormatter,
    Legend,
    LegendItem,
    NumberFormatter,
    NumeralTickFormatter,
    Range1d,
    StringFormatter,
    TableColumn,
)
from bokeh.models.layouts import LayoutDOM
from bokeh.plotting import figure
from scipy.interpolate import PchipInterpolator

from convlib.formatting import format_duration, format_rate

__all__ = [
    "MAX_SERIES",
    "METRICS",
    "OTHER_COLOR",
    "PALETTE",
    "ChartViews",
    "InsightViews",
    "build_insight_views",
    "build_views",
    "monotone_spline",
    "series_frames",
    "table_frame",
    "update_insight_views",
    "update_views",
]

MAX_SERIES = 9  # the 8 largest values by volume, then "Other"
# Okabe-Ito colours without the yellow, which is unreadable on white; grey is kept for "Other".
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B")
OTHER_COLOR = "#8C8C8C"
METRICS = {
    "rate": "Conversion rate",
    "time_mean": "Conversion time (mean)",
    "time_median": "Conversion time (median)",
}
_DAY_MS = 86_400_000
_EMPTY_LINE: dict[str, list] = {"x": [], "y": []}


@dataclass
class SeriesSlot:
    """The data sources of one series: spline (final and provisional parts), points, band, bars."""

    final: ColumnDataSource = field(default_factory=lambda: ColumnDataSource(dict(_EMPTY_LINE)))
    provisional: ColumnDataSource = field(
        default_factory=lambda: ColumnDataSource(dict(_EMPTY_LINE))
    )
    band: ColumnDataSource = field(
        default_factory=lambda: ColumnDataSource({"x": [], "low": [], "high": []})
    )
    points: ColumnDataSource = field(default_factory=lambda: ColumnDataSource(_point_columns()))
    bars: ColumnDataSource = field(default_factory=lambda: ColumnDataSource(_bar_columns()))


def _bar_columns() -> dict[str, list]:
    return {name: [] for name in ("x", "bottom", "top", "width", "delivered", "series", "period")}


def _point_columns() -> dict[str, list]:
    names = ["x", "y", "series", "period", "rate", "interval", "mean", "median", "delivered",
             "converted", "status", "fill"]  # fmt: skip
    return {name: [] for name in names}


@dataclass
class ChartViews:
    """The Bokeh models of the dashboard, built once."""

    chart: figure
    volume: figure
    layout: LayoutDOM
    table: DataTable
    table_source: ColumnDataSource
    slots: list[SeriesSlot]
    legend_items: list[LegendItem]
    rate_format: NumeralTickFormatter = field(
        default_factory=lambda: NumeralTickFormatter(format="0.0%")
    )
    hours_format: CustomJSTickFormatter = field(
        default_factory=lambda: CustomJSTickFormatter(code="return tick.toFixed(1) + ' h'")
    )


def build_views(width: int = 980) -> ChartViews:
    """Create the chart, the volume bars below it (shared time axis) and the table."""
    chart = figure(
        height=380, width=width, x_axis_type="datetime",
        tools="xpan,xwheel_zoom,box_zoom,reset,save", toolbar_location="above",
        x_range=Range1d(0, 1), y_range=Range1d(0, 1), name="conversion-chart",
    )  # fmt: skip
    volume = figure(
        height=150, width=width, x_axis_type="datetime", x_range=chart.x_range,
        tools="xpan,xwheel_zoom,reset", toolbar_location=None, y_range=Range1d(0, 1),
        name="volume-chart",
    )  # fmt: skip
    for fig in (chart, volume):
        fig.xaxis.formatter = DatetimeTickFormatter(days="%d %b", months="%b %Y", years="%Y")
        fig.grid.grid_line_alpha = 0.35
        fig.outline_line_color = None
        fig.min_border_right = 200  # room for the legend, so both plots line up
    volume.yaxis.axis_label = "Delivered"
    volume.yaxis.formatter = NumeralTickFormatter(format="0a")
    slots = [SeriesSlot() for _ in range(MAX_SERIES)]
    items: list[LegendItem] = []
    point_renderers = []
    for i, slot in enumerate(slots):
        color = PALETTE[i] if i < len(PALETTE) else OTHER_COLOR
        band = chart.varea("x", "low", "high", source=slot.band, fill_color=color, fill_alpha=0.12)
        solid = chart.line("x", "y", source=slot.final, line_color=color, line_width=2.2)
        dashed = chart.line(
            "x", "y", source=slot.provisional, line_color=color, line_width=2.2, line_dash="dashed"
        )
        points = chart.scatter(
            "x", "y", source=slot.points, size=7, line_color=color, line_width=1.6,
            fill_color="fill", name=f"points-{i}",
        )  # fmt: skip
        bars = volume.vbar(
            x="x", bottom="bottom", top="top", width="width", source=slot.bars,
            fill_color=color, line_color=None, fill_alpha=0.75,
        )  # fmt: skip
        points.js_link("visible", bars, "visible")  # hiding a series hides its volume too
        point_renderers.append(points)
        items.append(
            LegendItem(label=value(""), renderers=[band, solid, dashed, points], visible=False)
        )
    legend = Legend(items=items, click_policy="hide", location="top_left", title="click to hide")
    legend.label_text_font_size = "11px"
    chart.add_layout(legend, "right")
    chart.add_tools(
        HoverTool(
            renderers=point_renderers,
            tooltips=[
                ("", "@series"),
                ("period", "@period"),
                ("conversion rate", "@rate (95% CI @interval)"),
                ("conversion time", "mean @mean, median @median"),
                ("delivered", "@delivered{0,0}"),
                ("converted", "@converted{0,0}"),
                ("", "@status"),
            ],
        )
    )
    volume.add_tools(
        HoverTool(
            renderers=volume.renderers,
            tooltips=[("", "@series"), ("period", "@period"), ("delivered", "@delivered{0,0}")],
        )
    )
    table_source = ColumnDataSource(_table_columns())
    table = DataTable(
        source=table_source, columns=_table_spec(), width=width, height=440, sortable=True,
        index_position=None, name="metrics-table",
    )  # fmt: skip
    layout = column(chart, volume)
    return ChartViews(chart, volume, layout, table, table_source, slots, items)


_DURATION_TEMPLATE = """<%= value == null || isNaN(value) ? "–" :
  value < 60 ? value.toFixed(0) + " s" :
  value < 3600 ? (value / 60).toFixed(1) + " min" :
  value < 172800 ? (value / 3600).toFixed(1) + " h" : (value / 86400).toFixed(1) + " d" %>"""


def _table_columns() -> dict[str, list]:
    names = ["period", "series", "rate", "ci_low", "ci_high", "mean_s", "median_s", "delivered",
             "converted", "provisional"]  # fmt: skip
    return {name: [] for name in names}


def _table_spec() -> list[TableColumn]:
    percent = NumberFormatter(format="0.00%")
    duration = HTMLTemplateFormatter(template=_DURATION_TEMPLATE)
    return [
        TableColumn(field="period", title="Period", formatter=StringFormatter()),
        TableColumn(field="series", title="Series"),
        TableColumn(field="rate", title="Conversion rate", formatter=percent),
        TableColumn(field="ci_low", title="95% CI low", formatter=percent),
        TableColumn(field="ci_high", title="95% CI high", formatter=percent),
        TableColumn(field="mean_s", title="Mean time", formatter=duration),
        TableColumn(field="median_s", title="Median time", formatter=duration),
        TableColumn(field="delivered", title="Delivered", formatter=NumberFormatter(format="0,0")),
        TableColumn(field="converted", title="Converted", formatter=NumberFormatter(format="0,0")),
        TableColumn(field="provisional", title="Provisional"),
    ]


def monotone_spline(x: np.ndarray, y: np.ndarray, per_gap: int = 12) -> tuple[np.ndarray, ...]:
    """A smooth curve through the points that never overshoots them (monotone cubic, PCHIP).

    Between two points the curve stays within their values, so a smooth line never suggests a
    rate or time that no period had. Fewer than three points are joined by straight lines.
    """
    if len(x) < 3:
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dense = np.concatenate(
        [np.linspace(x[i], x[i + 1], per_gap, endpoint=False) for i in range(len(x) - 1)]
        + [np.asarray([x[-1]], dtype=float)]
    )
    return dense, PchipInterpolator(x, y)(dense)


def _bucket_bounds(
    period: dt.date, granularity: str | None, start: dt.date, end: dt.date
) -> tuple[dt.date, dt.date]:
    """First and last day of a bucket as filtered (the bucket is cut by start..end)."""
    if granularity == "week":
        last = period + dt.timedelta(days=6)
    elif granularity == "month":
        last = (period.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(1)
    else:
        last = period
    return max(period, start), min(last, end)


def _ms(day: dt.date) -> float:
    return (day - dt.date(1970, 1, 1)).days * _DAY_MS


def series_frames(
    frame: pd.DataFrame, breakdown: str | None, order: list[str], labels: dict[str, str]
) -> list[tuple[str, pd.DataFrame]]:
    """Split a metric frame into (label, rows) per series, in ``order``."""
    if not breakdown:
        return [(labels.get("", "All messages"), frame)] if not frame.empty else []
    return [(labels.get(v, v or "(none)"), frame[frame[breakdown] == v]) for v in order]


def table_frame(series: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The table view's rows: exactly the values the chart shows, one row per period and series."""
    parts = []
    for label, rows in series:
        parts.append(
            pd.DataFrame(
                {
                    "period": [p.isoformat() for p in rows["period"]],
                    "series": label,
                    "rate": rows["conversion_rate"].to_numpy(),
                    "ci_low": rows["rate_ci_low"].to_numpy(),
                    "ci_high": rows["rate_ci_high"].to_numpy(),
                    "mean_s": rows["conversion_time_mean_s"].to_numpy(),
                    "median_s": rows["conversion_time_median_s"].to_numpy(),
                    "delivered": rows["delivered"].to_numpy(),
                    "converted": rows["converted"].to_numpy(),
                    "provisional": np.where(rows["provisional"].to_numpy(), "yes", "no"),
                }
            )
        )
    if not parts:
        return pd.DataFrame(_table_columns())
    return pd.concat(parts, ignore_index=True).sort_values(["period", "series"], kind="stable")


def _metric_values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    if metric == "rate":
        return rows["conversion_rate"].to_numpy(dtype=float)
    column = "conversion_time_mean_s" if metric == "time_mean" else "conversion_time_median_s"
    return rows[column].to_numpy(dtype=float) / 3600.0  # hours on the axis


def update_views(
    views: ChartViews,
    series: list[tuple[str, pd.DataFrame]],
    metric: str,
    granularity: str | None,
    start: dt.date,
    end: dt.date,
) -> pd.DataFrame:
    """Replace the data of every source for these series; returns the table's rows.

    Each property is assigned only when it changes; a displayed dashboard sends all of one
    update's changes as one message (``convlib.dashboard.BatchedBokehModel``).
    """
    axis = views.chart.yaxis[0]
    _set(axis, "axis_label", METRICS[metric] + ("" if metric == "rate" else " (hours)"))
    _set(axis, "formatter", views.rate_format if metric == "rate" else views.hours_format)
    stack_tops: dict[float, float] = {}
    top = 0.0
    for i, slot in enumerate(views.slots):
        item = views.legend_items[i]
        if i >= len(series):
            if item.visible:
                _clear(slot)
                item.visible = False
            continue
        label, rows = series[i]
        rows = rows.sort_values("period")
        bounds = [_bucket_bounds(p, granularity, start, end) for p in rows["period"]]
        x = np.array([(_ms(a) + _ms(b) + _DAY_MS) / 2 for a, b in bounds])
        y = _metric_values(rows, metric)
        provisional = rows["provisional"].to_numpy(dtype=bool)
        _update_lines(slot, x, y, provisional)
        _update_band(slot, x, rows, metric)
        slot.points.data = {
            "x": x,
            "y": y,
            "series": [label] * len(x),
            "period": [_period_text(a, b) for a, b in bounds],
            "rate": [format_rate(v) for v in rows["conversion_rate"]],
            "interval": [
                f"{format_rate(lo)} – {format_rate(hi)}"
                for lo, hi in zip(rows["rate_ci_low"], rows["rate_ci_high"], strict=True)
            ],
            "mean": [format_duration(v) for v in rows["conversion_time_mean_s"]],
            "median": [format_duration(v) for v in rows["conversion_time_median_s"]],
            "delivered": rows["delivered"].to_numpy(),
            "converted": rows["converted"].to_numpy(),
            "status": ["provisional: window still open" if p else "final" for p in provisional],
            "fill": ["white" if p else (*PALETTE, OTHER_COLOR)[i] for p in provisional],
        }
        bottoms = np.array([stack_tops.get(v, 0.0) for v in x])
        tops = bottoms + rows["delivered"].to_numpy(dtype=float)
        stack_tops.update(zip(x, tops, strict=True))
        widths = np.array([((b - a).days + 1) * _DAY_MS * 0.8 for a, b in bounds])
        slot.bars.data = {
            "x": x, "bottom": bottoms, "top": tops, "width": widths,
            "delivered": rows["delivered"].to_numpy(), "series": [label] * len(x),
            "period": [_period_text(a, b) for a, b in bounds],
        }  # fmt: skip
        _set(item, "label", value(label))
        _set(item, "visible", True)
        high = rows["rate_ci_high"].to_numpy(dtype=float) if metric == "rate" else y
        top = max(top, float(np.nanmax(high, initial=0.0)))
    # Explicit ranges rather than auto-ranging: a plot first drawn while its page is still
    # hidden (Voilà's preheated kernels) cannot compute data ranges and would stay empty.
    first, last = _ms(start), _ms(end) + _DAY_MS
    pad = (last - first) * 0.02
    _set_range(views.chart.x_range, first - pad, last + pad)
    _set_range(views.chart.y_range, 0.0, (top or 1.0) * 1.08)
    _set_range(views.volume.y_range, 0.0, max(stack_tops.values(), default=1.0) * 1.05)
    table = table_frame(series)
    views.table_source.data = {c: table[c].to_numpy() for c in table.columns}
    return table


def _set(model: Any, attribute: str, new: Any) -> None:
    """Assign only a changed value: every assignment costs a document-wide traversal in Bokeh."""
    if getattr(model, attribute) != new:
        setattr(model, attribute, new)


def _set_range(bounds: Range1d, start: float, end: float) -> None:
    """Move a range, and what the reset tool returns to."""
    for attribute, new in (("start", start), ("end", end), ("reset_start", start),
                           ("reset_end", end)):  # fmt: skip
        _set(bounds, attribute, new)


def _period_text(first: dt.date, last: dt.date) -> str:
    if first == last:
        return first.strftime("%a %d %b %Y")
    return f"{first.strftime('%d %b')} – {last.strftime('%d %b %Y')}"


def _clear(slot: SeriesSlot) -> None:
    slot.final.data = dict(_EMPTY_LINE)
    slot.provisional.data = dict(_EMPTY_LINE)
    slot.band.data = {"x": [], "low": [], "high": []}
    slot.points.data = _point_columns()
    slot.bars.data = _bar_columns()


def _update_lines(slot: SeriesSlot, x: np.ndarray, y: np.ndarray, provisional: np.ndarray) -> None:
    """Spline through the final points (solid) and on into the provisional ones (dashed)."""
    known = ~np.isnan(y)
    xs, ys = x[known], y[known]
    last_final = np.flatnonzero(~provisional[known])
    split = xs[last_final[-1]] if len(last_final) else -math.inf
    dense_x, dense_y = monotone_spline(xs, ys)
    solid = dense_x <= split
    dashed = dense_x >= split
    slot.final.data = {"x": dense_x[solid], "y": dense_y[solid]}
    slot.provisional.data = {"x": dense_x[dashed], "y": dense_y[dashed]}


def _update_band(slot: SeriesSlot, x: np.ndarray, rows: pd.DataFrame, metric: str) -> None:
    """The 95% interval as a shaded band (rate only: times have no interval)."""
    if metric != "rate" or len(x) == 0:
        slot.band.data = {"x": [], "low": [], "high": []}
        return
    dense_x, low = monotone_spline(x, rows["rate_ci_low"].to_numpy(dtype=float))
    _, high = monotone_spline(x, rows["rate_ci_high"].to_numpy(dtype=float))
    slot.band.data = {"x": dense_x, "low": low, "high": high}


# -- insight charts: the funnel plot and the conversion-time ECDF ----------------------------------
@dataclass
class InsightViews:
    """The funnel plot (rate index against volume) and the ECDF of conversion times."""

    funnel: figure
    ecdf: figure
    layout: LayoutDOM
    points: ColumnDataSource
    limits: ColumnDataSource
    curves: list[ColumnDataSource]
    curve_items: list[LegendItem]


def build_insight_views(width: int = 480) -> InsightViews:
    """Create both insight charts once, empty; :func:`update_insight_views` fills them."""
    funnel = figure(
        height=320, width=width, x_axis_type="log", title="Rate against benchmark, by volume",
        x_axis_label="delivered", y_axis_label="rate ÷ benchmark", tools="pan,wheel_zoom,reset",
        x_range=Range1d(10, 1e6), y_range=Range1d(0, 2), name="funnel-plot",
    )  # fmt: skip
    limits = ColumnDataSource({"n": [], "low95": [], "high95": [], "low998": [], "high998": []})
    funnel.varea("n", "low998", "high998", source=limits, fill_color="#999999", fill_alpha=0.12)
    funnel.varea("n", "low95", "high95", source=limits, fill_color="#999999", fill_alpha=0.18)
    funnel.line("n", "low95", source=limits, line_dash="dashed", line_color="#777777")
    funnel.line("n", "low998", source=limits, line_dash="dotted", line_color="#777777")
    points = ColumnDataSource(
        {"n": [], "index": [], "series": [], "rate": [], "benchmark": [], "q": [], "color": []}
    )
    dots = funnel.scatter("n", "index", source=points, size=8, fill_color="color", line_color=None)
    funnel.add_tools(HoverTool(renderers=[dots], tooltips=[
        ("", "@series"), ("rate", "@rate"), ("benchmark", "@benchmark"),
        ("delivered", "@n{0,0}"), ("q", "@q"),
    ]))  # fmt: skip
    ecdf = figure(
        height=320, width=width, x_axis_type="log", title="Conversion time (ECDF)",
        x_axis_label="hours after delivery", y_axis_label="share of conversions",
        tools="pan,wheel_zoom,reset", x_range=Range1d(0.05, 200), y_range=Range1d(0, 1),
        name="ecdf-plot",
    )  # fmt: skip
    ecdf.yaxis.formatter = NumeralTickFormatter(format="0%")
    curves, items = [], []
    for i in range(MAX_SERIES):
        source = ColumnDataSource({"x": [], "y": []})
        color = PALETTE[i] if i < len(PALETTE) else OTHER_COLOR
        line = ecdf.line("x", "y", source=source, line_color=color, line_width=2)
        curves.append(source)
        items.append(LegendItem(label=value(""), renderers=[line], visible=False))
    ecdf.add_layout(Legend(items=items, click_policy="hide", label_text_font_size="10px"), "right")
    from bokeh.layouts import row

    return InsightViews(funnel, ecdf, row(funnel, ecdf), points, limits, curves, items)


def update_insight_views(views: InsightViews, found: dict[str, Any]) -> None:
    """Show a result of ``convlib.insights.insights`` in the two charts."""
    table = pd.DataFrame(found.get("benchmark_table") or [])
    if table.empty:
        views.points.data = {k: [] for k in views.points.data}
        views.limits.data = {k: [] for k in views.limits.data}
    else:
        key = table.columns[0]
        pooled = float((table["benchmark"] * table["delivered"]).sum() / table["delivered"].sum())
        n = np.logspace(1, math.log10(max(table["delivered"].max() * 2, 100)), 80)
        spread = np.sqrt((1 - pooled) / (n * pooled)) if pooled > 0 else np.zeros_like(n)
        views.limits.data = {
            "n": n, "low95": 1 - 1.96 * spread, "high95": 1 + 1.96 * spread,
            "low998": 1 - 3.09 * spread, "high998": 1 + 3.09 * spread,
        }  # fmt: skip
        index = (table["rate"] / table["benchmark"]).to_numpy(dtype=float)
        views.points.data = {
            "n": table["delivered"].to_numpy(dtype=float), "index": index,
            "series": [str(v) or "(none)" for v in table[key]],
            "rate": [format_rate(v) for v in table["rate"]],
            "benchmark": [format_rate(v) for v in table["benchmark"]],
            "q": [f"{v:.2g}" for v in table["q"]],
            "color": ["#D55E00" if below else "#0072B2" for below in table["below"]],
        }  # fmt: skip
        _set_range(views.funnel.x_range, 10.0, float(n[-1]))
        _set_range(views.funnel.y_range, 0.0, max(2.0, float(np.nanmax(index)) * 1.1))
    times = pd.DataFrame(found.get("conversion_time") or [])
    levels = [c for c in times.columns if c.startswith("q") and c.endswith("_s")]
    levels.sort(key=lambda c: int(c[1:-2]))
    key = found.get("selection", {}).get("breakdown")
    times = times.sort_values("converted", ascending=False) if not times.empty else times
    for i, (source, item) in enumerate(zip(views.curves, views.curve_items, strict=True)):
        if i >= len(times):
            source.data, item.visible = {"x": [], "y": []}, False
            continue
        row_ = times.iloc[i]
        source.data = {
            "x": np.array([row_[c] for c in levels], dtype=float) / 3600,
            "y": np.array([int(c[1:-2]) / 100 for c in levels]),
        }
        item.label = value((str(row_[key]) or "(none)") if key else "All messages")
        item.visible = True
