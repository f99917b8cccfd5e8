"""The dashboard controller, without a browser: widget changes reach the Bokeh sources and the
table, and what they show equals ``Source.metrics`` for the same selection."""

from __future__ import annotations

import base64
import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

import convlib
from convlib.charts import MAX_SERIES
from convlib.dashboard import ConversionDashboard, dashboard_choices
from convlib.sample import SampleSpec, generate_sample


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    messages, conversions = generate_sample(SampleSpec(messages=30_000, seed=5))
    folder = tmp_path_factory.mktemp("dash")
    from convlib.sample import write_source

    return convlib.open_source(write_source(messages, conversions, folder, "parquet"))


@pytest.fixture
def dashboard(source):
    return ConversionDashboard(source, start="2026-03-01", end="2026-04-30", granularity="week")


def shown_points(dashboard) -> pd.DataFrame:
    """What the chart's point sources hold, as a frame (series, x, y, delivered, converted)."""
    rows = []
    for slot, item in zip(dashboard.views.slots, dashboard.views.legend_items, strict=True):
        if not item.visible:
            continue
        data = slot.points.data
        for i in range(len(data["x"])):
            rows.append(
                {
                    "series": data["series"][i],
                    "y": float(data["y"][i]),
                    "delivered": int(data["delivered"][i]),
                    "converted": int(data["converted"][i]),
                }
            )
    return pd.DataFrame(rows)


def test_initial_chart_equals_metrics(dashboard, source):
    expected = source.metrics("2026-03-01", "2026-04-30", breakdown="channel", granularity="week")
    shown = shown_points(dashboard)
    assert len(shown) == len(expected)
    for channel, rows in expected.groupby("channel"):
        got = shown[shown["series"] == channel]
        assert got["delivered"].tolist() == rows["delivered"].tolist()
        assert got["converted"].tolist() == rows["converted"].tolist()
        np.testing.assert_allclose(got["y"], rows["conversion_rate"], rtol=1e-12)
    assert dashboard.w_status.value == ""


def test_widget_changes_update_sources_and_table(dashboard, source):
    dashboard.w_breakdown.value = "country"
    dashboard.w_granularity.value = "month"
    dashboard.w_country.value = ["Netherlands (NL)", "United Kingdom (GB)"]
    dashboard.w_window.value = "24h"
    assert dashboard.state.country == ["NL", "GB"]
    expected = source.metrics(
        "2026-03-01", "2026-04-30", breakdown="country", granularity="month", window="24h",
        filters={"country": ["NL", "GB"]},
    )  # fmt: skip
    shown = shown_points(dashboard)
    assert set(shown["series"]) == {"Netherlands (NL)", "United Kingdom (GB)"}
    assert shown["delivered"].sum() == expected["delivered"].sum()
    table = pd.DataFrame(dashboard.views.table_source.data)
    assert len(table) == len(expected)
    merged = table.assign(period=table["period"]).sort_values(["period", "series"])
    expected = expected.assign(
        series=expected["country"].map({"NL": "Netherlands (NL)", "GB": "United Kingdom (GB)"}),
        period=expected["period"].map(dt.date.isoformat),
    ).sort_values(["period", "series"])
    assert merged["delivered"].tolist() == expected["delivered"].tolist()
    np.testing.assert_allclose(merged["rate"], expected["conversion_rate"], rtol=1e-12)
    np.testing.assert_allclose(merged["median_s"], expected["conversion_time_median_s"], rtol=1e-12)


def test_metric_switch_plots_hours_without_querying(dashboard, source):
    calls = len(dashboard._results)
    dashboard.w_metric.value = "time_median"
    assert len(dashboard._results) == calls  # a view change runs no query
    expected = source.metrics("2026-03-01", "2026-04-30", breakdown="channel", granularity="week")
    shown = shown_points(dashboard)
    sms = shown[shown["series"] == "SMS"]["y"].to_numpy()
    want = expected[expected["channel"] == "SMS"]["conversion_time_median_s"].to_numpy() / 3600
    np.testing.assert_allclose(sms, want, rtol=1e-12)


def test_csv_download_is_exactly_the_table(dashboard):
    dashboard.w_view.value = "table"
    assert dashboard.table_box.layout.display is None
    assert dashboard.chart_box.layout.display == "none"
    link = dashboard.w_download.value
    payload = link.split("base64,", 1)[1].split('"', 1)[0]
    downloaded = pd.read_csv(io.BytesIO(base64.b64decode(payload)))
    table = pd.DataFrame(dashboard.views.table_source.data)
    assert downloaded["delivered"].tolist() == table["delivered"].tolist()
    np.testing.assert_allclose(downloaded["rate"], table["rate"], rtol=1e-15)


def test_voice_shows_no_data_message_not_zero(dashboard):
    dashboard.w_channel.value = ["Voice"]
    assert dashboard.w_nodata.layout.display is None
    assert "conversion tracking may not be enabled" in dashboard.w_nodata.value.lower()
    assert dashboard.chart_box.layout.display == "none"
    assert dashboard.w_headline.value == ""


def test_many_campaigns_fold_into_other(dashboard, source):
    dashboard.w_breakdown.value = "campaign"
    labels = [item.label.value for item in dashboard.views.legend_items if item.visible]
    assert len(labels) == MAX_SERIES
    assert labels[-1].startswith("Other (")
    expected = source.metrics("2026-03-01", "2026-04-30", granularity="week")
    shown = shown_points(dashboard)
    # the folded series and the largest ones add up to the whole selection, period by period
    assert shown["delivered"].sum() == expected["delivered"].sum()
    assert "folded into <i>Other</i>" in dashboard.w_note.value


def test_presets_resolve_against_the_data(dashboard):
    dashboard.w_preset.value = "last-month"
    assert (dashboard.state.start, dashboard.state.end) == (
        dt.date(2026, 5, 1),
        dt.date(2026, 5, 31),
    )
    assert dashboard.w_start.value == dt.date(2026, 5, 1)
    dashboard.w_start.value = dt.date(2026, 5, 10)
    assert dashboard.state.preset == "custom"
    assert dashboard.w_preset.value == "custom"


def test_headline_compares_with_previous_period(dashboard, source):
    html = dashboard.w_headline.value
    current = source.metrics("2026-03-01", "2026-04-30", granularity=None).iloc[0]
    assert f"{int(current['delivered']):,}" in html
    assert "previous 61 days" in html


def test_bad_value_is_shown_in_the_page(dashboard):
    dashboard.w_start.value = dt.date(2026, 5, 10)
    dashboard.w_end.value = dt.date(2026, 5, 1)
    assert "before start" in dashboard.w_status.value
    assert "convlib-error" in dashboard.w_status.value


def test_footer_counts_excluded_records(dashboard, source):
    quality = source.quality("7d")
    footer = dashboard.w_footer.value
    assert f"{quality['messages']['not_delivered']:,} not delivered" in footer
    assert f"{quality['conversions']['before_delivery']:,} before delivery" in footer
    assert "window <b>7d</b>" in footer


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": "5d"}, "unknown window"),
        ({"period": "yesterday"}, "unknown period"),
        ({"tz": "Nowhere/City"}, "unknown time zone"),
        ({"metric": "clicks"}, "unknown metric"),
    ],
)
def test_notebook_parameters_are_validated(kwargs, message):
    with pytest.raises(convlib.ContractError, match=message):
        dashboard_choices(**kwargs)


def test_insights_panel_focuses_the_chart(sample_dir):
    board = ConversionDashboard(convlib.open_source(sample_dir))  # last 90 days of the sample
    text = " ".join(
        part.value for row in board.w_insight_list.children
        for part in getattr(row, "children", [row]) if hasattr(part, "value")
    )  # fmt: skip
    assert "spring-sale: conversion rate fell" in text and "18 Apr 2026" in text
    board.w_channel.value = ["WhatsApp Business"]  # the selection moves on after the analysis
    first = next(row for row in board.w_insight_list.children if getattr(row, "children", ()))
    first.children[0].click()  # "Focus" on spring-sale's drop
    assert board.state.campaign == ["spring-sale"] and board.state.channel == []
    assert (board.state.breakdown, board.state.granularity) == ("campaign", "day")
    assert board.state.start <= dt.date(2026, 4, 18) <= board.state.end
    assert board.w_nodata.layout.display == "none" and board.w_status.value == ""
    shown = shown_points(board)
    assert list(shown["series"].unique()) == ["spring-sale"]
