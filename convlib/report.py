"""The scheduled report: parameters, the sections the report notebook shows, and `convlib report`
which runs that notebook with Papermill and writes one self-contained HTML file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import html
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from convlib.charts import (
    build_insight_views,
    build_views,
    series_frames,
    table_frame,
    update_insight_views,
    update_views,
)
from convlib.contract import (
    ContractError,
    parse_breakdown,
    parse_granularity,
    parse_window,
)
from convlib.countries import country_label
from convlib.formatting import format_duration, format_rate
from convlib.fragments import headline_html
from convlib.periods import PRESETS, parse_date, parse_tz, previous_period, resolve_preset
from convlib.source import Source, open_source

__all__ = [
    "REPORT_NOTEBOOK",
    "Report",
    "ReportSpec",
    "render_report",
    "report_spec",
]

REPORT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "conversion_report.ipynb"
MAX_REPORT_SERIES = 12


@dataclass(frozen=True)
class ReportSpec:
    """Validated report parameters with the period resolved to dates."""

    source: str | None
    source_tz: str | None
    period: str
    start: dt.date
    end: dt.date
    tz: str
    window: str
    breakdown: str | None
    granularity: str
    filters: dict[str, list[str]] = field(default_factory=dict)
    benchmark: str | None = None
    anchor: str = "data"
    explicit_dates: bool = False

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters that reproduce this report exactly (explicit dates)."""
        return {
            "source": self.source, "source_tz": self.source_tz, "period": self.period,
            "start": self.start.isoformat() if self.explicit_dates else None,
            "end": self.end.isoformat() if self.explicit_dates else None,
            "anchor": self.anchor, "tz": self.tz,
            "window": self.window, "breakdown": self.breakdown or "none",
            "granularity": self.granularity, "channel": self.filters.get("channel", []),
            "country": self.filters.get("country", []),
            "campaign": self.filters.get("campaign", []), "benchmark": self.benchmark,
        }  # fmt: skip


def report_spec(
    source: str | None = None,
    period: str | None = "last-month",
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
    tz: str = "UTC",
    window: str = "7d",
    breakdown: str | None = "channel",
    granularity: str = "day",
    channel: list[str] | None = None,
    country: list[str] | None = None,
    campaign: list[str] | None = None,
    benchmark: str | None = None,
    source_tz: str | None = None,
    anchor: str = "data",
    opened: Source | None = None,
) -> tuple[ReportSpec, Source]:
    """Validate report parameters and resolve the period; raises a one-line ContractError.

    A relative ``period`` (``last-week``, ``last-month``, ``month-to-date``, ``last-quarter``,
    ...) is resolved against the data's as-of date (``anchor="data"``, the default: a report on
    an export is about that export) or against today (``anchor="today"``). Explicit ``start``
    and ``end`` win over ``period``.
    """
    zone = parse_tz(tz)
    parse_tz(source_tz)
    parse_window(window)
    granularity_g = parse_granularity(granularity)
    breakdown_b = parse_breakdown(breakdown)
    if anchor not in ("data", "today"):
        raise ContractError(f"unknown anchor {anchor!r}: use data or today")
    if benchmark and not Path(benchmark).is_file():
        raise ContractError(f"{benchmark}: benchmark file not found")
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first and last and last < first:
        raise ContractError(f"end {last} is before start {first}")
    if (first is None) != (last is None):
        raise ContractError("give both --start and --end, or a --period")
    if first is None and (period or "") not in PRESETS:  # "custom" needs dates
        raise ContractError(f"unknown period {period!r}: use one of {', '.join(PRESETS)}")
    src = opened or open_source(source, source_tz=source_tz)
    if first is None or last is None:
        as_of = src.as_of(zone.key)
        span = src.data_range(zone.key)
        if as_of is None or span is None:
            raise ContractError(f"{src.description}: no delivered message to report on")
        today = dt.datetime.now(zone).date() if anchor == "today" else as_of.date()
        first, last = resolve_preset(str(period), today, span[0])
    filters = {
        name: list(values)
        for name, values in (("channel", channel), ("country", country), ("campaign", campaign))
        if values
    }
    explicit = start is not None
    spec = ReportSpec(
        source=source, source_tz=source_tz, period="custom" if explicit else str(period),
        start=first, end=last, tz=zone.key, window=window, breakdown=breakdown_b,
        granularity=granularity_g.value, filters=filters, benchmark=benchmark, anchor=anchor,
        explicit_dates=explicit,
    )  # fmt: skip
    return spec, src


class Report:
    """The numbers of one report and the HTML of each of its sections."""

    def __init__(self, spec: ReportSpec, source: Source) -> None:
        self.spec = spec
        self.source = source
        common = {"window": spec.window, "tz": spec.tz, "filters": spec.filters}
        self.metrics = source.metrics(
            spec.start, spec.end, breakdown=spec.breakdown, granularity=spec.granularity, **common
        )
        both = source.summary(spec.start, spec.end, **common)
        self.totals = both[both["period"] == spec.start]
        self.previous = both[both["period"] != spec.start]
        self.previous_period = previous_period(spec.start, spec.end)
        self.quality = source.quality(spec.window)
        self.as_of = source.as_of(spec.tz)

    # -- sections ------------------------------------------------------------------------------
    def header(self) -> str:
        """What the report covers: parameters, data source and as-of time."""
        s = self.spec
        filters = "; ".join(f"{k}: {', '.join(v)}" for k, v in s.filters.items()) or "none"
        rows = [
            ("Period", f"{s.start} – {s.end} ({s.period}), local dates in {s.tz}"),
            ("Period resolved against", "explicit dates" if s.explicit_dates else s.anchor),
            ("Compared with", f"{self.previous_period[0]} – {self.previous_period[1]}"),
            ("Measurement window", s.window),
            ("Breakdown", s.breakdown or "none"),
            ("Granularity", s.granularity),
            ("Filters", filters),
            ("Source", self.source.description),
            ("Data as of", self.as_of.strftime("%Y-%m-%d %H:%M %Z") if self.as_of else "–"),
            ("Generated", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ]
        body = "".join(
            f"<tr><th style='text-align:left;padding:2px 12px 2px 0'>{k}</th>"
            f"<td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        warning = ""
        if not self.metrics.empty and self.metrics["provisional"].any():
            count = int(self.metrics["provisional"].sum())
            warning = (
                "<div class='convlib-provisional' style='background:#fff4e5;border-left:4px solid"
                f" #e69f00;padding:6px 10px;margin-top:8px'><b>Provisional:</b> {count} row(s) "
                f"of this report belong to periods whose {s.window} window had not closed when "
                "the data was exported; their conversion rates may still rise.</div>"
            )
        return f"<table class='convlib-parameters'>{body}</table>{warning}"

    def headline(self) -> str:
        """Headline figures with the change against the previous period of equal length."""
        if self.totals.empty:
            return _no_data(self.spec)
        previous = None if self.previous.empty else self.previous.iloc[0]
        return headline_html(self.totals.iloc[0], previous, self.spec.start, self.spec.end)

    def _series(self) -> list[tuple[str, pd.DataFrame]]:
        b = self.spec.breakdown
        if not b:
            return series_frames(self.metrics, None, [], {})
        volume = self.metrics.groupby(b)["delivered"].sum().sort_values(ascending=False)
        order = list(volume.index[:MAX_REPORT_SERIES])
        labels = {v: country_label(v) if b == "country" else (v or "(no campaign)") for v in order}
        return series_frames(self.metrics, b, order, labels)

    def chart(self, metric: str) -> Any:
        """The spline chart of ``rate`` or ``time_mean`` per breakdown value, volume below."""
        if self.metrics.empty:
            return None
        views = build_views(width=900)
        update_views(
            views, self._series(), metric, self.spec.granularity, self.spec.start, self.spec.end
        )
        return views.layout

    def table(self) -> str:
        """Values per interval and series, as an HTML table."""
        if self.metrics.empty:
            return _no_data(self.spec)
        frame = table_frame(self._series())
        shown = pd.DataFrame(
            {
                "Period": frame["period"],
                "Series": frame["series"],
                "Conversion rate": frame["rate"].map(format_rate),
                "95% CI": [
                    f"{format_rate(lo)} – {format_rate(hi)}"
                    for lo, hi in zip(frame["ci_low"], frame["ci_high"], strict=True)
                ],
                "Mean time": frame["mean_s"].map(format_duration),
                "Median time": frame["median_s"].map(format_duration),
                "Delivered": frame["delivered"].map("{:,}".format),
                "Converted": frame["converted"].map("{:,}".format),
                "Provisional": frame["provisional"],
            }
        )
        return shown.to_html(index=False, classes="convlib-table", border=0)

    @functools.cached_property
    def insights(self) -> dict[str, Any]:
        """Changes, under-performers and comparison by campaign (see ``convlib.insights``)."""
        from convlib.insights import insights

        return insights(
            self.source, self.spec.start, self.spec.end, breakdown="campaign",
            filters=self.spec.filters, window=self.spec.window, tz=self.spec.tz,
            benchmark=self.spec.benchmark,
        )  # fmt: skip

    def insight_charts(self) -> Any:
        """The funnel plot of campaigns against their benchmark and the conversion-time ECDF."""
        views = build_insight_views(width=460)
        update_insight_views(views, self.insights)
        return views.layout

    def insights_html(self) -> str:
        """Significant changes, under-performing campaigns and the movement against the
        previous period, in plain words."""
        from convlib.insights import sentences

        found = self.insights
        lines = sentences(found, limit=12) or ["No significant finding in this period."]
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        return (
            f"<ul class='convlib-insights'>{items}</ul><p style='font-size:12px;color:#555'>"
            "Changes: likelihood-ratio test on daily rates, corrected for every day and campaign "
            "scanned (5% family-wise). Under-performers: one-sided exact binomial test against "
            f"the benchmark ({html.escape(found['selection']['benchmark'])}), 5% false "
            "discovery rate.</p>"
        )

    def quality_html(self) -> str:
        """Every record not counted, and why."""
        m, c = self.quality["messages"], self.quality["conversions"]
        rows = [("Messages", k.replace("_", " "), v) for k, v in m.items()]
        rows += [("Conversions", k.replace("_", " "), v) for k, v in c.items()]
        body = "".join(
            f"<tr><td>{t}</td><td>{k}</td><td style='text-align:right'>{v:,}</td></tr>"
            for t, k, v in rows
        )
        return (
            "<table class='convlib-quality'><tr><th>Table</th><th>Count</th><th>Rows</th></tr>"
            f"{body}</table><p style='font-size:12px;color:#555'>Counts for the whole source "
            f"with the {self.spec.window} window. Each row falls in exactly one category.</p>"
        )


def _no_data(spec: ReportSpec) -> str:
    return (
        "<div class='convlib-nodata'><b>No data.</b> No tracked delivery matches this report's "
        f"filters in {spec.start} – {spec.end}: conversion tracking may not be enabled for "
        "these sends, or nothing was delivered. This is not a 0% conversion rate.</div>"
    )


# -- running the notebook -----------------------------------------------------------------------
def render_report(spec: ReportSpec, output: Path, timeout: int = 600) -> tuple[Path, Path]:
    """Run the report notebook with Papermill and write ``output`` (HTML) and the notebook.

    Everything is written to a temporary folder first and moved into place only when both
    files are complete, so a failure never replaces an earlier good report.
    """
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    output = output.with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".report-") as work:
        executed = Path(work) / "report.ipynb"
        try:
            papermill.execute_notebook(
                str(REPORT_NOTEBOOK), str(executed), parameters=spec.parameters(),
                kernel_name="python3", progress_bar=False, log_output=False,
                cwd=str(REPORT_NOTEBOOK.parent), execution_timeout=timeout,
            )  # fmt: skip
        except papermill.PapermillExecutionError as exc:
            raise RuntimeError(f"the report notebook failed: {exc.ename}: {exc.evalue}") from None
        exporter = HTMLExporter(
            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
            mathjax_url="", require_js_url="", embed_images=True,
        )  # fmt: skip
        notebook = nbformat.read(executed, as_version=4)
        body, _ = exporter.from_notebook_node(
            notebook, resources={"metadata": {"name": f"Conversion report {spec.start}"}}
        )
        page = Path(work) / "report.html"
        page.write_text(body, encoding="utf-8")
        for path in (page, executed):
            path.chmod(0o644)
        notebook_out = output.with_suffix(".ipynb")
        shutil.move(executed, notebook_out)
        shutil.move(page, output)
    return output, notebook_out


def _cmd_report(args: argparse.Namespace) -> int:
    spec, _ = report_spec(
        source=args.source, period=args.period, start=args.start, end=args.end, tz=args.tz,
        window=args.window, breakdown=args.breakdown, granularity=args.granularity,
        channel=args.channel, country=args.country, campaign=args.campaign,
        benchmark=args.benchmark, source_tz=args.source_tz, anchor=args.anchor,
    )  # fmt: skip
    output = Path(args.output) if args.output else _default_output(spec)
    try:
        html_path, notebook_path = render_report(spec, output)
    except RuntimeError as exc:
        print(f"convlib: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {html_path} and {notebook_path}")
    return 0


def _default_output(spec: ReportSpec) -> Path:
    name = f"conversion_report_{spec.start}_{spec.end}"
    if spec.breakdown:
        name += f"_by_{spec.breakdown}"
    return Path("reports") / f"{name}.html"
