"""One test per rule of DATA_CONTRACT.md, with hand-computed expectations."""

from __future__ import annotations

import datetime as dt
import math

import pytest

import convlib
from convlib.contract import ContractError

D0 = "2026-03-10T12:00:00.000Z"  # a delivery time used across cases


def one(make_source, conversions, window="7d", **message):
    """Metrics of a source with one delivered message and the given conversions."""
    row = {"message_id": "a", "sent_at": "2026-03-10T11:59:59Z", "delivered_at": D0, **message}
    src = convlib.open_source(make_source([row], [("a", c) for c in conversions]))
    return src.metrics(window=window, as_of="2026-12-31T00:00:00Z"), src


# (conversions, window, converted, conversion time in seconds)
WINDOW_CASES = [
    pytest.param(["2026-03-10T12:00:00.000Z"], "7d", 1, 0.0, id="zero-delay-counts"),
    # both window ends are inclusive: exactly W after delivery still counts
    pytest.param(["2026-03-17T12:00:00.000Z"], "7d", 1, 604800.0, id="exactly-at-window-edge"),
    # one millisecond past the window does not count
    pytest.param(["2026-03-17T12:00:00.001Z"], "7d", 0, None, id="1ms-after-window"),
    # a conversion before delivery never counts
    pytest.param(["2026-03-10T11:59:59.999Z"], "7d", 0, None, id="before-delivery"),
    # only the first qualifying conversion counts, and the message counts once
    pytest.param(
        ["2026-03-10T15:00:00Z", "2026-03-10T13:00:00Z"], "7d", 1, 3600.0, id="first-of-several"
    ),
    # a conversion before delivery does not hide a later qualifying one
    pytest.param(
        ["2026-03-10T11:00:00Z", "2026-03-10T12:30:00Z"], "7d", 1, 1800.0, id="skip-before"
    ),
    # the window is a parameter: 1h excludes what 6h includes
    pytest.param(["2026-03-10T14:00:00Z"], "1h", 0, None, id="window-1h"),
    pytest.param(["2026-03-10T14:00:00Z"], "6h", 1, 7200.0, id="window-6h"),
    pytest.param(["2026-04-09T12:00:00Z"], "30d", 1, 30 * 86400.0, id="window-30d-edge"),
    # sub-second precision is kept in conversion times
    pytest.param(["2026-03-10T12:00:01.250Z"], "24h", 1, 1.25, id="milliseconds"),
]


@pytest.mark.parametrize(("conversions", "window", "converted", "seconds"), WINDOW_CASES)
def test_window_rules(make_source, conversions, window, converted, seconds):
    frame, _ = one(make_source, conversions, window)
    assert frame["delivered"].tolist() == [1]
    assert frame["converted"].tolist() == [converted]
    mean = frame["conversion_time_mean_s"].iloc[0]
    if seconds is None:
        assert math.isnan(mean)
    else:
        assert mean == pytest.approx(seconds, abs=1e-6)
        assert frame["conversion_time_median_s"].iloc[0] == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # an undelivered message is out of scope: no row, not a 0% rate
        ({"delivered_at": None}, "not_delivered"),
        # tracking off (e.g. Voice): no data, not 0%
        ({"conversion_tracking": False, "channel": "Voice"}, "tracking_off"),
    ],
)
def test_out_of_scope_is_no_data(make_source, message, reason):
    frame, src = one(make_source, ["2026-03-10T13:00:00Z"], **message)
    assert frame.empty
    quality = src.quality()
    assert quality["messages"][reason] == 1
    assert quality["conversions"]["message_not_in_scope"] == 1


def test_duplicate_ids_keep_first_by_sent_at(make_source):
    # the later row is ignored everywhere, even its channel and delivery date
    rows = [
        {
            "message_id": "a",
            "sent_at": "2026-03-11T09:00:00Z",
            "delivered_at": "2026-03-11T09:00:01Z",
            "channel": "RCS",
        },
        {
            "message_id": "a",
            "sent_at": "2026-03-10T09:00:00Z",
            "delivered_at": "2026-03-10T09:00:01Z",
            "channel": "SMS",
        },
    ]
    src = convlib.open_source(make_source(rows, [("a", "2026-03-10T10:00:01Z")]))
    frame = src.metrics(breakdown="channel")
    assert frame[["period", "channel", "delivered", "converted"]].values.tolist() == [
        [dt.date(2026, 3, 10), "SMS", 1, 1]
    ]
    assert src.quality()["messages"]["duplicate_message_id"] == 1


def test_duplicate_tie_on_sent_at_prefers_delivered_row(make_source):
    # a tie on sent_at goes to the row that was delivered (documented choice)
    rows = [
        {"message_id": "a", "sent_at": "2026-03-10T09:00:00Z", "delivered_at": None},
        {
            "message_id": "a",
            "sent_at": "2026-03-10T09:00:00Z",
            "delivered_at": "2026-03-10T09:00:05Z",
        },
    ]
    frame = convlib.open_source(make_source(rows, [])).metrics()
    assert frame["delivered"].tolist() == [1]


def test_quality_counts_every_conversion_once(make_source):
    # each conversion falls in the first category that applies; the counts add up
    rows = [
        {
            "message_id": "a",
            "sent_at": "2026-03-10T09:00:00Z",
            "delivered_at": "2026-03-10T09:00:00Z",
        },
        {"message_id": "u", "sent_at": "2026-03-10T09:00:00Z"},
        {
            "message_id": "v",
            "sent_at": "2026-03-10T09:00:00Z",
            "delivered_at": "2026-03-10T09:00:00Z",
            "conversion_tracking": False,
        },
    ]
    conversions = [
        ("a", "2026-03-10T08:59:59Z"),  # before_delivery
        ("a", "2026-03-10T10:00:00Z"),  # counted
        ("a", "2026-03-10T11:00:00Z"),  # repeat
        ("a", "2026-03-10T10:00:00Z"),  # repeat (same instant as the counted one)
        ("a", "2026-03-18T09:00:00Z"),  # after_window (7d)
        ("zz", "2026-03-10T10:00:00Z"),  # unknown_message
        ("u", "2026-03-10T10:00:00Z"),  # message_not_in_scope (undelivered)
        ("v", "2026-03-10T10:00:00Z"),  # message_not_in_scope (untracked)
    ]
    quality = convlib.open_source(make_source(rows, conversions)).quality("7d")
    assert quality["conversions"] == {
        "total": 8,
        "counted": 1,
        "unknown_message": 1,
        "message_not_in_scope": 2,
        "before_delivery": 1,
        "after_window": 1,
        "repeat": 2,
    }
    assert quality["messages"] == {
        "total": 3,
        "in_scope": 1,
        "not_delivered": 1,
        "tracking_off": 1,
        "duplicate_message_id": 0,
    }
    # with a 30-day window the late conversion becomes a repeat instead
    assert (
        convlib.open_source(make_source(rows, conversions)).quality("30d")["conversions"]["repeat"]
        == 3
    )


@pytest.mark.parametrize(
    ("delivered", "tz", "granularity", "period"),
    [
        # local date, not UTC date: 23:30 UTC is the next day in Amsterdam (CET, +1)
        ("2026-03-09T23:30:00Z", "Europe/Amsterdam", "day", "2026-03-10"),
        # after the spring DST change (+2): 22:30 UTC on 29 March is 00:30 on 30 March
        ("2026-03-29T22:30:00Z", "Europe/Amsterdam", "day", "2026-03-30"),
        # before the autumn change: 22:30 UTC on 24 October is still +2 -> 25 October
        ("2026-10-24T22:30:00Z", "Europe/Amsterdam", "day", "2026-10-25"),
        # after it (+1): 22:30 UTC on 25 October is 23:30 local, same day
        ("2026-10-25T22:30:00Z", "Europe/Amsterdam", "day", "2026-10-25"),
        # a zone west of UTC puts early-UTC deliveries on the previous day
        ("2026-03-10T03:00:00Z", "America/New_York", "day", "2026-03-09"),
        # half-hour offset zones (India, +5:30)
        ("2026-03-10T18:29:00Z", "Asia/Kolkata", "day", "2026-03-10"),
        ("2026-03-10T18:30:00Z", "Asia/Kolkata", "day", "2026-03-11"),
        # quarter-hour offset zones (Nepal, +5:45)
        ("2026-03-10T18:15:00Z", "Asia/Kathmandu", "day", "2026-03-11"),
        ("2026-03-10T18:14:59Z", "Asia/Kathmandu", "day", "2026-03-10"),
        # ISO weeks start on Monday, and cross the year: 1 Jan 2026 is a Thursday
        ("2026-01-01T12:00:00Z", "UTC", "week", "2025-12-29"),
        ("2026-03-15T12:00:00Z", "UTC", "week", "2026-03-09"),  # a Sunday
        ("2026-03-16T00:00:00Z", "UTC", "week", "2026-03-16"),  # Monday midnight
        ("2026-03-31T23:59:59Z", "UTC", "month", "2026-03-01"),
        ("2026-03-31T22:30:00Z", "Europe/Amsterdam", "month", "2026-04-01"),
    ],
)
def test_buckets_by_local_delivery_date(make_source, delivered, tz, granularity, period):
    rows = [{"message_id": "a", "sent_at": delivered, "delivered_at": delivered}]
    frame = convlib.open_source(make_source(rows, [])).metrics(tz=tz, granularity=granularity)
    assert [p.isoformat() for p in frame["period"]] == [period]


def test_cut_bucket_keeps_label_and_only_filtered_days(make_source):
    # a week cut by the period filter keeps its Monday label and holds only the filtered days
    rows = [
        {
            "message_id": f"m{d}",
            "sent_at": f"2026-03-{d:02d}T10:00:00Z",
            "delivered_at": f"2026-03-{d:02d}T10:00:00Z",
        }
        for d in range(9, 16)  # Monday 9 .. Sunday 15 March
    ]
    src = convlib.open_source(make_source(rows, []))
    frame = src.metrics("2026-03-12", "2026-03-20", granularity="week")
    assert frame[["period", "delivered"]].values.tolist() == [[dt.date(2026, 3, 9), 4]]


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        # the bucket (10 March, UTC) ends at 11 March 00:00; + 7d = 18 March 00:00
        ("2026-03-18T00:00:00Z", False),  # window closed exactly
        ("2026-03-17T23:59:59Z", True),  # one second short: provisional
    ],
)
def test_provisional_when_window_not_closed(make_source, as_of, expected):
    rows = [{"message_id": "a", "sent_at": D0, "delivered_at": D0}]
    frame = convlib.open_source(make_source(rows, [])).metrics(as_of=as_of)
    assert frame["provisional"].tolist() == [expected]


def test_provisional_uses_end_clipped_to_period_filter(make_source):
    # a month cut at the 10th ends on the 11th for the provisional rule, not on 1 April
    rows = [{"message_id": "a", "sent_at": D0, "delivered_at": D0}]
    src = convlib.open_source(make_source(rows, []))
    frame = src.metrics(
        "2026-03-01", "2026-03-10", granularity="month", as_of="2026-03-20T00:00:00Z"
    )
    assert frame["provisional"].tolist() == [False]
    frame = src.metrics(
        "2026-03-01", "2026-03-31", granularity="month", as_of="2026-03-20T00:00:00Z"
    )
    assert frame["provisional"].tolist() == [True]


def test_default_as_of_is_latest_timestamp_anywhere(make_source):
    rows = [{"message_id": "a", "sent_at": D0, "delivered_at": D0}]
    src = convlib.open_source(make_source(rows, [("zz", "2026-03-20T08:00:00Z")]))
    assert src.as_of().isoformat() == "2026-03-20T08:00:00+00:00"
    # bucket end 11 March + 7 d = 18 March <= 20 March: final
    assert src.metrics()["provisional"].tolist() == [False]


@pytest.mark.parametrize(
    ("converted", "delivered", "low", "high"),
    [
        # reference values of the 95% Wilson score interval (hand-computed)
        (5, 10, 0.236593090512564, 0.763406909487436),
        (0, 10, 0.0, 0.277532799862146),
        (10, 10, 0.722467200137854, 1.0),
        (1, 1, 0.206549314377249, 1.0),
    ],
)
def test_wilson_interval(converted, delivered, low, high):
    lo, hi = convlib.wilson_interval(converted, delivered)
    assert float(lo) == pytest.approx(low, abs=1e-12)
    assert float(hi) == pytest.approx(high, abs=1e-12)


def test_mean_and_median_of_group(make_source):
    # mean and median over converted messages only; an even count takes the middle two's mean
    rows = [{"message_id": m, "sent_at": D0, "delivered_at": D0} for m in ("a", "b", "c", "d", "e")]
    conversions = [
        ("a", "2026-03-10T12:00:10Z"),
        ("b", "2026-03-10T12:00:20Z"),
        ("c", "2026-03-10T12:01:00Z"),
        ("d", "2026-03-10T13:00:00Z"),
    ]
    frame = convlib.open_source(make_source(rows, conversions)).metrics()
    row = frame.iloc[0]
    assert (row["delivered"], row["converted"]) == (5, 4)
    assert row["conversion_rate"] == 0.8
    assert row["conversion_time_mean_s"] == pytest.approx((10 + 20 + 60 + 3600) / 4)
    assert row["conversion_time_median_s"] == pytest.approx(40.0)


def test_breakdown_sorted_by_code_point(make_source):
    # sorted as Python sorts strings: upper case before lower case, empty campaign first
    rows = [
        {"message_id": str(i), "sent_at": D0, "delivered_at": D0, "campaign": c}
        for i, c in enumerate(["beta", "Zeta", None, "alpha"])
    ]
    frame = convlib.open_source(make_source(rows, [])).metrics(breakdown="campaign")
    assert frame["campaign"].tolist() == ["", "Zeta", "alpha", "beta"]


def test_filters_combine_and_unknown_value_warns(make_source):
    rows = [
        {"message_id": "1", "sent_at": D0, "delivered_at": D0, "channel": "SMS", "country": "NL"},
        {"message_id": "2", "sent_at": D0, "delivered_at": D0, "channel": "RCS", "country": "NL"},
        {"message_id": "3", "sent_at": D0, "delivered_at": D0, "channel": "SMS", "country": "DE"},
    ]
    src = convlib.open_source(make_source(rows, []))
    frame = src.metrics(filters={"channel": ["SMS"], "country": ["NL", "DE"]})
    assert frame["delivered"].tolist() == [2]
    with pytest.warns(convlib.FilterWarning, match="Fax"):
        assert src.metrics(filters={"channel": ["Fax"]}).empty


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": "2d"}, "unknown window"),
        ({"granularity": "year"}, "unknown granularity"),
        ({"breakdown": "city"}, "unknown breakdown"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"start": "2026-03-10", "end": "2026-03-01"}, "before start"),
        ({"start": "10/03/2026"}, "not a date"),
        ({"filters": {"city": ["x"]}}, "unknown filter"),
        ({"as_of": "yesterday"}, "not a timestamp"),
    ],
)
def test_bad_parameters_raise_one_line(make_source, kwargs, message):
    src = convlib.open_source(make_source([{"message_id": "a", "sent_at": D0}], []))
    with pytest.raises(ContractError, match=message) as info:
        src.metrics(**kwargs)
    assert "\n" not in str(info.value)


def test_cached_and_direct_modes_agree(make_source):
    rows = [
        {"message_id": str(i), "sent_at": D0, "delivered_at": D0, "channel": ch}
        for i, ch in enumerate(["SMS", "SMS", "RCS"])
    ]
    location = make_source(rows, [("0", "2026-03-10T12:30:00Z")])
    cached = convlib.open_source(location).metrics(breakdown="channel", tz="Asia/Kolkata")
    direct = convlib.open_source(location, cache=False).metrics(
        breakdown="channel", tz="Asia/Kolkata"
    )
    assert cached.equals(direct)
