"""Sources: CSV, Parquet and DuckDB give the same numbers; timestamps and booleans parse as the
contract says; bad input gets one clear line naming the file, column and an example value."""

from __future__ import annotations

import textwrap

import ibis
import pandas as pd
import pytest

import convlib
from convlib.contract import ContractError
from convlib.sample import SampleSpec, generate_sample


@pytest.fixture(scope="module")
def small_sample():
    return generate_sample(SampleSpec(messages=20_000, seed=3))


def test_csv_parquet_duckdb_and_ibis_backend_agree(make_source, small_sample):
    messages, conversions = small_sample
    results = {}
    for fmt in ("parquet", "csv", "duckdb"):
        location = make_source(messages, conversions, fmt)
        source = convlib.open_source(location)
        results[fmt] = (
            source.metrics(breakdown="channel", granularity="week", tz="Europe/Amsterdam"),
            source.quality("24h"),
        )
    con = ibis.duckdb.connect()
    con.create_table("messages", messages)
    con.create_table("conversions", conversions)
    source = convlib.open_source(con)
    results["ibis"] = (
        source.metrics(breakdown="channel", granularity="week", tz="Europe/Amsterdam"),
        source.quality("24h"),
    )
    reference, reference_quality = results["parquet"]
    assert reference["delivered"].sum() > 10_000
    for fmt, (frame, quality) in results.items():
        pd.testing.assert_frame_equal(frame, reference, obj=fmt)
        assert quality == reference_quality, fmt


def write(tmp_path, messages: str, conversions: str = "message_id,converted_at\n"):
    (tmp_path / "messages.csv").write_text(textwrap.dedent(messages).lstrip())
    (tmp_path / "conversions.csv").write_text(textwrap.dedent(conversions).lstrip())
    return tmp_path


def test_csv_timestamp_forms_and_booleans(tmp_path):
    # Z, numeric offsets, no offset (source zone), sub-seconds; booleans in any case, 1/0, empty
    folder = write(
        tmp_path,
        """
        message_id,sent_at,delivered_at,channel,country,campaign,conversion_tracking
        a,2026-03-10T10:00:00Z,2026-03-10T10:00:00.123Z,SMS,NL,,TRUE
        b,2026-03-10T11:00:00+01:00,2026-03-10T11:00:00+01:00,SMS,NL,x,1
        c,2026-03-10T10:00:00,2026-03-10T10:00:00,SMS,NL,x,
        d,2026-03-10T10:00:00Z,2026-03-10T10:00:00Z,Voice,NL,,False
        e,2026-03-10T10:00:00Z,2026-03-10T10:00:00Z,Voice,NL,,0
        """,
        """
        message_id,converted_at
        a,2026-03-10T10:30:00.123Z
        b,2026-03-10T11:30:00+01:00
        c,2026-03-10T10:30:00
        """,
    )
    frame = convlib.open_source(folder).metrics(breakdown="channel")
    assert frame[["channel", "delivered", "converted"]].values.tolist() == [["SMS", 3, 3]]
    assert frame["conversion_time_mean_s"].iloc[0] == pytest.approx(1800.0)
    # c has no offset: read in the source zone. Amsterdam is +1 in March, so c is delivered at
    # 09:00 UTC; its conversion (also local) stays 30 minutes later.
    amsterdam = convlib.open_source(folder, source_tz="Europe/Amsterdam")
    assert amsterdam.metrics(window="1h")["converted"].tolist() == [3]
    quality = amsterdam.quality()
    assert quality["messages"]["tracking_off"] == 2


def test_naive_times_across_dst_in_source_zone(tmp_path):
    # 02:30 on 29 March does not exist in Amsterdam; 01:30 is +1 and 03:30 is +2
    folder = write(
        tmp_path,
        """
        message_id,sent_at,delivered_at,channel,country
        a,2026-03-29T01:30:00,2026-03-29T01:30:00,SMS,NL
        b,2026-03-29T03:30:00,2026-03-29T03:30:00,SMS,NL
        """,
        """
        message_id,converted_at
        a,2026-03-29T03:30:00
        b,2026-03-29T04:30:00
        """,
    )
    frame = convlib.open_source(folder, source_tz="Europe/Amsterdam").metrics()
    # a: 00:30 UTC -> 01:30 UTC is one hour; b: 01:30 UTC -> 02:30 UTC is one hour
    assert frame["conversion_time_mean_s"].iloc[0] == pytest.approx(3600.0)


BAD_INPUTS = [
    # a required column is missing: name the file and the column
    (
        "message_id,sent_at,country\na,2026-03-10T10:00:00Z,NL\n",
        None,
        r"messages\.csv: required column 'channel' is missing",
    ),
    # an unparseable timestamp: name the column and show the value and its message
    (
        "message_id,sent_at,channel,country\na,2026-03-10T10:00:00Z,SMS,NL\nb,yesterday,SMS,NL\n",
        None,
        r"messages\.csv: column 'sent_at' has 1 value\(s\) that are not a timestamp, e\.g\. "
        r"'yesterday' \(message_id 'b'\)",
    ),
    # a non-boolean tracking flag
    (
        "message_id,sent_at,channel,country,conversion_tracking\na,2026-03-10T10:00:00Z,SMS,NL,maybe\n",
        None,
        r"column 'conversion_tracking' has 1 value\(s\) that are not a boolean.*'maybe'",
    ),
    # an empty required value
    (
        "message_id,sent_at,channel,country\na,2026-03-10T10:00:00Z,,NL\n",
        None,
        r"required column 'channel' is empty in 1 row\(s\)",
    ),
    # a conversion timestamp that cannot be read
    (
        "message_id,sent_at,channel,country\na,2026-03-10T10:00:00Z,SMS,NL\n",
        "message_id,converted_at\na,2026-13-45T99:00:00Z\n",
        r"conversions\.csv: column 'converted_at'.*'2026-13-45T99:00:00Z'",
    ),
    # a header with no rows of messages
    ("message_id,sent_at,channel,country\n", None, r"messages\.csv: the table has no rows"),
    # an empty file
    ("", None, r"messages\.csv: the file is empty"),
]


@pytest.mark.parametrize(("messages", "conversions", "pattern"), BAD_INPUTS)
def test_bad_input_one_line_error(tmp_path, messages, conversions, pattern):
    (tmp_path / "messages.csv").write_text(messages)
    (tmp_path / "conversions.csv").write_text(conversions or "message_id,converted_at\n")
    with pytest.raises(ContractError, match=pattern) as info:
        convlib.open_source(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_files_and_tables(tmp_path):
    with pytest.raises(ContractError, match="no such folder or file"):
        convlib.open_source(tmp_path / "nowhere")
    (tmp_path / "messages.csv").write_text("message_id\n")
    with pytest.raises(ContractError, match=r"neither conversions\.parquet nor conversions\.csv"):
        convlib.open_source(tmp_path)
    con = ibis.duckdb.connect()
    con.create_table("messages", pd.DataFrame({"message_id": ["a"]}))
    with pytest.raises(ContractError, match="table 'conversions' is missing"):
        convlib.open_source(con)


def test_unknown_source_zone(tmp_path):
    with pytest.raises(ContractError, match="unknown time zone 'Atlantis/Capital'"):
        convlib.open_source(tmp_path, source_tz="Atlantis/Capital")
