"""Property test: the engine equals the pandas oracle on random data, windows, zones, buckets."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convlib
from convlib.contract import parse_window
from convlib.sample import write_source

from .oracle import oracle_metrics

ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]
# Around both 2026 DST changes in Europe and America, so buckets cross them.
EPOCHS = [dt.datetime(2026, 3, 6, tzinfo=dt.UTC), dt.datetime(2026, 10, 20, tzinfo=dt.UTC)]
SPAN_MS = 30 * 86_400_000


@st.composite
def datasets(draw):
    epoch = draw(st.sampled_from(EPOCHS))
    n = draw(st.integers(1, 40))
    ids = [f"m{draw(st.integers(0, n + 3))}" for _ in range(n)]  # some ids repeat
    offsets = draw(st.lists(st.integers(0, SPAN_MS), min_size=n, max_size=n, unique=True))
    messages = []
    for mid, sent_ms in zip(ids, offsets, strict=True):
        sent = epoch + dt.timedelta(milliseconds=sent_ms)
        delivered = None
        if draw(st.integers(0, 9)) > 0:
            delivered = sent + dt.timedelta(milliseconds=draw(st.integers(0, 120_000)))
        messages.append(
            {
                "message_id": mid,
                "sent_at": sent,
                "delivered_at": delivered,
                "channel": draw(st.sampled_from(["SMS", "RCS", "WhatsApp Business"])),
                "country": draw(st.sampled_from(["NL", "DE", "GB"])),
                "campaign": draw(st.sampled_from([None, "spring", "Spring", "b"])),
                "conversion_tracking": draw(st.sampled_from([True, True, True, False])),
            }
        )
    conversions = []
    for _ in range(draw(st.integers(0, 60))):
        base = draw(st.sampled_from(messages))
        anchor = base["delivered_at"] or base["sent_at"]
        # delays cluster near the window edges, where mistakes hide
        delay_ms = draw(
            st.one_of(
                st.integers(-3_600_000, 31 * 86_400_000),
                st.sampled_from(
                    [0, 3_600_000, 86_400_000, 604_800_000, 604_800_001, 2_592_000_000]
                ),
            )
        )
        mid = base["message_id"] if draw(st.integers(0, 19)) else "unknown"
        conversions.append(
            {"message_id": mid, "converted_at": anchor + dt.timedelta(milliseconds=delay_ms)}
        )
    return messages, conversions


def to_frames(messages, conversions):
    m = pd.DataFrame(messages)
    for column in ("sent_at", "delivered_at"):
        m[column] = pd.to_datetime(m[column], utc=True).astype("datetime64[us, UTC]")
    c = pd.DataFrame(conversions, columns=["message_id", "converted_at"])
    c["converted_at"] = pd.to_datetime(c["converted_at"], utc=True).astype("datetime64[us, UTC]")
    return m, c


def assert_same(engine: pd.DataFrame, oracle: pd.DataFrame, breakdown):
    if oracle.empty:
        assert engine.empty
        return
    assert len(engine) == len(oracle)
    keys = ["period"] + ([breakdown] if breakdown else [])
    assert engine[keys].values.tolist() == oracle[keys].values.tolist()
    for column in ("delivered", "converted", "provisional"):
        assert engine[column].tolist() == oracle[column].tolist(), column
    for column in (
        "conversion_rate",
        "rate_ci_low",
        "rate_ci_high",
        "conversion_time_mean_s",
        "conversion_time_median_s",
    ):
        for got, want in zip(engine[column], oracle[column], strict=True):
            if math.isnan(want):
                assert math.isnan(got), column
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-6), column


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=datasets(),
    window=st.sampled_from(["1h", "6h", "12h", "24h", "3d", "7d", "14d", "30d"]),
    tz=st.sampled_from(ZONES),
    granularity=st.sampled_from(["day", "week", "month"]),
    breakdown=st.sampled_from([None, "channel", "country", "campaign"]),
    cut=st.booleans(),
    cache=st.booleans(),
)
def test_engine_matches_oracle(
    tmp_path_factory, data, window, tz, granularity, breakdown, cut, cache
):
    messages, conversions = data
    m, c = to_frames(messages, conversions)
    folder = write_source(m, c, tmp_path_factory.mktemp("src"), "parquet")
    source = convlib.open_source(folder, cache=cache)
    start = end = None
    if cut:  # a period filter that cuts buckets
        first = min(x["sent_at"] for x in messages).date()
        start, end = first + dt.timedelta(days=3), first + dt.timedelta(days=17)
    got = source.metrics(
        start, end, window=window, tz=tz, granularity=granularity, breakdown=breakdown
    )
    want = oracle_metrics(
        m.astype(object).where(m.notna(), None),
        c,
        window_s=parse_window(window).seconds,
        tz=tz,
        granularity=granularity,
        breakdown=breakdown,
        start=start,
        end=end,
    )
    assert_same(got, want, breakdown)
