"""Insights: planted changes are found on the right day, flat and volume-only series raise no
alarm, under-performers are found, and the decomposition adds up."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

import convlib
from convlib.cli import main
from convlib.insights import (
    ALPHA,
    compare_periods,
    decompose,
    detect_changes,
    insights,
    load_benchmark,
    underperformers,
)

WEEKDAY_RATE = np.array([1.0, 1.05, 1.05, 1.0, 0.95, 0.85, 0.8])  # Monday .. Sunday
WEEKDAY_VOLUME = np.array([1.1, 1.1, 1.05, 1.0, 1.0, 0.5, 0.4])


def series(
    rng: np.random.Generator,
    days: int = 56,
    volume: float = 300,
    rate: float = 0.10,
    change_day: int | None = None,
    rate_factor: float = 1.0,
    volume_factor: float = 1.0,
    provisional_days: int = 0,
) -> pd.DataFrame:
    """A daily series with weekday seasonality in volume and rate, and an optional change."""
    dates = pd.date_range("2026-03-02", periods=days, freq="D")  # starts on a Monday
    weekday = dates.weekday.to_numpy()
    after = np.arange(days) >= (change_day if change_day is not None else days)
    n = rng.poisson(volume * WEEKDAY_VOLUME[weekday] * np.where(after, volume_factor, 1.0))
    p = rate * WEEKDAY_RATE[weekday] * np.where(after, rate_factor, 1.0)
    k = rng.binomial(n, p)
    provisional = np.arange(days) >= days - provisional_days
    return pd.DataFrame(
        {"period": dates.date, "delivered": n, "converted": k, "provisional": provisional}
    )


def test_planted_drop_found_on_the_right_day():
    # power: a 40% drop at 700 messages a day (spring-sale's volume) is found within one day
    # of where it was planted (at 300 a day: 92 of 100, see docs/insights.md)
    hits = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        day = int(rng.integers(12, 44))
        found = detect_changes(series(rng, volume=700, change_day=day, rate_factor=0.6), None)
        planted = (dt.date(2026, 3, 2) + dt.timedelta(days=day)).isoformat()
        if found and found[0].direction == "drop":
            delta = abs(dt.date.fromisoformat(found[0].date) - dt.date.fromisoformat(planted))
            hits += delta.days <= 1
    assert hits >= 38


def test_rise_is_found_and_explained_with_volume():
    rng = np.random.default_rng(3)
    found = detect_changes(series(rng, change_day=30, rate_factor=1.5, volume_factor=0.5), None)
    assert len(found) == 1
    change = found[0]
    assert change.direction == "rise" and change.date == "2026-04-01"
    assert change.volume_after < 0.6 * change.volume_before
    assert "volume fell with it" in change.explanation


def test_flat_series_raise_no_alarm():
    # false alarms: weekday seasonality and small daily counts, many seeds
    alarms = 0
    runs = 300
    for seed in range(runs):
        rng = np.random.default_rng(10_000 + seed)
        volume = [25, 60, 300][seed % 3]
        rate = [0.03, 0.08, 0.15][seed % 3]
        alarms += bool(detect_changes(series(rng, volume=volume, rate=rate), None))
    assert alarms / runs <= ALPHA / 2  # Bonferroni keeps it well under the nominal 5%


def test_volume_only_change_is_not_a_rate_change():
    alarms = 0
    for seed in range(60):
        rng = np.random.default_rng(500 + seed)
        alarms += bool(detect_changes(series(rng, change_day=28, volume_factor=0.3), None))
    assert alarms <= 1


def test_provisional_days_cannot_raise_an_alarm():
    # the last days, whose window is open, look like a drop: they are left out
    rng = np.random.default_rng(8)
    frame = series(rng, provisional_days=6)
    frame.loc[frame["provisional"], "converted"] //= 3
    assert detect_changes(frame, None) == []


def test_changes_are_corrected_for_the_number_of_series():
    rng = np.random.default_rng(4)
    parts = [series(rng).assign(campaign=f"c{i}") for i in range(20)]
    parts.append(series(rng, change_day=25, rate_factor=0.55).assign(campaign="planted"))
    found = detect_changes(pd.concat(parts), "campaign")
    assert [c.series for c in found] == ["planted"]


def _period(values: dict[str, tuple[int, int]], column: str = "channel") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {column: v, "delivered": n, "converted": k, "conversion_rate": k / n,
             "conversion_time_mean_s": 100.0}
            for v, (n, k) in values.items()
        ]
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_decomposition_adds_up(seed):
    rng = np.random.default_rng(seed)
    names = ["SMS", "RCS", "Email", "Viber", "New"]
    current = {v: (int(rng.integers(100, 5000)), 0) for v in names[int(rng.integers(0, 2)) :]}
    current = {v: (n, int(rng.integers(0, n // 5))) for v, (n, _) in current.items()}
    previous = {v: (int(rng.integers(100, 5000)), 0) for v in names[:4]}
    previous = {v: (n, int(rng.integers(0, n // 5))) for v, (n, _) in previous.items()}
    result = decompose(_period(current), _period(previous), "channel")
    assert result["mix_effect"] + result["rate_effect"] == pytest.approx(
        result["change"], abs=1e-12
    )


def test_mix_effect_tells_more_sms_from_worse_sms():
    before = _period({"SMS": (1000, 50), "WhatsApp Business": (1000, 150)})
    more_sms = _period({"SMS": (1800, 90), "WhatsApp Business": (200, 30)})  # same rates
    result = decompose(more_sms, before, "channel")
    assert result["change"] < 0
    assert result["mix_effect"] == pytest.approx(result["change"])
    assert result["rate_effect"] == pytest.approx(0.0, abs=1e-12)
    worse_sms = _period({"SMS": (1000, 20), "WhatsApp Business": (1000, 150)})
    result = decompose(worse_sms, before, "channel")
    assert result["mix_effect"] == pytest.approx(0.0, abs=1e-12)
    assert result["rate_effect"] == pytest.approx(result["change"])


def test_comparison_p_value():
    rows = compare_periods(_period({"SMS": (1000, 100)}), _period({"SMS": (1000, 70)}), "channel")
    (sms,) = rows
    assert sms.change == pytest.approx(0.03)
    # two-proportion z-test, pooled: z = 0.03 / sqrt(0.085 * 0.915 * 2/1000) = 2.4054
    assert sms.p_value == pytest.approx(0.016155, rel=1e-3)


def test_underperformers_with_fdr():
    cells = pd.DataFrame(
        {
            "campaign": ["weak", "fine", "small-weak", "strong"],
            "channel": ["SMS"] * 4,
            "country": ["NL"] * 4,
            "delivered": [3000, 3000, 40, 3000],
            "converted": [150, 235, 2, 300],
        }
    )
    found = underperformers(cells, "campaign", pd.Series([0.08] * 4))
    assert [u.series for u in found] == ["weak"]  # 5% vs 8%; 40 messages prove nothing
    assert found[0].benchmark == pytest.approx(0.08)


def test_benchmark_file(tmp_path):
    path = tmp_path / "bench.csv"
    path.write_text("channel,country,conversion_rate\nSMS,NL,8%\nSMS,,0.07\n")
    table = load_benchmark(path)
    assert table["conversion_rate"].tolist() == [0.08, 0.07]
    path.write_text("channel,conversion_rate\nSMS,lots\n")
    with pytest.raises(convlib.ContractError, match="'lots'"):
        load_benchmark(path)


def test_spring_sale_drop_on_the_sample(sample_dir):
    source = convlib.open_source(sample_dir)
    found = insights(source, "2026-04-01", "2026-04-30", breakdown="campaign")
    spring = [c for c in found["changes"] if c["series"] == "spring-sale"]
    assert spring, found["changes"]
    change = spring[0]
    assert abs(dt.date.fromisoformat(change["date"]) - dt.date(2026, 4, 18)).days <= 1
    assert change["direction"] == "drop"
    assert "recipient behaviour" in change["explanation"]
    names = {u["series"] for u in found["underperformers"]}
    assert {"flash-friday", "loyalty-winback"} <= names
    # the conversion-time distribution reads "GB about 4 h, FR about 11 h" for WhatsApp
    times = source.time_distribution(
        "2026-01-01", "2026-03-31", breakdown="country",
        filters={"channel": ["WhatsApp Business"]},
    )  # fmt: skip
    by_country = times.set_index("country")
    assert by_country.loc["GB", "within_6h"] > by_country.loc["FR", "within_6h"] + 0.2


def test_cli_insights_json(capsys, sample_dir):
    code = main(["insights", "--source", str(sample_dir), "--start", "2026-04-01",
                 "--end", "2026-04-28", "--channel", "SMS", "--country", "DE"])  # fmt: skip
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert {"changes", "underperformers", "comparison"} <= set(found)
    change = found["changes"][0]
    assert set(change) == {"series", "date", "direction", "rate_before", "rate_after",
                           "p_value", "volume_before", "volume_after", "explanation"}  # fmt: skip
    assert set(found["underperformers"][0]) >= {"series", "rate", "benchmark", "delivered",
                                                 "p_value"}  # fmt: skip
    assert set(found["comparison"][0]) >= {"series", "rate", "previous_rate", "change", "p_value"}


def test_funnel_and_ecdf_charts_show_the_findings(sample_dir):
    from convlib.charts import build_insight_views, update_insight_views

    source = convlib.open_source(sample_dir)
    found = insights(source, "2026-04-01", "2026-04-30", breakdown="campaign")
    views = build_insight_views()
    update_insight_views(views, found)
    points = views.points.data
    flagged = {s for s, c in zip(points["series"], points["color"], strict=True) if c == "#D55E00"}
    assert flagged == {u["series"] for u in found["underperformers"]}
    # control limits narrow as volume grows
    low = np.asarray(views.limits.data["low95"])
    assert np.all(np.diff(low) > 0) and low[-1] < 1
    shown = [item.label.value for item in views.curve_items if item.visible]
    assert len(shown) == min(len(found["conversion_time"]), len(views.curves))
    first = np.asarray(views.curves[0].data["y"])
    assert first[0] == 0.05 and first[-1] == 0.95
